package doctor

import (
	"context"
	"strings"
	"testing"

	"github.com/etcd-appliance/appliance/cluster"
	"github.com/etcd-appliance/appliance/host"
	"github.com/etcd-appliance/appliance/host/hosttest"
	"github.com/etcd-appliance/appliance/internal/etcdtest"
	"github.com/etcd-appliance/appliance/workflow"
	"github.com/etcd-appliance/appliance/workflow/localcluster/localclustertest"
)

// A real member filled to its quota: doctor FAILs the space check with
// NOSPACE and what to do; before that, it says the backend's size.
func TestDoctorOnASpaceAlarm(t *testing.T) {
	inv := localclustertest.Inventory(t, 1, `quota_backend = "64MiB"`)
	lc := localclustertest.Started(t, inv)
	h, _ := inv.Host(inv.Members[0].Name)
	target := workflow.Target{Host: h, FS: hosttest.NewMemFS(), Services: &hosttest.Services{States: []host.UnitState{{Active: "active"}}}}
	fs := Run(context.Background(), inv, target, Options{})
	if ok := findings(fs, "space", OK); len(ok) != 1 || !strings.HasPrefix(ok[0].Message, "no alarm; backend ") {
		t.Fatalf("before the alarm:\n%s", dump(fs))
	}
	c, err := lc.Dial(inv.ClientURLs())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	kv := c.(*cluster.Client).KV()
	err = etcdtest.Fill(kv, "fill", 100, 1<<20)
	if err == nil || !strings.Contains(err.Error(), "database space exceeded") {
		t.Fatalf("filling 64 MiB: %v", err)
	}
	fs = Run(context.Background(), inv, target, Options{})
	fail := findings(fs, "space", Fail)
	if len(fail) != 1 || !strings.Contains(fail[0].Message, "alarm NOSPACE") || !strings.Contains(fail[0].Fix, "etcdctl alarm disarm") {
		t.Fatalf("under NOSPACE:\n%s", dump(fs))
	}
}
