package doctor

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/etcd-appliance/appliance/internal/etcdtest"
	"github.com/etcd-appliance/appliance/workflow/localcluster/localclustertest"
)

// After a power cut of every member, starting them in any order brings the
// cluster back, and doctor explains what a lone member waits for.
func TestPowerCutEveryMember(t *testing.T) {
	lc := localclustertest.New(t, localclustertest.Inventory(t, 3, ""))
	ctx := context.Background()
	if err := lc.Start(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, tg := range lc.Targets {
		lc.Processes(tg.Host.Name).Kill(tg.Unit())
	}
	last, _ := lc.Target("m2")
	if err := last.Services.Start(ctx, last.Unit()); err != nil {
		t.Fatal(err)
	}
	// Alone, m2 waits for quorum; doctor says for whom.
	var fs []Finding
	if !etcdtest.Eventually(30*time.Second, 200*time.Millisecond, func() bool {
		fs = Run(ctx, lc.Inv, last, Options{})
		return len(findings(fs, "unit", Warn)) > 0 && strings.Contains(findings(fs, "unit", Warn)[0].Message, "waits for its peers")
	}) {
		t.Fatalf("doctor does not explain the wait:\n%s", dump(fs))
	}
	expectFinding(t, fs, "unit", Warn, "waiting for m0, m1", "start etcd on m0, m1 (after a power cut")
	if w := findings(fs, "unit", Warn)[0]; !strings.Contains(w.Message, "(started on its existing data: the members it waits for must be running)") {
		t.Errorf("a member restarted after a power cut does not say it rejoins: %s", w.Message)
	}
	for _, name := range []string{"m1", "m0"} {
		tg, _ := lc.Target(name)
		if err := tg.Services.Start(ctx, tg.Unit()); err != nil {
			t.Fatal(err)
		}
	}
	if err := lc.WaitReady(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	if cs := localclustertest.Status(t, lc); !cs.Healthy {
		t.Fatalf("not healthy after the power cut: %s %v", cs.Verdict(), cs.Problems)
	}
}
