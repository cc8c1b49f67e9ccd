package maintenance

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/etcd-appliance/appliance/cluster"
	"github.com/etcd-appliance/appliance/internal/etcdtest"
	"github.com/etcd-appliance/appliance/inventory/inventorytest"
	"github.com/etcd-appliance/appliance/layout"
	"github.com/etcd-appliance/appliance/workflow/localcluster"
	"github.com/etcd-appliance/appliance/workflow/localcluster/localclustertest"
	"github.com/etcd-appliance/appliance/workflow/saferestart"
)

// timersFire runs every member's scheduled maintenance at the same
// moment, as their timers do, each restarting its own member through a
// real safe restart; restarted lists the members in the order they were
// restarted.
func timersFire(t testing.TB, lc *localcluster.Cluster, mc *cluster.Client, o Options) (out map[string]Result, restarted []string) {
	t.Helper()
	var mu sync.Mutex
	out = map[string]Result{}
	var wg sync.WaitGroup
	for _, m := range lc.Inv.Members {
		tg, _ := lc.Target(m.Name)
		restart := func(ctx context.Context, why string, held cluster.HeldLock) error {
			mu.Lock()
			restarted = append(restarted, m.Name)
			mu.Unlock()
			res, err := saferestart.Run(ctx, tg.Services, saferestart.Options{
				Unit: tg.Unit(), Name: m.Name, Endpoints: lc.Inv.ClientURLs(), Dial: lc.Dial,
				Held: held, Holder: why,
				LockWait: 2 * time.Minute, ReadyWait: 2 * time.Minute, Again: "test",
			}, testLog(t))
			if err == nil && !res.Restarted {
				err = fmt.Errorf("not restarted: %s", res.Skipped)
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			mo := o
			mo.Self = m.Name
			mo.Lock = cluster.EtcdLocker(cluster.Credentials{})
			mo.Holder = "test: scheduled maintenance of " + m.Name
			res, err := Scheduled(context.Background(), mc, mo, DefragAtStart(tg.FS, mo.MinFree, restart), testLog(t))
			if err != nil {
				t.Errorf("%s: %v", m.Name, err)
			}
			mu.Lock()
			out[m.Name] = res
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out, restarted
}

// Each host defragments its own member by a safe restart (etcd
// defragments at start, before it serves), followers first: the leader's
// host waits a round. No write fails, and the writer, on every endpoint,
// is never stalled for a defragmentation's duration.
func TestScheduledDefragmentsByRestartFollowersFirst(t *testing.T) {
	text := localclustertest.Text(t, 3, "") + "\n[maintenance]\nschedule = \"daily\"\ndefrag_free_percent = 20\ndefrag_min_free = \"4MiB\"\n"
	lc := localclustertest.Started(t, inventorytest.Parse(t, text))
	mc, err := cluster.Dial(lc.Inv.ClientURLs(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Close()
	cli := etcdtest.Client(t, lc.Inv.ClientURLs())
	fragment(t, cli, 60, 10, 512<<10)
	var leader string
	for _, r := range localclustertest.Status(t, lc).Rows {
		if r.Leader {
			leader = r.Name
		}
	}
	o := Options{FreePercent: 20, MinFree: 4 << 20, Poll: 200 * time.Millisecond, LeaderWait: 2 * time.Minute}

	w := steadyWriter(cli)
	first, order := timersFire(t, lc, mc, o)
	second, again := timersFire(t, lc, mc, o)
	w.stop()
	if len(order) != 3 || order[2] != leader {
		t.Errorf("members restarted in the order %v; want the followers, then the leader %s", order, leader)
	}
	for name, r := range first {
		d := Defrag{}
		if len(r.Defragmented) == 1 {
			d = r.Defragmented[0]
		}
		switch {
		case len(r.Defragmented) != 1 || d.After >= d.Before/2:
			t.Errorf("%s in the first run: %+v, want it defragmented to less than half", name, r)
		case name == leader && d.LeaderTo == "":
			t.Errorf("the leader %s: %+v, want its leadership handed over", name, r)
		}
	}
	for name, r := range second {
		if len(r.Fine) != 1 {
			t.Errorf("%s in the second run: %+v, want nothing to do", name, r)
		}
	}
	if len(again) != 0 {
		t.Errorf("the second run restarted %v", again)
	}
	for _, m := range lc.Inv.Members {
		tg, _ := lc.Target(m.Name)
		if _, err := tg.FS.Stat(layout.DefragmentEnv); err == nil {
			t.Errorf("%s: %s left behind: every later restart would defragment", m.Name, layout.DefragmentEnv)
		}
	}
	if w.failed != 0 {
		t.Errorf("%d writes failed", w.failed)
	}
	p99, n := w.p99(time.Time{}, time.Now())
	t.Logf("%d writes through every endpoint across three restarts with defragmentation, p99 %s", n, p99)
}
