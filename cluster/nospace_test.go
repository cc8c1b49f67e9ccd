package cluster_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/etcd-appliance/appliance/cluster"
	"github.com/etcd-appliance/appliance/internal/etcdtest"
	"github.com/etcd-appliance/appliance/inventory"
)

// A real member filled past its quota raises NOSPACE; status names it
// with the fix, and the verdict is not healthy.
func TestStatusOnARealSpaceAlarm(t *testing.T) {
	c := etcdtest.NewClusterIn(t, 1, t.TempDir())
	m := c.Members[0]
	m.Args = append(m.Args, "--quota-backend-bytes", fmt.Sprint(16<<20))
	m.Start()
	if !etcdtest.Eventually(time.Minute, 100*time.Millisecond, func() bool { return etcdtest.ClusterVersion(m.ClientURL) != "" }) {
		t.Fatal("etcd did not start")
	}
	cli := etcdtest.Client(t, []string{m.ClientURL})
	err := etcdtest.Fill(cli, "fill", 100, 512<<10)
	if err == nil || !strings.Contains(err.Error(), "database space exceeded") {
		t.Fatalf("filling 16 MiB did not raise NOSPACE: %v", err)
	}
	inv, err := inventory.ForEndpoints([]string{m.ClientURL})
	if err != nil {
		t.Fatal(err)
	}
	mc, err := cluster.Dial([]string{m.ClientURL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Close()
	cs := cluster.Status(context.Background(), inv, mc)
	if cs.Healthy || !strings.Contains(strings.Join(cs.Problems, "\n"), "alarm NOSPACE (raised by "+cs.Rows[0].Name+")") ||
		!strings.Contains(cs.Verdict(), "has an alarm raised") || !strings.Contains(strings.Join(cs.Problems, "\n"), "raise the members' --quota-backend-bytes") {
		t.Fatalf("status under NOSPACE: %s %q", cs.Verdict(), cs.Problems)
	}
}
