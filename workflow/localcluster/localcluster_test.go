package localcluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/etcd-appliance/appliance/workflow/apply"
	"github.com/etcd-appliance/appliance/workflow/localcluster/localclustertest"
)

func TestLocalClusterRunRestartIdempotent(t *testing.T) {
	lc := localclustertest.New(t, localclustertest.Inventory(t, 3, ""))
	ctx := context.Background()
	if err := lc.Start(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	if cs := localclustertest.Status(t, lc); !cs.Healthy {
		t.Fatalf("not healthy: %s %v", cs.Verdict(), cs.Problems)
	}
	// A second apply while running changes and restarts nothing.
	for _, tg := range lc.Targets {
		res, err := apply.Host(ctx, lc.Inv, tg, apply.Options{Dial: lc.Dial}, localclustertest.Log(t))
		if err != nil || res.Changed() {
			t.Errorf("%s: second apply: %s %v", tg.Host.Name, res.Summary(), err)
		}
	}
	// Stopped and started again, the members come back from their data.
	if err := lc.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := lc.Start(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	if cs := localclustertest.Status(t, lc); !cs.Healthy {
		t.Fatalf("not healthy after restart: %s %v", cs.Verdict(), cs.Problems)
	}
}
