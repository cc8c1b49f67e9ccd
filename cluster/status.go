package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/etcd-appliance/appliance/inventory"
	"github.com/etcd-appliance/appliance/pki"
)

// EndpointRow is one member's line in `etcd-installer status`.
type EndpointRow struct {
	Name     string `json:"name"`
	Endpoint string `json:"endpoint"`
	ID       string `json:"id,omitempty"`
	Version  string `json:"version,omitempty"`
	DBSize   int64  `json:"dbSize"`
	// DBSizeInUse is what the backend holds; the rest is free pages a
	// defragmentation gives back to the file system.
	DBSizeInUse int64  `json:"dbSizeInUse"`
	Leader      bool   `json:"leader"`
	Learner     bool   `json:"learner"`
	RaftTerm    uint64 `json:"raftTerm"`
	RaftIndex   uint64 `json:"raftIndex"`
	Healthy     bool   `json:"healthy"`
	// Removed: the inventory lists the member, the cluster no longer
	// does (member remove ran; the inventory was not edited yet).
	Removed bool     `json:"removed,omitempty"`
	Errors  []string `json:"errors,omitempty"`
	// CertExpires is when the certificate the member serves expires
	// (with TLS; read from the handshake, so it is what clients see).
	CertExpires *time.Time `json:"certExpires,omitempty"`
}

// ClusterStatus is the answer of every member of an inventory.
type ClusterStatus struct {
	Cluster string        `json:"cluster"`
	Rows    []EndpointRow `json:"endpoints"`
	// Healthy: every member answers a linearizable read and one leader is
	// agreed on.
	Healthy bool `json:"healthy"`
	// Quorum: a majority of members is healthy (writes work).
	Quorum bool `json:"quorum"`
	// Alarms: an alarm is raised (NOSPACE refuses writes); Problems
	// say which and what to do.
	Alarms   bool     `json:"alarms,omitempty"`
	Problems []string `json:"problems,omitempty"`
	// Warnings do not make the cluster unhealthy: certificates that expire
	// within 30 days.
	Warnings []string `json:"warnings,omitempty"`
}

// tlsClient is implemented by memberships that connect with TLS.
type tlsClient interface{ TLS() *tls.Config }

