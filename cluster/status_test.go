package cluster_test

import (
	"context"
	"strings"
	"testing"

	"github.com/etcd-appliance/appliance/cluster"
	"github.com/etcd-appliance/appliance/cluster/clustertest"
	"github.com/etcd-appliance/appliance/inventory/inventorytest"
)

// After member remove, before the inventory is edited, status reports the
// member as removed, giving its (stopped) endpoint a second rather than 5:
// round 1 showed it UNHEALTHY "context deadline exceeded" after 5 s.
func TestStatusOfARemovedMember(t *testing.T) {
	// Loopback ports nothing listens on: etcd2's stopped member refuses.
	inv := inventorytest.Parse(t, inventorytest.Loopback("t", `tls = "off"`, 3, []int{1, 2, 3, 4, 5, 6}))
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
	if !cs.Healthy || !cs.Quorum || !strings.Contains(cs.Verdict(), "healthy: 2/2 members") {
		t.Errorf("the two members left are the cluster, and healthy: %s %v", cs.Verdict(), cs.Problems)
	}
	if len(cs.Warnings) != 1 || !strings.Contains(cs.Warnings[0], "m2 is in t.toml but no longer in the cluster: remove its [[member]] table") {
		t.Errorf("warnings: %q", cs.Warnings)
	}

	// A member that answers with an ID the cluster lists is the cluster's,
	// whatever its name (an inventory made from --endpoints, a member
	// added by hand under another name).
	fm.List[1].Name, fm.List[1].PeerURLs = "default", []string{"http://localhost:2380"}
	fm.Statuses[inv.ClientURL(&inv.Members[1])] = cluster.EndpointStatus{ID: 2, Leader: 1, Version: "3.7.3"}
	if cs := cluster.Status(context.Background(), inv, fm); cs.Rows[1].Removed {
		t.Errorf("a listed member under another name reported as removed: %+v", cs.Rows[1])
	}
	// Running but answering with an ID the cluster does not list: removed.
	fm.List = fm.List[:1]
	if cs := cluster.Status(context.Background(), inv, fm); !cs.Rows[1].Removed {
		t.Errorf("a member whose ID the cluster does not list: %+v", cs.Rows[1])
	}
	fm.List = append(fm.List, cluster.Member{ID: 2, Name: "m1", PeerURLs: []string{inv.PeerURL(&inv.Members[1])}})

	// A member added but not started yet has no name: its peer URL finds it.
	fm.List = append(fm.List, cluster.Member{ID: 3, PeerURLs: []string{inv.PeerURL(&inv.Members[2])}, Learner: true})
	if cs := cluster.Status(context.Background(), inv, fm); cs.Rows[2].Removed {
		t.Error("an added, unstarted member reported as removed")
	}
}

// status names raised alarms with their fix, and members whose backend is
// mostly free pages.
func TestStatusAlarmsAndFragmentation(t *testing.T) {
	inv := inventorytest.Parse(t, inventorytest.Loopback("t", "tls = \"off\"\nquota_backend = \"4GiB\"", 3, []int{1, 2, 3, 4, 5, 6}))
	fm := &clustertest.Membership{Statuses: map[string]cluster.EndpointStatus{}}
	for i := range inv.Members {
		m := &inv.Members[i]
		id := uint64(i + 1)
		fm.List = append(fm.List, cluster.Member{ID: id, Name: m.Name, PeerURLs: []string{inv.PeerURL(m)}})
		fm.Statuses[inv.ClientURL(m)] = cluster.EndpointStatus{ID: id, Leader: 1, Version: "3.7.3", DBSize: 1 << 30, DBSizeInUse: 1 << 30,
			Errors: []string{"memberID:2  alarm:NOSPACE "}}
	}
	st := fm.Statuses[inv.ClientURL(&inv.Members[1])]
	st.DBSizeInUse = 300 << 20
	fm.Statuses[inv.ClientURL(&inv.Members[1])] = st
	cs := cluster.Status(context.Background(), inv, fm)
	var alarm []string
	for _, p := range cs.Problems {
		if strings.HasPrefix(p, "alarm ") {
			alarm = append(alarm, p)
		}
	}
	if len(alarm) != 1 || !strings.Contains(alarm[0], "alarm NOSPACE (raised by m1): its backend reached the quota (4GiB)") ||
		!strings.Contains(alarm[0], "etcdctl alarm disarm") || !strings.Contains(alarm[0], "cluster.quota_backend in t.toml") {
		t.Errorf("alarm problems: %q", alarm)
	}
	if len(cs.Warnings) != 1 || !strings.HasPrefix(cs.Warnings[0], "m1: its backend is 1.0 GiB, 70% of it free pages (300 MiB in use)") {
		t.Errorf("fragmentation warnings: %q", cs.Warnings)
	}
	// The members answer: the alarm is the cluster's problem, said once,
	// not three unhealthy members and no quorum.
	if cs.Healthy || !cs.Quorum || len(cs.Problems) != 1 || !strings.Contains(cs.Verdict(), "has an alarm raised: 3/3 members answer") {
		t.Errorf("verdict %q, problems %q", cs.Verdict(), cs.Problems)
	}
}
