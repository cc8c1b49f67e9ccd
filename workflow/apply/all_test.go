package apply_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcd-appliance/appliance/cluster"
	"github.com/etcd-appliance/appliance/host"
	"github.com/etcd-appliance/appliance/workflow"
	"github.com/etcd-appliance/appliance/workflow/apply"
	"github.com/etcd-appliance/appliance/workflow/localcluster"
	"github.com/etcd-appliance/appliance/workflow/localcluster/localclustertest"
)

// restarts records each restart and which other members had not come
// back from theirs at that moment: a rolling restart has none.
type restarts struct {
	mu    sync.Mutex
	lc    *localcluster.Cluster
	at    map[string]time.Time
	notes []string
}

type restartRecorder struct {
	host.Services
	name string
	r    *restarts
}

func (rr restartRecorder) Restart(ctx context.Context, unit string) error {
	r := rr.r
	r.mu.Lock()
	var busy []string
	for name, at := range r.at {
		tg, _ := r.lc.Target(name)
		st, err := tg.Services.State(ctx, tg.Unit())
		if err != nil || st.Active != "active" || !st.Since.After(at) {
			busy = append(busy, name)
		}
	}
	r.at[rr.name] = time.Now()
	r.notes = append(r.notes, fmt.Sprintf("%s (others restarting: %v)", rr.name, busy))
	r.mu.Unlock()
	return rr.Services.Restart(ctx, unit)
}

func TestApplyAllRestartsOneAtATimeLeaderLast(t *testing.T) {
	lc := localclustertest.New(t, localclustertest.Inventory(t, 3, ""))
	ctx := context.Background()
	if err := lc.Start(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	rec := &restarts{lc: lc, at: map[string]time.Time{}}
	targets := append([]workflow.Target(nil), lc.Targets...)
	for i := range targets {
		targets[i].Services = restartRecorder{Services: targets[i].Services, name: targets[i].Host.Name, r: rec}
	}
	leader := cluster.LeaderName(ctx, lc.Inv, lc.Dial)
	if leader == "" {
		t.Fatal("no leader")
	}
	w := localclustertest.StartWriter(t, lc, lc.Inv.ClientURLs())

	// A tuning change reaches every member's etcd.conf: each must restart.
	changed := *lc.Inv
	changed.Cluster.SnapshotCount = 20000
	// The dry run shows the rolling restart to come, in its order, and
	// restarts nothing.
	dry := apply.All(ctx, &changed, targets, apply.AllOptions{Options: apply.Options{Dial: lc.Dial, Plan: workflow.NewPlan(true, nil)}}, localclustertest.Log(t))
	for _, o := range dry {
		if o.Err != nil || !o.Rolling || o.Of != 3 || o.Leader != (o.Name == leader) || (o.Order == 3) != (o.Name == leader) ||
			!strings.Contains(o.Res.Plans(), "would restart the unit") {
			t.Errorf("dry run on %s: %q order %d of %d leader=%v err=%v", o.Name, o.Res.Plans(), o.Order, o.Of, o.Leader, o.Err)
		}
	}
	if len(rec.notes) != 0 {
		t.Fatalf("the dry run restarted %v", rec.notes)
	}
	out := apply.All(ctx, &changed, targets, apply.AllOptions{Options: apply.Options{Dial: lc.Dial}, WaitReady: true, Wait: time.Minute}, localclustertest.Log(t))
	for _, o := range out {
		if o.Err != nil || !o.Res.Restarted || !o.Rolling {
			t.Errorf("%s: %s rolling=%v err=%v", o.Name, o.Res.Summary(), o.Rolling, o.Err)
		}
	}
	notes := rec.notes
	if len(notes) != 3 {
		t.Fatalf("restarts: %v", notes)
	}
	for _, n := range notes {
		if !strings.HasSuffix(n, "(others restarting: [])") {
			t.Errorf("restarted while another member was restarting: %s (all: %v)", n, notes)
		}
	}
	if !strings.HasPrefix(notes[2], leader+" ") {
		t.Errorf("the leader %s did not restart last: %v", leader, notes)
	}
	acked, failed := w.Finish()
	if len(failed) > 0 {
		t.Errorf("%d of %d writes failed during the rolling restart, first: %v", len(failed), len(acked)+len(failed), failed[0])
	}
	t.Logf("rolling restart of 3 members: %v; %d writes acknowledged, %d failed, %d attempts retried", notes, len(acked), len(failed), w.Retried())

	// Applied again, nothing changes and nothing restarts.
	rec.notes = nil
	for _, o := range apply.All(ctx, &changed, targets, apply.AllOptions{Options: apply.Options{Dial: lc.Dial}, WaitReady: true, Wait: time.Minute}, localclustertest.Log(t)) {
		if o.Err != nil || o.Res.Changed() || o.Rolling {
			t.Errorf("second apply on %s: %s rolling=%v err=%v", o.Name, o.Res.Summary(), o.Rolling, o.Err)
		}
	}
	if len(rec.notes) != 0 {
		t.Errorf("second apply restarted %v", rec.notes)
	}
}