// Status asks every member of the inventory, in parallel, for its status
// and health.
func Status(ctx context.Context, inv *inventory.Inventory, m Membership) ClusterStatus {
	cs := ClusterStatus{Cluster: inv.Cluster.Name, Rows: make([]EndpointRow, len(inv.Members))}
	// The cluster's own member list says which of the inventory's members
	// it still has: a removed member (stopped by member remove) is
	// reported as such at once, not after its endpoint's timeout as
	// unhealthy.
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	list, listErr := m.Members(lctx)
	cancel()
	removed := func(row *EndpointRow) {
		row.Removed, row.Healthy = true, false
		row.Errors = []string{"removed from the cluster (not in its member list)"}
	}
	var wg sync.WaitGroup
	for i := range inv.Members {
		mem := &inv.Members[i]
		ep := inv.ClientURL(mem)
		// Not found by name or URL: the names may just differ (an
		// inventory made from --endpoints, a member added by hand), so
		// the member's own answer decides, when it answers.
		unlisted := listErr == nil && !inList(list, mem.Name, inv.PeerURL(mem), ep)
		wg.Add(1)
		go func() {
			defer wg.Done()
			row := EndpointRow{Name: mem.Name, Endpoint: ep}
			// An unlisted member gets a second: a member stopped after
			// its removal refuses at once.
			wait := 5 * time.Second
			if unlisted {
				wait = time.Second
			}
			sctx, cancel := context.WithTimeout(ctx, wait)
			defer cancel()
			st := m.Status(sctx, ep)
			if unlisted && (st.Err != nil || !slices.ContainsFunc(list, func(m Member) bool { return m.ID == st.ID })) {
				removed(&row)
				cs.Rows[i] = row
				return
			}
			if st.Err != nil {
				row.Errors = append(row.Errors, st.Err.Error())
			} else {
				row.ID = fmt.Sprintf("%x", st.ID)
				row.Version, row.DBSize, row.DBSizeInUse, row.Learner = st.Version, st.DBSize, st.DBSizeInUse, st.Learner
				row.Leader = st.Leader != 0 && st.Leader == st.ID
				row.RaftTerm, row.RaftIndex = st.RaftTerm, st.RaftIndex
				row.Errors = append(row.Errors, st.Errors...)
				if tc, ok := m.(tlsClient); ok && tc.TLS() != nil {
					if cert, err := ServedCertificate(sctx, ep, tc.TLS()); err == nil {
						row.CertExpires = &cert.NotAfter
					}
				}
				if err := m.Healthy(sctx, ep); err != nil {
					row.Errors = append(row.Errors, "health: "+err.Error())
				} else {
					// Every member repeats the cluster's alarms: they are the
					// cluster's problem (below), not this member's health.
					row.Healthy = !slices.ContainsFunc(st.Errors, func(e string) bool { return !strings.Contains(e, "alarm:") })
				}
			}
			cs.Rows[i] = row
		}()
	}
	wg.Wait()
	healthy, leaders, n := 0, map[string]bool{}, 0
	for _, r := range cs.Rows {
		if r.Removed {
			cs.Warnings = append(cs.Warnings, fmt.Sprintf("%s is in %s but no longer in the cluster: remove its [[member]] table (or add it back with etcd-installer member add)", r.Name, inv.Source))
			continue
		}
		n++
		if r.Healthy {
			healthy++
		} else {
			cs.Problems = append(cs.Problems, fmt.Sprintf("%s (%s): %s", r.Name, r.Endpoint, strings.Join(r.Errors, "; ")))
		}
		if r.Leader {
			leaders[r.Name] = true
		}
	}
	now := time.Now()
	for _, r := range cs.Rows {
		if r.CertExpires == nil {
			continue
		}
		if w := pki.Expiring(r.Name+"'s server certificate", &x509.Certificate{NotAfter: *r.CertExpires}, now); w != "" {
			cs.Warnings = append(cs.Warnings, w)
		}
	}
	alarms := Alarms(inv, cs.Rows)
	cs.Alarms = len(alarms) > 0
	cs.Problems = append(cs.Problems, alarms...)
	cs.Warnings = append(cs.Warnings, Fragmented(cs.Rows)...)
	cs.Quorum = healthy >= n/2+1
	cs.Healthy = healthy == n && len(leaders) == 1 && !cs.Alarms
	if len(leaders) > 1 {
		cs.Problems = append(cs.Problems, fmt.Sprintf("%d members claim to lead", len(leaders)))
	}
	return cs
}

// inList reports whether the cluster's member list has the member: by
// name, by peer URL (a member added but not started yet has no name) or
// by client URL (an inventory made from --endpoints knows no names).
func inList(list []Member, name, peerURL, clientURL string) bool {
	for _, m := range list {
		if m.Name == name || slices.Contains(m.PeerURLs, peerURL) || slices.Contains(m.ClientURLs, clientURL) {
			return true
		}
	}
	return false
}

// ServedCertificate returns the certificate a TLS endpoint presents. It
// does not verify it: an expired certificate is what it must report.
func ServedCertificate(ctx context.Context, endpoint string, tc *tls.Config) (*x509.Certificate, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return nil, err
	}
	c := tc.Clone()
	c.InsecureSkipVerify = true //nolint:gosec // only reads the certificate; no request follows
	c.VerifyConnection, c.VerifyPeerCertificate = nil, nil
	d := tls.Dialer{Config: c}
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	certs := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s presented no certificate", endpoint)
	}
	return certs[0], nil
}

// Verdict is one line about the cluster's health.
func (cs ClusterStatus) Verdict() string {
	n, healthy := 0, 0
	for _, r := range cs.Rows {
		if !r.Removed {
			n++
		}
		if r.Healthy {
			healthy++
		}
	}
	switch {
	case cs.Healthy:
		return fmt.Sprintf("cluster %s is healthy: %d/%d members", cs.Cluster, healthy, n)
	case cs.Alarms && cs.Quorum:
		return fmt.Sprintf("cluster %s has an alarm raised: %d/%d members answer, but see the alarm below (NOSPACE refuses writes)", cs.Cluster, healthy, n)
	case cs.Quorum:
		return fmt.Sprintf("cluster %s is degraded: %d/%d members healthy, quorum kept (%d more failure(s) and writes stop)", cs.Cluster, healthy, n, healthy-(n/2+1)+1)
	default:
		return fmt.Sprintf("cluster %s has no quorum: %d/%d members healthy, %d needed: writes and linearizable reads fail", cs.Cluster, healthy, n, n/2+1)
	}
}

