package node

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"go.etcd.io/etcd/client/pkg/v3/types"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver"
	"go.etcd.io/etcd/server/v3/storage/wal"
)

// activePeers reads rafthttp's etcd_network_active_peers gauge: the peers
// this member has a working raft stream with, by member ID.
func activePeers() map[string]bool {
	active := map[string]bool{}
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		return active
	}
	for _, mf := range mfs {
		if mf.GetName() != "etcd_network_active_peers" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetGauge().GetValue() <= 0 {
				continue
			}
			for _, l := range m.GetLabel() {
				if l.GetName() == "Remote" {
					active[l.GetValue()] = true
				}
			}
		}
	}
	return active
}

type peerView struct {
	reachable, unreachable []string
}

func peers(srv *etcdserver.EtcdServer) peerView {
	active := activePeers()
	self := srv.MemberID()
	var v peerView
	for _, m := range srv.Cluster().Members() {
		if m.ID == self {
			continue
		}
		name := memberName(srv, m.ID)
		if active[m.ID.String()] {
			v.reachable = append(v.reachable, name)
		} else {
			v.unreachable = append(v.unreachable, name)
		}
	}
	sort.Strings(v.reachable)
	sort.Strings(v.unreachable)
	return v
}

func memberName(srv *etcdserver.EtcdServer, id types.ID) string {
	if m := srv.Cluster().Member(id); m != nil && m.Name != "" {
		return m.Name
	}
	return "unstarted member " + id.String()
}

func (v peerView) total() int { return len(v.reachable) + len(v.unreachable) }

func (v peerView) String() string {
	if v.total() == 0 {
		return "single-member cluster"
	}
	s := fmt.Sprintf("%d/%d peers reachable", len(v.reachable), v.total())
	if len(v.reachable) > 0 {
		s += " (" + strings.Join(v.reachable, ", ") + ")"
	}
	if len(v.unreachable) > 0 {
		s += ", waiting for " + strings.Join(v.unreachable, ", ")
	}
	return s
}

// startKind is what a start is: the first start of a new cluster's
// member, a member starting on data it has (a restart, or a second try of
// a new cluster that never formed: the data does not say which, so the
// words fit both), or a new member joining a running cluster.
type startKind int

const (
	startNew startKind = iota
	startRestart
	startJoin
)

// kindOf tells the start from the data dir and the cluster state, before
// etcd opens them.
func kindOf(ec *embed.Config) startKind {
	walDir := ec.WalDir
	if walDir == "" {
		walDir = filepath.Join(ec.Dir, "member", "wal")
	}
	switch {
	case wal.Exist(walDir):
		return startRestart
	case ec.ClusterState == embed.ClusterStateFlagExisting:
		return startJoin
	}
	return startNew
}

// why says, after the peers, what the member waits for.
func (k startKind) why() string {
	switch k {
	case startRestart:
		return "started on its existing data: the members it waits for must be running"
	case startJoin:
		return "a new member joining the running cluster"
	}
	return "a new cluster: its other members must be started too"
}

// waitingStatus describes a member that started but is not serving yet.
func waitingStatus(name string, srv *etcdserver.EtcdServer, kind startKind) string {
	v := peers(srv)
	if v.total() == 0 {
		return fmt.Sprintf("waiting for quorum: %s is a single-member cluster, electing itself", name)
	}
	quorum := (v.total()+1)/2 + 1
	if srv.Leader() != types.ID(0) {
		return fmt.Sprintf("waiting for quorum: leader %s elected, publishing %s's attributes; %s (%s)",
			memberName(srv, srv.Leader()), name, v, kind.why())
	}
	return fmt.Sprintf("waiting for quorum: %d of %d members needed; %s (%s)", quorum, v.total()+1, v, kind.why())
}

// servingStatus describes a member that passed its readiness check.
func servingStatus(name string, srv *etcdserver.EtcdServer) string {
	id := srv.MemberID()
	lead := srv.Leader()
	v := peers(srv)
	role := ""
	switch {
	case lead == types.ID(0):
		return fmt.Sprintf("serving? %s (%s) has no leader, term %d: quorum lost, writes and linearizable reads fail; %s",
			name, id, srv.Term(), v)
	case srv.IsLearner():
		role = "learner (non-voting) following " + memberName(srv, lead)
	case lead == id:
		role = "leader"
	default:
		role = "follower of " + memberName(srv, lead)
	}
	return fmt.Sprintf("serving: %s (%s) %s, term %d; %s", name, id, role, srv.Term(), v)
}
