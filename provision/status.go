package provision

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/etcd-appliance/appliance/installer"
)

// EndpointRow is one member's line in `etcd-installer status`.
type EndpointRow struct {
	Name      string   `json:"name"`
	Endpoint  string   `json:"endpoint"`
	ID        string   `json:"id,omitempty"`
	Version   string   `json:"version,omitempty"`
	DBSize    int64    `json:"dbSize"`
	Leader    bool     `json:"leader"`
	Learner   bool     `json:"learner"`
	RaftTerm  uint64   `json:"raftTerm"`
	RaftIndex uint64   `json:"raftIndex"`
	Healthy   bool     `json:"healthy"`
	Errors    []string `json:"errors,omitempty"`
}

// ClusterStatus is the answer of every member of an inventory.
type ClusterStatus struct {
	Cluster string        `json:"cluster"`
	Rows    []EndpointRow `json:"endpoints"`
	// Healthy: every member answers a linearizable read and one leader is
	// agreed on.
	Healthy bool `json:"healthy"`
	// Quorum: a majority of members is healthy (writes work).
	Quorum   bool     `json:"quorum"`
	Problems []string `json:"problems,omitempty"`
}

// Status asks every member of the inventory, in parallel, for its status
// and health.
func Status(ctx context.Context, inv *installer.Inventory, m Membership) ClusterStatus {
	cs := ClusterStatus{Cluster: inv.Cluster.Name, Rows: make([]EndpointRow, len(inv.Members))}
	var wg sync.WaitGroup
	for i := range inv.Members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mem := &inv.Members[i]
			ep := inv.ClientURL(mem)
			row := EndpointRow{Name: mem.Name, Endpoint: ep}
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			st := m.Status(sctx, ep)
			if st.Err != nil {
				row.Errors = append(row.Errors, st.Err.Error())
			} else {
				row.ID = fmt.Sprintf("%x", st.ID)
				row.Version, row.DBSize, row.Learner = st.Version, st.DBSize, st.Learner
				row.Leader = st.Leader != 0 && st.Leader == st.ID
				row.RaftTerm, row.RaftIndex = st.RaftTerm, st.RaftIndex
				row.Errors = append(row.Errors, st.Errors...)
				if err := m.Healthy(sctx, ep); err != nil {
					row.Errors = append(row.Errors, "health: "+err.Error())
				} else {
					row.Healthy = len(st.Errors) == 0
				}
			}
			cs.Rows[i] = row
		}()
	}
	wg.Wait()
	healthy, leaders := 0, map[string]bool{}
	for _, r := range cs.Rows {
		if r.Healthy {
			healthy++
		} else {
			cs.Problems = append(cs.Problems, fmt.Sprintf("%s (%s): %s", r.Name, r.Endpoint, strings.Join(r.Errors, "; ")))
		}
		if r.Leader {
			leaders[r.Name] = true
		}
	}
	n := len(inv.Members)
	cs.Quorum = healthy >= n/2+1
	cs.Healthy = healthy == n && len(leaders) == 1
	if len(leaders) > 1 {
		cs.Problems = append(cs.Problems, fmt.Sprintf("%d members claim to lead", len(leaders)))
	}
	return cs
}

// Verdict is one line about the cluster's health.
func (cs ClusterStatus) Verdict() string {
	n := len(cs.Rows)
	healthy := 0
	for _, r := range cs.Rows {
		if r.Healthy {
			healthy++
		}
	}
	switch {
	case cs.Healthy:
		return fmt.Sprintf("cluster %s is healthy: %d/%d members", cs.Cluster, healthy, n)
	case cs.Quorum:
		return fmt.Sprintf("cluster %s is degraded: %d/%d members healthy, quorum kept (%d more failure(s) and writes stop)", cs.Cluster, healthy, n, healthy-(n/2+1)+1)
	default:
		return fmt.Sprintf("cluster %s has no quorum: %d/%d members healthy, %d needed: writes and linearizable reads fail", cs.Cluster, healthy, n, n/2+1)
	}
}
