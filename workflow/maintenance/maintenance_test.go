package maintenance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-appliance/appliance/cluster"
	"github.com/etcd-appliance/appliance/internal/etcdtest"
)

func TestFragmentedAndOrder(t *testing.T) {
	row := func(name string, id uint64, size, inUse int64) Row {
		return Row{Name: name, EndpointStatus: cluster.EndpointStatus{ID: id, DBSize: size, DBSizeInUse: inUse}}
	}
	for _, tc := range []struct {
		r    Row
		want bool
	}{
		{row("a", 1, 1000<<20, 400<<20), true},  // 60% free, 600 MiB
		{row("a", 1, 1000<<20, 600<<20), false}, // 40% free
		{row("a", 1, 150<<20, 20<<20), true},    // 130 MiB free
		{row("a", 1, 100<<20, 10<<20), false},   // 90 MiB free: under MinFree
		{row("a", 1, 0, 0), false},
	} {
		if got := Fragmented(tc.r, DefaultFreePercent, DefaultMinFree); got != tc.want {
			t.Errorf("Fragmented(%s) = %v", describe(tc.r), got)
		}
	}
	rows := []Row{row("c", 3, 1, 1), row("a", 1, 1, 1), row("b", 2, 1, 1)}
	if got := strings.Join(Order(rows, 1), ","); got != "b,c,a" {
		t.Errorf("order with a leading: %s, want followers first, the leader last", got)
	}
}

func testLog(t testing.TB) logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	if testing.Verbose() {
		l.SetOutput(&tlog{t})
	}
	return l
}

type tlog struct{ t testing.TB }

