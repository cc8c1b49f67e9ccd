package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"

	"github.com/etcd-appliance/appliance/internal/etcdtest"
)

// handovers is what writers through every member saw while leadership
// moved around a three-member cluster on bin.
type handovers struct {
	transfers, acked int
	// longest is the longest any write attempt waited, answered or not.
	longest time.Duration
	// changed counts the attempts answered "leader changed"; stalled
	// those that waited 5 s or more (only etcd's request timeout ends
	// a lost write that late).
	changed, stalled int
	// others are the errors other than "leader changed" and raft's
	// "proposal dropped" (a write proposed at the leader handing over).
	others []error
}

// moveLeadership starts a cluster on bin, writes through every member
// with two clients each, and moves leadership to the next member
// transfers times, each once writes flow again.
func moveLeadership(t *testing.T, bin string, transfers int) handovers {
	t.Helper()
	c := etcdtest.NewCluster(t, 3)
	if bin != "" {
		c.UseBinary(bin)
	}
	c.Start()
	c.WaitReady(30 * time.Second)
	var (
		h     handovers
		mu    sync.Mutex
		acked atomic.Int64
		stop  atomic.Bool
		wg    sync.WaitGroup
	)
	for i := range 6 {
		m := c.Members[i%3]
		cli := etcdtest.Client(t, []string{m.ClientURL})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; !stop.Load() && n < 100000; n++ {
				// Long enough for etcd's own request timeout (7 s) to
				// end a lost write: the stall is measured, not cut.
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				start := time.Now()
				_, err := cli.Put(ctx, fmt.Sprintf("h/%d", i), fmt.Sprint(n))
				took := time.Since(start)
				cancel()
				mu.Lock()
				h.longest = max(h.longest, took)
				if took >= 5*time.Second {
					h.stalled++
				}
				switch {
				case err == nil:
					acked.Add(1)
				case errors.Is(err, rpctypes.ErrLeaderChanged):
					h.changed++
				case strings.Contains(err.Error(), "raft proposal dropped"):
				default:
					h.others = append(h.others, err)
				}
				mu.Unlock()
				if err != nil {
					time.Sleep(10 * time.Millisecond) // as a client backs off
				}
			}
		}()
	}
	flowing := func() {
		t.Helper()
		from := acked.Load()
		if !etcdtest.Eventually(30*time.Second, 10*time.Millisecond, func() bool { return acked.Load() >= from+30 }) {
			t.Fatalf("writes stalled after %d transfers", h.transfers)
		}
	}
	flowing()
	for range transfers {
		leader := c.Leader(t)
		lc := etcdtest.Client(t, []string{leader.ClientURL})
		var next *etcdtest.Member
		for i, m := range c.Members {
			if m == leader {
				next = c.Members[(i+1)%3]
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		st, err := lc.Status(ctx, next.ClientURL)
		if err == nil {
			_, err = lc.MoveLeader(ctx, st.Header.MemberId)
		}
		cancel()
		if err != nil {
			t.Fatalf("moving leadership from %s to %s: %v", leader.Name, next.Name, err)
		}
		h.transfers++
		flowing()
	}
	stop.Store(true)
	wg.Wait()
	h.acked = int(acked.Load())
	return h
}

// A leader's handover (every planned restart of a leader ends with one)
// loses the writes that followers forward to it meanwhile, and upstream
// etcd's follower waits for each until its request timeout (7 s); ours
// answers "leader changed" within an election timeout of the new leader,
// so that the client tries again at once. Upstream, side by side, shows
// the stall the test would catch.
func TestHandoverAnswersLostWrites(t *testing.T) {
	const transfers = 12
	ours := moveLeadership(t, "", transfers)
	upstream := moveLeadership(t, etcdtest.UpstreamBinary(t), transfers)
	for _, r := range []struct {
		name string
		h    handovers
	}{{"ours", ours}, {"upstream", upstream}} {
		t.Logf("%s: %d leadership transfers under 6 writers, %d writes acknowledged, %d answered \"leader changed\", %d stalled 5 s or more, the longest attempt %s",
			r.name, r.h.transfers, r.h.acked, r.h.changed, r.h.stalled, r.h.longest.Round(time.Millisecond))
	}
	if ours.stalled > 0 || ours.longest > 4*time.Second {
		t.Errorf("ours: %d writes stalled, the longest attempt %s: a lost write should be answered about an election timeout (1 s) after the new leader", ours.stalled, ours.longest)
	}
	if ours.changed == 0 {
		t.Errorf("ours answered no write \"leader changed\" in %d transfers: the test did not see a lost write", transfers)
	}
	for _, err := range ours.others {
		t.Errorf("ours: a write failed with %v (want only \"leader changed\" or raft's \"proposal dropped\" at the leader handing over)", err)
	}
	if upstream.stalled == 0 {
		t.Errorf("upstream lost no write in %d transfers: the test no longer sees the stall it is about", transfers)
	}
}

// BenchmarkHandoverIntercept is what the handover costs each write, beside
// the write's own path (a raft round and an fsync: milliseconds).
func BenchmarkHandoverIntercept(b *testing.B) {
	h := newHandover(1000)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h.gen.Store(&ctx)
	info := &grpc.UnaryServerInfo{FullMethod: "/etcdserverpb.KV/Put"}
	handler := func(context.Context, any) (any, error) { return nil, nil }
	b.Run("direct", func(b *testing.B) {
		for range b.N {
			handler(context.Background(), nil)
		}
	})
	b.Run("handover", func(b *testing.B) {
		for range b.N {
			h.intercept(context.Background(), nil, info, handler)
		}
	})
	// Every write registers on the one generation: contended.
	b.Run("handover-parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				h.intercept(context.Background(), nil, info, handler)
			}
		})
	})
}

