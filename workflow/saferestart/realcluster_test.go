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

// restarts runs safe restarts of a real cluster's members concurrently and
// collects their results.
type restarts struct {
	t   *testing.T
	lc  *localcluster.Cluster
	mu  sync.Mutex
	wg  sync.WaitGroup
	res map[string]Result
}

func newRestarts(t *testing.T, lc *localcluster.Cluster) *restarts {
	return &restarts{t: t, lc: lc, res: map[string]Result{}}
}

// start begins member name's safe restart once ready is closed (nil: at
// once).
func (rs *restarts) start(name string, lock Locker, leaderWait time.Duration, ready <-chan struct{}) {
	tg, _ := rs.lc.Target(name)
	o := realOpts(rs.lc, name, lock)
	o.Unit, o.LeaderWait = tg.Unit(), leaderWait
	rs.wg.Add(1)
	go func() {
		defer rs.wg.Done()
		if ready != nil {
			<-ready
		}
		r, err := Run(context.Background(), tg.Services, o, localclustertest.Log(rs.t))
		if err != nil {
			rs.t.Errorf("%s: %v", name, err)
		}
		rs.mu.Lock()
		rs.res[name] = r
		rs.mu.Unlock()
	}()
}

// wait returns every result once all have ended.
func (rs *restarts) wait() map[string]Result {
	rs.wg.Wait()
	return rs.res
}

// restartAll runs a safe restart of every member at the same moment, as
// `apt upgrade` on every host does, and returns each one's result.
func restartAll(t *testing.T, lc *localcluster.Cluster, lock Locker) map[string]Result {
	t.Helper()
	rs := newRestarts(t, lc)
	start := make(chan struct{})
	for _, m := range lc.Inv.Members {
		rs.start(m.Name, lock, 0, start)
	}
	close(start)
	return rs.wait()
}

// restartedAfter names the members restarted after leader.
func restartedAfter(res map[string]Result, leader string) []string {
	var after []string
	for n, r := range res {
		if n != leader && r.Down.After(res[leader].Down) {
			after = append(after, n)
		}
	}
	sort.Strings(after)
	return after
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

// together is the planted bug: a "lock" that lets every member in at
// once and holds each at its last check before the restart until all have
// passed their quorum checks. Without that gate the planted bug is not
// certain to show: a member whose check comes after another's restart
// began is refused by the quorum check (which is right, but leaves no
// overlap for the check under test to see).
type together struct {
	arrived sync.WaitGroup
	all     chan struct{}
}

func newTogether(n int) *together {
	g := &together{all: make(chan struct{})}
	g.arrived.Add(n)
	go func() { g.arrived.Wait(); close(g.all) }()
	return g
}

func (g *together) lock(context.Context, []string, string, time.Duration, func(string)) (Held, error) {
	return g, nil
}

func (g *together) Check(ctx context.Context) error {
	g.arrived.Done()
	select {
	case <-g.all:
		return nil
	case <-time.After(time.Minute):
		return errors.New("not every member reached its restart within a minute")
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *together) Waiters(context.Context) (int, error) { return 0, nil }
func (g *together) Release(context.Context) error        { return nil }

// TestOverlapCheckIsNotBlind plants the bug the lock prevents (a lock
// that lets everyone in): the same check must see the restarts overlap.
func TestOverlapCheckIsNotBlind(t *testing.T) {
	lc := localclustertest.Started(t, localclustertest.Inventory(t, 3, ""))
	res := restartAll(t, lc, newTogether(len(lc.Inv.Members)).lock)
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

// leaderName is the current leader's member name.
func leaderName(t *testing.T, c *cluster.Client, lc *localcluster.Cluster) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	members, err := c.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range lc.Inv.ClientURLs() {
		st := c.Status(ctx, u)
		for _, m := range members {
			if st.Err == nil && st.Leader != 0 && m.ID == st.Leader {
				return m.Name
			}
		}
	}
	t.Fatal("no leader")
	return ""
}

// TestLeaderRestartsLast queues the leader's safe restart first and the
// followers' behind it (a held lock makes the order certain): with
// LeaderWait the leader lets them go first and restarts last; without it
// (the planted bug, and the order of the queue) it goes first, which the
// same check must see.
func TestLeaderRestartsLast(t *testing.T) {
	lc := localclustertest.Started(t, localclustertest.Inventory(t, 3, ""))
	c, err := cluster.Dial(lc.Inv.ClientURLs(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waiters := func(h *cluster.Held, n int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			got, err := h.Waiters(context.Background())
			if err == nil && got == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d waiters for the lock (%v), want %d", got, err, n)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for _, leaderWait := range []time.Duration{time.Minute, 0} {
		leader := leaderName(t, c, lc)
		h, err := cluster.Lock(context.Background(), c.KV(), "the test, ordering the queue", time.Minute, nil)
		if err != nil {
			t.Fatal(err)
		}
		rs := newRestarts(t, lc)
		lock := EtcdLock(cluster.Credentials{})
		rs.start(leader, lock, leaderWait, nil)
		waiters(h, 1)
		for _, m := range lc.Inv.Members {
			if m.Name != leader {
				rs.start(m.Name, lock, leaderWait, nil)
			}
		}
		waiters(h, 3)
		if err := h.Release(context.Background()); err != nil {
			t.Fatal(err)
		}
		res := rs.wait()
		if bad := overlaps(res); len(bad) > 0 {
			t.Errorf("restarts overlapped: %s", strings.Join(bad, "; "))
		}
		after := restartedAfter(res, leader)
		t.Logf("leader-wait %s: leader %s restarted before %d followers (it let others go first %d times)", leaderWait, leader, len(after), res[leader].Yielded)
		switch {
		case leaderWait > 0 && (len(after) > 0 || res[leader].Yielded != 1):
			t.Errorf("with leader-wait: the leader %s restarted before %v, having let others go first %d times (want once)", leader, after, res[leader].Yielded)
		case leaderWait == 0 && len(after) != 2:
			t.Errorf("without leader-wait the leader, first in the queue, restarted before %d followers, want 2: the check cannot tell", len(after))
		}
	}
}

// TestLeaderWaitsForHostsStartingTogether starts the leader's safe restart
// alone and the followers' once it holds the lock, as hosts upgraded
// together do a moment apart: within its grace the leader sees them queue
// and goes last.
func TestLeaderWaitsForHostsStartingTogether(t *testing.T) {
	lc := localclustertest.Started(t, localclustertest.Inventory(t, 3, ""))
	c, err := cluster.Dial(lc.Inv.ClientURLs(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	leader := leaderName(t, c, lc)
	rs := newRestarts(t, lc)
	lock := EtcdLock(cluster.Credentials{})
	rs.start(leader, lock, time.Minute, nil)
	deadline := time.Now().Add(30 * time.Second)
	for cluster.Holder(context.Background(), c.KV()) != "test restart of "+leader {
		if time.Now().After(deadline) {
			t.Fatalf("the leader's run did not take the lock within 30 s (holder: %s)", cluster.Holder(context.Background(), c.KV()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, m := range lc.Inv.Members {
		if m.Name != leader {
			rs.start(m.Name, lock, time.Minute, nil)
		}
	}
	res := rs.wait()
	after := restartedAfter(res, leader)
	if bad := overlaps(res); len(bad) > 0 {
		t.Errorf("restarts overlapped: %s", strings.Join(bad, "; "))
	}
	if len(after) > 0 || res[leader].Yielded != 1 {
		t.Errorf("the leader %s restarted before %v (let others go first %d times)", leader, after, res[leader].Yielded)
	}
}
