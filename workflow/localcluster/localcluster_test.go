package localcluster_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/etcd-appliance/appliance/cluster"
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

// A rolling apply takes the cluster's maintenance lock around each
// member's restart: while another holds it (a package upgrade restarting
// a member elsewhere), apply restarts nothing; once it is free, apply
// goes on.
func TestRollingApplyWaitsForTheMaintenanceLock(t *testing.T) {
	lc := localclustertest.Started(t, localclustertest.Inventory(t, 3, ""))
	ctx := context.Background()
	c, err := cluster.Dial(lc.Inv.ClientURLs(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	held, err := cluster.Lock(ctx, c.KV(), "a package upgrade on another host", time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	pids := func() (out []int) {
		for _, tg := range lc.Targets {
			st, _ := tg.Services.State(ctx, tg.Unit())
			out = append(out, st.MainPID)
		}
		return out
	}
	before := pids()
	tuned := *lc.Inv
	tuned.Cluster.HeartbeatIntervalMs = 150
	log, hook := logtest.NewNullLogger()
	done := make(chan []apply.Outcome, 1)
	go func() {
		done <- apply.All(ctx, &tuned, lc.Targets, apply.AllOptions{Options: apply.Options{Dial: lc.Dial}, WaitReady: true, Wait: time.Minute}, log)
	}()
	waiting := func() bool {
		for _, e := range hook.AllEntries() {
			if strings.HasPrefix(e.Message, "waiting for the maintenance lock") && e.Data["holder"] == "a package upgrade on another host" {
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(30 * time.Second)
	for !waiting() {
		if time.Now().After(deadline) {
			t.Fatal("apply did not wait for the held maintenance lock")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := pids(); !slices.Equal(got, before) {
		t.Fatalf("a member restarted while the lock was held: %v, then %v", before, got)
	}
	if err := held.Release(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case out := <-done:
		for _, o := range out {
			if o.Err != nil || !o.Rolling {
				t.Errorf("%s: rolling=%v %v", o.Name, o.Rolling, o.Err)
			}
		}
	case <-time.After(3 * time.Minute):
		t.Fatal("apply did not go on once the lock was free")
	}
	after := pids()
	for i := range after {
		if after[i] == before[i] {
			t.Errorf("%s was not restarted for the new heartbeat", lc.Targets[i].Host.Name)
		}
	}
}
