package maintenance

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-appliance/appliance/cluster"
	"github.com/etcd-appliance/appliance/internal/etcdtest"
	"github.com/etcd-appliance/appliance/inventory/inventorytest"
	"github.com/etcd-appliance/appliance/workflow/localcluster/localclustertest"
)

// latencies is a steady writer: a put every 10 ms, each one's latency
// recorded with when it started; a put that does not succeed within 10 s,
// retries included, is failed.
type latencies struct {
	mu      sync.Mutex
	at      []time.Time
	took    []time.Duration
	failed  int
	done    chan struct{}
	stopped sync.WaitGroup
}

func steadyWriter(cli *clientv3.Client) *latencies {
	l := &latencies{done: make(chan struct{})}
	l.stopped.Add(1)
	go func() {
		defer l.stopped.Done()
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for i := 0; i < 10_000_000; i++ {
			select {
			case <-l.done:
				return
			case <-t.C:
			}
			// An application's write: retried (a member restarting
			// refuses it) until its 10 s deadline; its latency is what
			// the application sees, retries included.
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			var err error
			for attempt := 0; attempt < 1000; attempt++ {
				actx, acancel := context.WithTimeout(ctx, 3*time.Second)
				_, err = cli.Put(actx, "steady", fmt.Sprint(i))
				acancel()
				if err == nil || ctx.Err() != nil {
					break
				}
				select {
				case <-ctx.Done():
				case <-time.After(20 * time.Millisecond):
				}
			}
			cancel()
			l.mu.Lock()
			if err != nil {
				l.failed++
			} else {
				l.at = append(l.at, start)
				l.took = append(l.took, time.Since(start))
			}
			l.mu.Unlock()
		}
	}()
	return l
}

func (l *latencies) stop() { close(l.done); l.stopped.Wait() }

// p99 of the puts started in [from, to).
func (l *latencies) p99(from, to time.Time) (time.Duration, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var d []time.Duration
	for i, at := range l.at {
		if !at.Before(from) && at.Before(to) {
			d = append(d, l.took[i])
		}
	}
	if len(d) == 0 {
		return 0, 0
	}
	slices.Sort(d)
	return d[(len(d)*99)/100], len(d)
}

// BenchmarkMaintenance1GiB: three members whose backends are about 1 GiB,
// half of it free pages (1 GiB of 1 MiB values written, half deleted and
// compacted), defragmented under a steady writer that uses every
// endpoint, side by side in one run:
//   - scheduled: what etcd-maintenance.timer does, each host restarting
//     its own member (etcd defragments at start, before it serves),
//     followers first, the leader's host a round later. Targets: 0 failed
//     writes, write p99 during it at most 2x the p99 of the 20 s before.
//   - online: the Defragment API, one member at a time, followers first
//     (what `etcd-installer maintenance INV` and the NOSPACE recovery do):
//     every request the writer sends to the member being defragmented
//     waits for its whole duration. Reported, no latency target.
func BenchmarkMaintenance1GiB(b *testing.B) {
	for _, mode := range []string{"scheduled", "online"} {
		b.Run(mode, func(b *testing.B) {
			text := localclustertest.Text(b, 3, `log_level = "warn"`+"\n"+`quota_backend = "4GiB"`) +
				"\n[maintenance]\nschedule = \"daily\"\ndefrag_free_percent = 40\ndefrag_min_free = \"64MiB\"\n"
			lc := localclustertest.Started(b, inventorytest.Parse(b, text))
			mc, err := cluster.Dial(lc.Inv.ClientURLs(), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer mc.Close()
			cli := etcdtest.Client(b, lc.Inv.ClientURLs())
			o := Options{FreePercent: 40, MinFree: 64 << 20, Lock: cluster.EtcdLocker(cluster.Credentials{}), Holder: "bench", Poll: time.Second}
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				fragment(b, cli, 1024, 512, 1<<20)
				w := steadyWriter(cli)
				before := time.Now()
				time.Sleep(20 * time.Second) // the baseline's window, not a wait for readiness
				start := time.Now()
				b.StartTimer()
				var done []Defrag
				if mode == "online" {
					res, err := Run(context.Background(), mc, o, testLog(b))
					if err != nil {
						b.Fatal(err)
					}
					done = res.Defragmented
				} else {
					// One firing: the leader's host waits for the
					// followers' within its run.
					res, _ := timersFire(b, lc, mc, o)
					for _, r := range res {
						done = append(done, r.Defragmented...)
					}
				}
				b.StopTimer()
				end := time.Now()
				w.stop()
				if len(done) != 3 {
					b.Fatalf("defragmented %+v, want the three members", done)
				}
				p99Before, nBefore := w.p99(before, start)
				p99During, nDuring := w.p99(start, end)
				var took time.Duration
				var size int64
				for _, d := range done {
					took += d.Took
					size += d.Before
				}
				ratio := float64(p99During) / float64(p99Before)
				b.ReportMetric(float64(size)/3/(1<<30), "GiB/member")
				b.ReportMetric(took.Seconds()/3, "s/member")
				b.ReportMetric(end.Sub(start).Seconds(), "run-s")
				b.ReportMetric(float64(p99Before.Microseconds())/1000, "p99-before-ms")
				b.ReportMetric(float64(p99During.Microseconds())/1000, "p99-during-ms")
				b.ReportMetric(ratio, "p99-ratio")
				b.ReportMetric(float64(w.failed), "failed-writes")
				b.Logf("%s: writes %d before, %d during; %+v", mode, nBefore, nDuring, done)
				if w.failed != 0 {
					b.Errorf("%d writes failed", w.failed)
				}
				if mode == "scheduled" && ratio > 2 {
					b.Errorf("write p99 during the scheduled maintenance %s, before it %s: ratio %.2f, target at most 2", p99During, p99Before, ratio)
				}
			}
		})
	}
}