func (w *tlog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func start(t *testing.T, quota int64) (*etcdtest.Cluster, *cluster.Client, *clientv3.Client) {
	t.Helper()
	c := etcdtest.NewClusterIn(t, 3, t.TempDir())
	for _, m := range c.Members {
		if quota > 0 {
			m.Args = append(m.Args, "--quota-backend-bytes", fmt.Sprint(quota))
		}
	}
	c.Start()
	c.WaitReady(time.Minute)
	mc, err := cluster.Dial(c.Endpoints(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mc.Close() })
	return c, mc, etcdtest.Client(t, c.Endpoints())
}

// fragment fills every member with n values of size bytes, deletes all
// but keep of them and compacts: the backends are then mostly free pages.
func fragment(t testing.TB, cli *clientv3.Client, n, keep, size int) {
	t.Helper()
	if err := etcdtest.Fill(cli, "frag", n, size); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := cli.Delete(ctx, fmt.Sprintf("frag/%04d", keep), clientv3.WithRange("frag0"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	// Each member counts the pages free once its compaction has run and
	// a later write committed (the sizes are updated on commits).
	if !etcdtest.Eventually(time.Minute, 100*time.Millisecond, func() bool {
		if _, err := cli.Put(ctx, "commit", "x"); err != nil {
			return false
		}
		for _, ep := range cli.Endpoints() {
			st, err := cli.Status(ctx, ep)
			if err != nil || st.DbSize-st.DbSizeInUse < int64(n-keep)*int64(size)/2 {
				return false
			}
		}
		return true
	}) {
		t.Fatal("the members' backends did not show the deleted values as free pages")
	}
}

// ledWhileDefragmenting names each member that led while it was
// defragmented, from its own log.
func ledWhileDefragmenting(c *etcdtest.Cluster) []string {
	var out []string
	for _, m := range c.Members {
		if line := LedWhileDefragmenting(m.Log()); line != "" {
			out = append(out, m.Name+" led while defragmenting: "+line)
		}
	}
	return out
}

// writer puts one key after another until stopped; a put that fails
// within 10 s (retried, as a client does) is a failed write.
func writer(cli *clientv3.Client) (stop func() (ok, failed int64)) {
	var okN, failedN atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 1000000; i++ {
			select {
			case <-done:
				return
			default:
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, err := cli.Put(ctx, "writer", fmt.Sprint(i))
				cancel()
				if err == nil {
					okN.Add(1)
					break
				}
				if time.Now().After(deadline) {
					failedN.Add(1)
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}()
	return func() (int64, int64) { close(done); wg.Wait(); return okN.Load(), failedN.Load() }
}

func TestDefragmentsFragmentedMembersFollowersFirst(t *testing.T) {
	c, mc, cli := start(t, 0)
	fragment(t, cli, 60, 10, 512<<10)
	stopWriter := writer(cli)
	leader := c.Leader(t).Name
	o := Options{FreePercent: 50, MinFree: 1 << 20, Lock: cluster.EtcdLocker(cluster.Credentials{}), Holder: "test"}
	res, err := Run(context.Background(), mc, o, testLog(t))
	violations := ledWhileDefragmenting(c)
	ok, failed := stopWriter()
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Defragmented) != 3 {
		t.Fatalf("defragmented %+v, want all three", res.Defragmented)
	}
	last := res.Defragmented[2]
	if last.Name != leader || last.LeaderTo == "" || res.Defragmented[0].LeaderTo != "" {
		t.Errorf("order %+v: want the followers first and the leader (%s) last, after handing leadership away", res.Defragmented, leader)
	}
	for _, d := range res.Defragmented {
		if d.After >= d.Before/2 {
			t.Errorf("%s: backend %d -> %d bytes", d.Name, d.Before, d.After)
		}
	}
	if len(violations) > 0 {
		t.Errorf("leadership on a member being defragmented: %q", violations)
	}
	if failed != 0 || ok == 0 {
		t.Errorf("writes: %d acknowledged, %d failed", ok, failed)
	}
	t.Logf("%d writes, 0 failed; %+v", ok, res.Defragmented)

	// Nothing is fragmented now: a second run does nothing.
	res, err = Run(context.Background(), mc, o, testLog(t))
	if err != nil || len(res.Defragmented) != 0 || len(res.Fine) != 3 {
		t.Fatalf("second run: %+v %v", res, err)
	}
}

// The leadership check is shown to see what it claims to: defragmenting
// the leader directly, as a careless `etcdctl defrag` does, is reported.
func TestLeadershipCheckSeesTheLeaderDefragmented(t *testing.T) {
	c, mc, cli := start(t, 0)
	fragment(t, cli, 60, 40, 512<<10)
	leader := c.Leader(t)
	if v := ledWhileDefragmenting(c); len(v) != 0 {
		t.Fatalf("before any defragmentation: %q", v)
	}
	if err := mc.Defragment(context.Background(), leader.ClientURL); err != nil {
		t.Fatal(err)
	}
	if v := ledWhileDefragmenting(c); len(v) != 1 || !strings.HasPrefix(v[0], leader.Name+" led") {
		t.Fatalf("the leader %s was defragmented and the check says %q", leader.Name, v)
	}
}

func TestRefusedWhileAMemberIsDown(t *testing.T) {
	c, mc, cli := start(t, 0)
	fragment(t, cli, 30, 5, 512<<10)
	c.Members[2].Kill()
	res, err := Run(context.Background(), mc, Options{FreePercent: 50, MinFree: 1 << 20}, testLog(t))
	if !errors.Is(err, ErrUnhealthy) || !strings.Contains(err.Error(), "m2") || len(res.Defragmented) != 0 {
		t.Fatalf("with m2 down: %+v %v", res, err)
	}
}

func TestScheduledRunOnAFollowerSkips(t *testing.T) {
	c, mc, _ := start(t, 0)
	leader := c.Leader(t).Name
	for _, m := range c.Members {
		res, err := Run(context.Background(), mc, Options{Self: m.Name}, testLog(t))
		if err != nil {
			t.Fatal(err)
		}
		if (m.Name == leader) == (res.Skipped != "") {
			t.Errorf("%s (leader %s): skipped %q", m.Name, leader, res.Skipped)
		}
	}
}

// fillUntilFull writes until NOSPACE refuses a write.
func fillUntilFull(t *testing.T, cli *clientv3.Client, prefix string) {
	t.Helper()
	err := etcdtest.Fill(cli, prefix, 1000, 512<<10)
	if err == nil || !strings.Contains(err.Error(), "database space exceeded") {
		t.Fatalf("filling did not raise NOSPACE: %v", err)
	}
}

func TestRecoversFromNoSpace(t *testing.T) {
	_, mc, cli := start(t, 32<<20)
	fillUntilFull(t, cli, "big")
	ctx := context.Background()
	if _, err := cli.Delete(ctx, "big/", clientv3.WithPrefix()); err != nil {
		t.Fatalf("deleting under NOSPACE: %v", err)
	}
	res, err := Run(ctx, mc, Options{RaiseQuota: "raise it"}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	if !res.NoSpace || res.Compacted == 0 || len(res.Defragmented) != 3 || !res.Disarmed {
		t.Fatalf("recovery: %+v", res)
	}
	if _, err := cli.Put(ctx, "after", "x"); err != nil {
		t.Fatalf("a write after the recovery: %v", err)
	}
	if a, err := mc.Alarms(ctx); err != nil || len(a) != 0 {
		t.Fatalf("alarms after the recovery: %v %v", a, err)
	}
}

func TestNoSpaceThatCompactionCannotFree(t *testing.T) {
	_, mc, cli := start(t, 32<<20)
	fillUntilFull(t, cli, "/registry/events")
	ctx := context.Background()
	res, err := Run(ctx, mc, Options{RaiseQuota: "raise cluster.quota_backend in prod.toml and apply"}, testLog(t))
	if !errors.Is(err, ErrNoSpace) || res.Disarmed {
		t.Fatalf("with the keys filling the quota: %+v %v", res, err)
	}
	for _, want := range []string{"/registry/events/", "keys)", "raise cluster.quota_backend in prod.toml", "etcdctl del --prefix"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message lacks %q: %v", want, err)
		}
	}
	if a, _ := mc.Alarms(ctx); len(a) == 0 {
		t.Error("the alarm was disarmed")
	}
	t.Log(err)
}

// An alarm raised earlier that no longer holds (the members were
// defragmented by hand since) is only disarmed: no compaction takes the
// key space's history, no member is stalled.
func TestStaleNoSpaceIsOnlyDisarmed(t *testing.T) {
	_, mc, cli := start(t, 32<<20)
	fillUntilFull(t, cli, "big")
	ctx := context.Background()
	del, err := cli.Delete(ctx, "big/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, del.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	// Each member applies the compaction on its own time: defragmented
	// until its backend is small (a defragmentation before that frees
	// nothing).
	for _, ep := range cli.Endpoints() {
		deadline := time.Now().Add(30 * time.Second)
		for {
			if _, err := cli.Defragment(ctx, ep); err != nil {
				t.Fatal(err)
			}
			st, err := cli.Status(ctx, ep)
			if err != nil {
				t.Fatal(err)
			}
			if st.DbSize < 8<<20 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d bytes after the compaction and defragmentation", ep, st.DbSize)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if _, err := cli.Put(ctx, "history", "kept"); err == nil {
		t.Fatal("the alarm was not raised")
	}
	res, err := Run(ctx, mc, Options{RaiseQuota: "raise it"}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	if !res.NoSpace || !res.Disarmed || res.Compacted != 0 || len(res.Defragmented) != 0 {
		t.Fatalf("a stale alarm: %+v, want it disarmed and nothing else done", res)
	}
	if _, err := cli.Put(ctx, "after", "x"); err != nil {
		t.Fatalf("a write after disarming: %v", err)
	}
}
