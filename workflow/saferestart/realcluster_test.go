package saferestart

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcd-appliance/appliance/cluster"
	"github.com/etcd-appliance/appliance/workflow/localcluster"
	"github.com/etcd-appliance/appliance/workflow/localcluster/localclustertest"
)

func realOpts(lc *localcluster.Cluster, name string, lock Locker) Options {
	return Options{
		Unit: "etcd-" + name + ".service", Name: name, Endpoints: lc.Inv.ClientURLs(),
		Dial: lc.Dial, Lock: lock, Holder: "test restart of " + name,
		LockWait: 2 * time.Minute, ReadyWait: time.Minute, Again: "etcd-installer safe-restart",
	}
}

// restartAll runs a safe restart of every member at the same moment, as
// `apt upgrade` on every host does, and returns each one's result.
func restartAll(t *testing.T, lc *localcluster.Cluster, lock Locker) map[string]Result {
	t.Helper()
	var mu sync.Mutex
	out := map[string]Result{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, m := range lc.Inv.Members {
		tg, _ := lc.Target(m.Name)
		o := realOpts(lc, m.Name, lock)
		o.Unit = tg.Unit()
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			res, err := Run(context.Background(), tg.Services, o, localclustertest.Log(t))
			if err != nil {
				t.Errorf("%s: %v", m.Name, err)
			}
			mu.Lock()
			out[m.Name] = res
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	return out
}

// overlaps names the members whose out-of-service windows overlap.
func overlaps(res map[string]Result) []string {
	type window struct {
		name     string
		down, up time.Time
	}
	var ws []window
	for n, r := range res {
		if r.Restarted {
			ws = append(ws, window{n, r.Down, r.Up})
		}
	}
	sort.Slice(ws, func(i, j int) bool { return ws[i].down.Before(ws[j].down) })
	var bad []string
	for i := 1; i < len(ws); i++ {
		if ws[i].down.Before(ws[i-1].up) {
			bad = append(bad, fmt.Sprintf("%s went down %s before %s served again", ws[i].name, ws[i-1].up.Sub(ws[i].down).Round(time.Millisecond), ws[i-1].name))
		}
	}
	return bad
}

// TestSimultaneousRestartsTakeTurns restarts all three members of a real
// cluster at once under a writer: the lock in etcd puts them one after
// the other, each once the one before serves again, and no write fails.
func TestSimultaneousRestartsTakeTurns(t *testing.T) {
	lc := localclustertest.Started(t, localclustertest.Inventory(t, 3, ""))
	w := localclustertest.StartWriter(t, lc, lc.Inv.ClientURLs())
	res := restartAll(t, lc, EtcdLock(cluster.Credentials{}))
	acked, failed := w.Finish()
	for n, r := range res {
		if !r.Restarted {
			t.Errorf("%s was not restarted: %+v", n, r)
		}
		t.Logf("%s: waited %s for the lock, out of service %s", n, r.Lock.Round(time.Millisecond), r.Up.Sub(r.Down).Round(time.Millisecond))
	}
	if bad := overlaps(res); len(bad) > 0 {
		t.Errorf("restarts overlapped: %s", strings.Join(bad, "; "))
	}
	t.Logf("%d writes acknowledged during the restarts, %d failed, %d retried in time", len(acked), len(failed), w.Retried())
	if len(failed) > 0 {
		t.Errorf("%d writes failed, first: %v", len(failed), failed[0])
	}
	// The lock is free again: nobody's key is left under the prefix.
	c, err := cluster.Dial(lc.Inv.ClientURLs(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if h := cluster.Holder(context.Background(), c.KV()); h != "nobody" {
		t.Errorf("the lock is still held by %s", h)
	}
}

// TestOverlapCheckIsNotBlind plants the bug the lock prevents (no lock):
// the same check must see the restarts overlap.
func TestOverlapCheckIsNotBlind(t *testing.T) {
	lc := localclustertest.Started(t, localclustertest.Inventory(t, 3, ""))
	noLock := func(context.Context, []string, string, time.Duration, func(string)) (Held, error) {
		return fakeHeld{&lockLog{}}, nil
	}
	res := restartAll(t, lc, noLock)
	if bad := overlaps(res); len(bad) == 0 {
		t.Fatalf("without the lock the restarts did not overlap, so the check cannot tell: %+v", res)
	}
}

// TestNotRestartedWithoutQuorum stops one member of three: restarting
// another would leave one serving, so it is not restarted and its process
// keeps running; and a waiter for a held lock gives up at its deadline,
// naming the holder.
func TestNotRestartedWithoutQuorum(t *testing.T) {
	lc := localclustertest.Started(t, localclustertest.Inventory(t, 3, ""))
	ctx := context.Background()
	tStop, _ := lc.Target("m2")
	if err := tStop.Services.Stop(ctx, tStop.Unit()); err != nil {
		t.Fatal(err)
	}
	t1, _ := lc.Target("m1")
	before, _ := t1.Services.State(ctx, t1.Unit())
	o := realOpts(lc, "m1", EtcdLock(cluster.Credentials{}))
	o.Unit = t1.Unit()
	_, err := Run(ctx, t1.Services, o, localclustertest.Log(t))
	if !errors.Is(err, ErrNotRestarted) || !strings.Contains(err.Error(), "(not serving: m2)") {
		t.Fatalf("restarting m1 with m2 stopped: %v", err)
	}
	after, _ := t1.Services.State(ctx, t1.Unit())
	if after.MainPID != before.MainPID || after.Active != "active" {
		t.Fatalf("m1 was touched: %+v, before %+v", after, before)
	}

	c, err := cluster.Dial(lc.Inv.ClientURLs()[:2], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	held, err := cluster.Lock(ctx, c.KV(), "an operator's defragmentation", time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	o.LockWait = 2 * time.Second
	_, err = Run(ctx, t1.Services, o, localclustertest.Log(t))
	if !errors.Is(err, ErrNotRestarted) || !strings.Contains(err.Error(), cluster.ErrLockTimeout.Error()) {
		t.Fatalf("waiting for a held lock: %v", err)
	}
	if !strings.Contains(err.Error(), "held by an operator's defragmentation") {
		t.Errorf("the timeout should name the holder: %v", err)
	}
	if err := held.Check(ctx); err != nil {
		t.Errorf("a held lock: %v", err)
	}
	if err := held.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := held.Check(ctx); !errors.Is(err, cluster.ErrLockLost) {
		t.Errorf("a released lock still checks out: %v", err)
	}
}
