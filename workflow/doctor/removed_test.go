package doctor

import (
	"context"
	"strings"
	"testing"

	"github.com/etcd-appliance/appliance/host"
	"github.com/etcd-appliance/appliance/host/hosttest"
	"github.com/etcd-appliance/appliance/inventory/inventorytest"
	"github.com/etcd-appliance/appliance/node"
	"github.com/etcd-appliance/appliance/workflow"
)

// A member the cluster removed: doctor's fix depends on whether its data
// dir is still there (member remove moves it aside; etcdctl member remove
// does not). Round 1 said to move it aside in both cases.
func TestDoctorOnARemovedMember(t *testing.T) {
	// Loopback ports nothing listens on: the peer checks fail fast.
	inv := inventorytest.Parse(t, inventorytest.Loopback("t", `tls = "off"`, 3, []int{1, 2, 3, 4, 5, 6}))
	h, _ := inv.Host("m2")
	dir := inv.DataDir(h.Member)
	for _, c := range []struct {
		dirThere bool
		want     string
	}{
		{false, "its old data dir is already moved aside (" + dir + ".removed-*); to bring it back: `etcd-installer member add t.toml m2`"},
		{true, "move its old data dir aside (mv " + dir + " " + dir + ".removed-"},
	} {
		fsys := hosttest.NewMemFS()
		if c.dirThere {
			fsys.MkdirAll(dir, 0o700, "etcd", "etcd")
		}
		svc := &hosttest.Services{States: []host.UnitState{{Active: "failed", Result: "exit-code", ExitStatus: node.ExitRemoved}}}
		fs := Run(context.Background(), inv, workflow.Target{Host: h, FS: fsys, Services: svc}, Options{})
		unit := findings(fs, "unit", Fail)
		if len(unit) != 1 || !strings.Contains(unit[0].Fix, c.want) || !strings.Contains(unit[0].Message, "the cluster removed this member") {
			t.Errorf("data dir there=%v: want fix %q in:\n%s", c.dirThere, c.want, dump(fs))
		}
	}
}

// A member whose disk died (etcd exits 81): doctor names it and the one
// command that puts it back.
func TestDoctorOnALostDisk(t *testing.T) {
	inv := inventorytest.Parse(t, inventorytest.Loopback("t", `tls = "off"`, 3, []int{1, 2, 3, 4, 5, 6}))
	h, _ := inv.Host("m2")
	svc := &hosttest.Services{States: []host.UnitState{{Active: "failed", Result: "exit-code", ExitStatus: node.ExitLostData}}}
	fs := Run(context.Background(), inv, workflow.Target{Host: h, FS: hosttest.NewMemFS(), Services: svc}, Options{})
	unit := findings(fs, "unit", Fail)
	if len(unit) != 1 || !strings.Contains(unit[0].Message, "exited 81: the cluster has this member, but its data dir holds none of its data") ||
		!strings.Contains(unit[0].Fix, "etcd-installer member replace t.toml m2") {
		t.Errorf("want the lost disk and member replace in:\n%s", dump(fs))
	}
}