// fakeLeader is a server whose leader changes when the test says.
type fakeLeader struct {
	mu                 sync.Mutex
	changed            chan struct{}
	stopped            chan struct{}
	committed, applied atomic.Uint64
}

func newFakeLeader() *fakeLeader {
	return &fakeLeader{changed: make(chan struct{}), stopped: make(chan struct{})}
}

func (f *fakeLeader) CommittedIndex() uint64 { return f.committed.Load() }
func (f *fakeLeader) AppliedIndex() uint64   { return f.applied.Load() }

func (f *fakeLeader) LeaderChangedNotify() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

func (f *fakeLeader) StopNotify() <-chan struct{} { return f.stopped }

func (f *fakeLeader) change() {
	f.mu.Lock()
	defer f.mu.Unlock()
	close(f.changed)
	f.changed = make(chan struct{})
}

// The generations: a write pending across a change ends one grace after
// it; a write started after the change is not ended by it; a write that
// completes within the grace keeps its own result.
func TestHandoverGenerations(t *testing.T) {
	const grace = 500 * time.Millisecond
	f := newFakeLeader()
	defer close(f.stopped)
	h := newHandover(uint(grace / time.Millisecond))
	h.serving(f)
	info := &grpc.UnaryServerInfo{FullMethod: "/etcdserverpb.KV/Put"}
	// write waits for release or its context and says how it ended; it
	// returns once the write is pending.
	write := func(release <-chan struct{}) <-chan error {
		out, entered := make(chan error, 1), make(chan struct{})
		go func() {
			_, err := h.intercept(context.Background(), nil, info, func(ctx context.Context, _ any) (any, error) {
				close(entered)
				select {
				case <-release:
					return "ok", nil
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			})
			out <- err
		}()
		<-entered
		return out
	}
	never := make(chan struct{})
	lost := write(never)
	quick := make(chan struct{})
	answered := write(quick)
	before := h.gen.Load()
	changedAt := time.Now()
	f.change()
	// Started once the generation moved on: not ended by this change.
	if !etcdtest.Eventually(time.Second, time.Millisecond, func() bool { return h.gen.Load() != before }) {
		t.Fatal("the generation did not move on")
	}
	later := write(never)
	close(quick)
	if err := <-answered; err != nil {
		t.Errorf("a write answered within the grace: %v", err)
	}
	select {
	case err := <-lost:
		if !errors.Is(err, rpctypes.ErrGRPCLeaderChanged) {
			t.Errorf("a write pending across the change ended with %v, want leader changed", err)
		}
		if took := time.Since(changedAt); took < grace || took > grace+time.Second {
			t.Errorf("it ended %s after the change, want one grace (%s)", took, grace)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a write pending across a change was never answered")
	}
	select {
	case err := <-later:
		t.Fatalf("a write started after the change was ended by it: %v", err)
	case <-time.After(3 * grace):
	}
	// The next change ends it too.
	f.change()
	select {
	case err := <-later:
		if !errors.Is(err, rpctypes.ErrGRPCLeaderChanged) {
			t.Errorf("ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not ended by the next change")
	}
	// Not a proposal: passes untouched, even across changes.
	read := make(chan error, 1)
	go func() {
		_, err := h.intercept(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/etcdserverpb.KV/Range"}, func(ctx context.Context, _ any) (any, error) {
			select {
			case <-time.After(3 * grace):
				return "ok", nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		})
		read <- err
	}()
	f.change()
	if err := <-read; err != nil {
		t.Errorf("a range was ended: %v", err)
	}
}

// A stop leaves pending writes to etcd's own ending (server stopped), not
// "leader changed".
func TestHandoverStopIsNotAChange(t *testing.T) {
	f := newFakeLeader()
	h := newHandover(200)
	h.serving(f)
	info := &grpc.UnaryServerInfo{FullMethod: "/etcdserverpb.KV/Txn"}
	entered, release := make(chan struct{}), make(chan struct{})
	out := make(chan error, 1)
	go func() {
		_, err := h.intercept(context.Background(), nil, info, func(ctx context.Context, _ any) (any, error) {
			close(entered)
			select {
			case <-release:
				return nil, rpctypes.ErrGRPCStopped
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		})
		out <- err
	}()
	<-entered
	close(f.stopped)
	gen := h.gen.Load()
	if !etcdtest.Eventually(time.Second, time.Millisecond, func() bool { return (*gen).Err() != nil }) {
		t.Fatal("the generation did not end at the stop")
	}
	close(release)
	if err := <-out; !errors.Is(err, rpctypes.ErrGRPCStopped) {
		t.Errorf("a write pending at the stop ended with %v, want etcd's own (stopped)", err)
	}
}

// A write this member committed but has not applied when the grace ends
// is waited for; and an answer of etcd's own at that moment stands.
func TestHandoverWaitsForApplied(t *testing.T) {
	f := newFakeLeader()
	defer close(f.stopped)
	f.committed.Store(10)
	f.applied.Store(5)
	h := newHandover(200)
	h.serving(f)
	info := &grpc.UnaryServerInfo{FullMethod: "/etcdserverpb.KV/Put"}
	entered := make(chan struct{}, 2)
	ended := make(chan time.Time, 2)
	pending := func(answer error) <-chan error {
		out := make(chan error, 1)
		go func() {
			_, err := h.intercept(context.Background(), nil, info, func(ctx context.Context, _ any) (any, error) {
				entered <- struct{}{}
				<-ctx.Done()
				ended <- time.Now()
				if answer != nil {
					return nil, answer
				}
				return nil, ctx.Err()
			})
			out <- err
		}()
		<-entered
		return out
	}
	lost := pending(nil)
	full := pending(rpctypes.ErrGRPCNoSpace)
	f.change()
	select {
	case <-ended:
		t.Fatal("a write was ended while the member had committed entries to apply")
	case <-time.After(600 * time.Millisecond): // three graces
	}
	appliedAt := time.Now()
	f.applied.Store(10)
	if err := <-lost; !errors.Is(err, rpctypes.ErrGRPCLeaderChanged) {
		t.Errorf("once applied, a lost write ended with %v, want leader changed", err)
	}
	if at := <-ended; at.Before(appliedAt) {
		t.Errorf("ended %s before the member applied", appliedAt.Sub(at))
	}
	if err := <-full; !errors.Is(err, rpctypes.ErrGRPCNoSpace) {
		t.Errorf("etcd's own answer was relabelled: %v", err)
	}
}
