package cluster_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/etcd-appliance/appliance/cluster"
	"github.com/etcd-appliance/appliance/cluster/clustertest"
	"github.com/etcd-appliance/appliance/inventory/inventorytest"
)

// After member remove, before the inventory is edited, status reports the
// member as removed at once and does not ask its (stopped) endpoint: round
// 1 waited 5 s for it and showed it UNHEALTHY "context deadline exceeded".
func TestStatusOfARemovedMember(t *testing.T) {
	inv := inventorytest.Parse(t, inventorytest.Three(`tls = "off"`))
	fm := &clustertest.Membership{Statuses: map[string]cluster.EndpointStatus{}}
	for i := range 2 {
		m := &inv.Members[i]
		id := uint64(i + 1)
		fm.List = append(fm.List, cluster.Member{ID: id, Name: m.Name, PeerURLs: []string{inv.PeerURL(m)}})
		fm.Statuses[inv.ClientURL(m)] = cluster.EndpointStatus{ID: id, Leader: 1, Version: "3.7.3"}
	}
	cs := cluster.Status(context.Background(), inv, fm)
	gone := cs.Rows[2]
	if !gone.Removed || gone.Healthy || !strings.Contains(strings.Join(gone.Errors, ""), "removed from the cluster") {
		t.Errorf("removed member's row: %+v", gone)
	}
	if slices.Contains(fm.Asked, inv.ClientURL(&inv.Members[2])) {
		t.Error("asked the removed member's endpoint")
	}
	if !cs.Healthy || !cs.Quorum || !strings.Contains(cs.Verdict(), "healthy: 2/2 members") {
		t.Errorf("the two members left are the cluster, and healthy: %s %v", cs.Verdict(), cs.Problems)
	}
	if len(cs.Warnings) != 1 || !strings.Contains(cs.Warnings[0], "etcd2 is in t.toml but no longer in the cluster: remove its [[member]] table") {
		t.Errorf("warnings: %q", cs.Warnings)
	}

	// A member added but not started yet has no name: its peer URL finds it.
	fm.List = append(fm.List, cluster.Member{ID: 3, PeerURLs: []string{inv.PeerURL(&inv.Members[2])}, Learner: true})
	if cs := cluster.Status(context.Background(), inv, fm); cs.Rows[2].Removed {
		t.Error("an added, unstarted member reported as removed")
	}
}