// Fragmentation worth a warning: half the backend free, and enough of it
// to matter.
const (
	fragmentedShare = 0.5
	fragmentedBytes = 100 << 20
)

// Fragmented warns of members whose backend is mostly free pages, with
// the fix.
func Fragmented(rows []EndpointRow) []string {
	var w []string
	for _, r := range rows {
		free := r.DBSize - r.DBSizeInUse
		if r.ID == "" || r.DBSize == 0 || free < fragmentedBytes || float64(free) < fragmentedShare*float64(r.DBSize) {
			continue
		}
		w = append(w, fmt.Sprintf("%s: its backend is %s, %d%% of it free pages (%s in use); defragment it: "+
			"etcd-installer maintenance INVENTORY (one member at a time, the leader last after handing its leadership away), or by hand, one member at a time and not the leader first, "+
			"etcdctl defrag --endpoints=%s (it blocks that member's reads and writes while it runs)",
			r.Name, humanize.IBytes(uint64(r.DBSize)), free*100/r.DBSize, humanize.IBytes(uint64(r.DBSizeInUse)), r.Endpoint))
	}
	return w
}

// Alarms names the cluster's raised alarms (members report them in their
// status) with what to do.
func Alarms(inv *inventory.Inventory, rows []EndpointRow) []string {
	// Every member reports every alarm: "memberID:123 alarm:NOSPACE "
	// (the alarm's text form; the ID in decimal) names whose it is.
	byID := map[string]string{}
	for _, r := range rows {
		if r.ID != "" {
			byID[r.ID] = r.Name
		}
	}
	raised := map[string][]string{}
	for _, r := range rows {
		for _, e := range r.Errors {
			_, rest, ok := strings.Cut(e, "alarm:")
			f := strings.Fields(rest)
			if !ok || len(f) == 0 {
				continue
			}
			who := "an unknown member"
			if _, id, ok := strings.Cut(e, "memberID:"); ok && len(strings.Fields(id)) > 0 {
				if n, err := strconv.ParseUint(strings.Fields(id)[0], 10, 64); err == nil {
					who = fmt.Sprintf("%x", n)
					if name, ok := byID[who]; ok {
						who = name
					}
				}
			}
			if !slices.Contains(raised[f[0]], who) {
				raised[f[0]] = append(raised[f[0]], who)
			}
		}
	}
	var out []string
	for _, kind := range slices.Sorted(maps.Keys(raised)) {
		on := strings.Join(raised[kind], ", ")
		raise := "raise cluster.quota_backend in " + inv.Source + " (at most 8GiB) and apply"
		if inv.Source == "--endpoints" {
			raise = "raise the members' --quota-backend-bytes (at most 8 GiB)"
		}
		switch kind {
		case "NOSPACE":
			quota := inv.Cluster.QuotaBackend
			if quota == "" {
				quota = "etcd's default, 2 GiB"
			}
			auto := "etcd-installer maintenance " + inv.Source + " (it compacts, defragments one member at a time and disarms when that frees enough), or by hand: "
			if inv.Source == "--endpoints" {
				auto = ""
			}
			out = append(out, fmt.Sprintf("alarm NOSPACE (raised by %s): its backend reached the quota (%s); the cluster refuses writes until the alarm is disarmed. "+
				"Fix: %scompact to the current revision (etcdctl compact REV, REV from etcdctl endpoint status -w json), defragment each member one at a time "+
				"(etcdctl defrag --endpoints=URL), then etcdctl alarm disarm; if the data in use is near the quota after that, delete keys or %s", on, quota, auto, raise))
		case "CORRUPT":
			out = append(out, fmt.Sprintf("alarm CORRUPT (raised by %s): a member's data differs from the others'; find it (etcdctl endpoint hashkv --cluster), "+
				"replace it (etcd-installer member replace %s NAME), then etcdctl alarm disarm", on, inv.Source))
		default:
			out = append(out, fmt.Sprintf("alarm %s (raised by %s): etcdctl alarm list", kind, on))
		}
	}
	return out
}
