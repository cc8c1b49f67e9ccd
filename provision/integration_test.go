package provision

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-appliance/appliance/installer"
	"github.com/etcd-appliance/appliance/internal/etcdtest"
)

// loopbackInventory writes an inventory of n members on 127.0.0.1 with
// free ports.
func loopbackInventory(t *testing.T, n int) *installer.Inventory {
	t.Helper()
	ports := etcdtest.FreePorts(t, 2*n)
	var b strings.Builder
	b.WriteString("version = 1\n[cluster]\nname = \"it\"\nlog_level = \"warn\"\n")
	for i := range n {
		fmt.Fprintf(&b, "[[member]]\nname = \"m%d\"\naddress = \"127.0.0.1\"\nclient_port = %d\npeer_port = %d\n", i, ports[2*i], ports[2*i+1])
	}
	return inventory(t, b.String())
}

func testLog(t *testing.T) logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	if testing.Verbose() {
		l.SetOutput(os.Stderr)
	}
	return l
}

func localCluster(t *testing.T, inv *installer.Inventory) *LocalCluster {
	t.Helper()
	var out io.Writer
	if testing.Verbose() {
		out = os.Stderr
	}
	lc, err := NewLocalCluster(inv, t.TempDir(), filepath.Join(etcdtest.BinDir(t), "etcd"), out, false, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		lc.Stop(ctx)
		lc.Close()
	})
	return lc
}

func mustStatus(t *testing.T, lc *LocalCluster) ClusterStatus {
	t.Helper()
	c, err := lc.Dial(lc.Inv.ClientURLs())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return Status(context.Background(), lc.Inv, c)
}

func TestLocalClusterRunRestartIdempotent(t *testing.T) {
	lc := localCluster(t, loopbackInventory(t, 3))
	ctx := context.Background()
	if err := lc.Start(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	if cs := mustStatus(t, lc); !cs.Healthy {
		t.Fatalf("not healthy: %s %v", cs.Verdict(), cs.Problems)
	}
	// A second apply while running changes and restarts nothing.
	for _, tg := range lc.Targets {
		res, err := Apply(ctx, lc.Inv, tg, ApplyOptions{Dial: lc.Dial}, testLog(t))
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
	if cs := mustStatus(t, lc); !cs.Healthy {
		t.Fatalf("not healthy after restart: %s %v", cs.Verdict(), cs.Problems)
	}
}

// writer puts keys one after the other until stopped, through the given
// endpoints, and remembers every outcome.
type writer struct {
	acked  []string
	failed []error
	mu     sync.Mutex
	stop   atomic.Bool
	done   chan struct{}
}

func startWriter(t *testing.T, lc *LocalCluster, endpoints []string) *writer {
	t.Helper()
	c, err := Dial(endpoints, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := &writer{done: make(chan struct{})}
	go func() {
		defer close(w.done)
		defer c.Close()
		for i := 0; !w.stop.Load() && i < 100000; i++ {
			key := fmt.Sprintf("w/%06d", i)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := c.KV().Put(ctx, key, "v")
			cancel()
			w.mu.Lock()
			if err != nil {
				w.failed = append(w.failed, fmt.Errorf("%s: %w", key, err))
			} else {
				w.acked = append(w.acked, key)
			}
			w.mu.Unlock()
			time.Sleep(5 * time.Millisecond) // a steady writer, not a load test
		}
	}()
	return w
}

func (w *writer) finish() ([]string, []error) {
	w.stop.Store(true)
	<-w.done
	return w.acked, w.failed
}

func voting(t *testing.T, lc *LocalCluster) (names []string) {
	t.Helper()
	c, err := lc.Dial(lc.Inv.ClientURLs()[:1])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ms, err := c.Members(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if !m.Learner {
			names = append(names, m.Name)
		}
	}
	return names
}

func TestMemberAddRemoveUnderLoad(t *testing.T) {
	inv := loopbackInventory(t, 5)
	lc := localCluster(t, inv)
	ctx := context.Background()
	first := []string{"m0", "m1", "m2"}
	for _, name := range first {
		tg, _ := lc.Target(name)
		if _, err := Apply(ctx, lc.Inv, tg, ApplyOptions{Dial: lc.Dial, Member: installer.MemberOptions{InitialCluster: first}}, testLog(t)); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range first {
		tg, _ := lc.Target(name)
		if _, err := WaitReady(ctx, tg, time.Minute, testLog(t)); err != nil {
			t.Fatal(err)
		}
	}
	eps := lc.Inv.ClientURLs()[:3]
	w := startWriter(t, lc, eps)
	opts := MemberOptions{Dial: lc.Dial, Wait: 2 * time.Minute}

	for _, name := range []string{"m3", "m4"} {
		tg, _ := lc.Target(name)
		if err := MemberAdd(ctx, lc.Inv, name, tg, opts, testLog(t)); err != nil {
			t.Fatalf("member add %s: %v", name, err)
		}
	}
	if got := voting(t, lc); len(got) != 5 {
		t.Fatalf("after adding: voting members %v", got)
	}
	// Re-running an add that completed changes nothing.
	tg3, _ := lc.Target("m3")
	if err := MemberAdd(ctx, lc.Inv, "m3", tg3, opts, testLog(t)); err != nil {
		t.Errorf("member add again: %v", err)
	}
	// The bootstrap members' files now list all five; applying them
	// rewrites the file but restarts nothing (etcd ignores bootstrap
	// settings once initialized).
	tg0, _ := lc.Target("m0")
	res, err := Apply(ctx, lc.Inv, tg0, ApplyOptions{Dial: lc.Dial}, testLog(t))
	if err != nil || res.Restarted || len(res.Files) != 1 {
		t.Errorf("apply after member add: %s %v", res.Summary(), err)
	}

	for _, name := range []string{"m4", "m3"} {
		tg, _ := lc.Target(name)
		if err := MemberRemove(ctx, lc.Inv, name, &tg, opts, testLog(t)); err != nil {
			t.Fatalf("member remove %s: %v", name, err)
		}
		matches, _ := filepath.Glob(lc.Inv.DataDir(mustMember(t, lc.Inv, name)) + ".removed-*")
		if len(matches) != 1 {
			t.Errorf("%s: data dir not moved aside: %v", name, matches)
		}
	}
	if got := voting(t, lc); len(got) != 3 {
		t.Fatalf("after removing: voting members %v", got)
	}

	acked, failed := w.finish()
	if len(failed) > 0 {
		t.Errorf("%d writes failed during membership changes, first: %v", len(failed), failed[0])
	}
	if len(acked) < 50 {
		t.Errorf("only %d writes went through", len(acked))
	}
	c, err := Dial(eps, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resp, err := c.KV().Get(ctx, "w/", clientPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if int(resp.Count) != len(acked) {
		t.Errorf("%d keys in the cluster, %d acknowledged", resp.Count, len(acked))
	}
	t.Logf("%d writes acknowledged during 2 adds and 2 removes, %d failed", len(acked), len(failed))
}

func mustMember(t *testing.T, inv *installer.Inventory, name string) *installer.Member {
	m, ok := inv.Member(name)
	if !ok {
		t.Fatalf("no member %s", name)
	}
	return m
}

func TestMemberRemoveRefusesQuorumLoss(t *testing.T) {
	lc := localCluster(t, loopbackInventory(t, 3))
	ctx := context.Background()
	if err := lc.Start(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	lc.Processes("m1").Kill(unitOf(lc, "m1"))
	tg, _ := lc.Target("m2")
	err := MemberRemove(ctx, lc.Inv, "m2", &tg, MemberOptions{Dial: lc.Dial, Wait: time.Minute}, testLog(t))
	if err == nil || !strings.Contains(err.Error(), "1 of 2 remaining voting members would be healthy and quorum is 2") {
		t.Errorf("got %v", err)
	}
	if got := voting(t, lc); len(got) != 3 {
		t.Errorf("a member was removed anyway: %v", got)
	}
}

func unitOf(lc *LocalCluster, name string) string {
	tg, _ := lc.Target(name)
	return tg.Unit()
}

func TestBackupWipeRestore(t *testing.T) {
	lc := localCluster(t, loopbackInventory(t, 3))
	ctx := context.Background()
	if err := lc.Start(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	c, err := lc.Dial(lc.Inv.ClientURLs())
	if err != nil {
		t.Fatal(err)
	}
	cl := c.(*Client)
	for i := range 200 {
		if _, err := cl.KV().Put(ctx, fmt.Sprintf("before/%03d", i), "x"); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(t.TempDir(), "backup.db")
	info, err := Backup(ctx, lc.Inv, c, Credentials{}, file, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	if info.Revision < 200 || info.SHA256 == "" || len(info.Members) != 3 {
		t.Errorf("backup info: %+v", info)
	}
	if _, err := cl.KV().Put(ctx, "after/1", "lost on restore"); err != nil {
		t.Fatal(err)
	}
	cl.Close()

	// Disaster: every member dies and its data is gone.
	for _, tg := range lc.Targets {
		lc.Processes(tg.Host.Name).Kill(tg.Unit())
		if err := os.RemoveAll(lc.Inv.DataDir(tg.Host.Member)); err != nil {
			t.Fatal(err)
		}
	}
	if err := Restore(ctx, lc.Inv, file, lc.Targets, lc.Dial, time.Minute, testLog(t)); err != nil {
		t.Fatal(err)
	}
	c2, err := Dial(lc.Inv.ClientURLs(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	resp, err := c2.KV().Get(ctx, "before/", clientPrefix())
	if err != nil || resp.Count != 200 {
		t.Fatalf("keys before the backup: %v %v", resp, err)
	}
	resp, err = c2.KV().Get(ctx, "after/", clientPrefix())
	if err != nil || resp.Count != 0 {
		t.Errorf("a key written after the backup survived: %v %v", resp, err)
	}

	// A restore that fails on one host after every member stopped puts
	// every member back on its own data: nothing restored, nothing lost.
	if _, err := c2.KV().Put(ctx, "after/2", "kept by a failed restore"); err != nil {
		t.Fatal(err)
	}
	broken := append([]Target(nil), lc.Targets...)
	broken[1].Etcdutl = filepath.Join(t.TempDir(), "no-etcdutl")
	err = Restore(ctx, lc.Inv, file, broken, lc.Dial, time.Minute, testLog(t))
	if err == nil || !strings.Contains(err.Error(), "nothing restored: every member was put back on its old data") {
		t.Fatalf("restore failing on m1: %v", err)
	}
	if err := lc.WaitReady(ctx, time.Minute); err != nil {
		t.Fatalf("members after a failed restore: %v", err)
	}
	if resp, err := c2.KV().Get(ctx, "after/2"); err != nil || resp.Count != 1 {
		t.Errorf("a key written before the failed restore: %v %v", resp, err)
	}
	for _, name := range []string{"m0", "m2"} {
		if m, _ := filepath.Glob(lc.Inv.DataDir(mustMember(t, lc.Inv, name)) + ".failed-restore-*"); len(m) != 1 {
			t.Errorf("%s: the partly restored data dir is not kept: %v", name, m)
		}
	}

	// A damaged backup is refused before anything is stopped.
	f, _ := os.OpenFile(file, os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte("x"))
	f.Close()
	if err := Restore(ctx, lc.Inv, file, lc.Targets, lc.Dial, time.Minute, testLog(t)); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("damaged snapshot: %v", err)
	}
	if cs := mustStatus(t, lc); !cs.Healthy {
		t.Errorf("cluster disturbed by a refused restore: %s", cs.Verdict())
	}
}

func clientPrefix() clientv3.OpOption { return clientv3.WithPrefix() }

// After a power cut of every member, starting them in any order brings the
// cluster back, and doctor explains what a lone member waits for.
func TestPowerCutEveryMember(t *testing.T) {
	lc := localCluster(t, loopbackInventory(t, 3))
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
		fs = Doctor(ctx, lc.Inv, last, DoctorOptions{})
		return len(findings(fs, "unit", Warn)) > 0 && strings.Contains(findings(fs, "unit", Warn)[0].Message, "waits for its peers")
	}) {
		t.Fatalf("doctor does not explain the wait:\n%s", dump(fs))
	}
	expectFinding(t, fs, "unit", Warn, "waiting for m0, m1", "start etcd on m0, m1")
	for _, name := range []string{"m1", "m0"} {
		tg, _ := lc.Target(name)
		if err := tg.Services.Start(ctx, tg.Unit()); err != nil {
			t.Fatal(err)
		}
	}
	if err := lc.WaitReady(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	if cs := mustStatus(t, lc); !cs.Healthy {
		t.Fatalf("not healthy after the power cut: %s %v", cs.Verdict(), cs.Problems)
	}
}

// restarts records each restart and which other members had not come
// back from theirs at that moment: a rolling restart has none.
type restarts struct {
	mu    sync.Mutex
	lc    *LocalCluster
	at    map[string]time.Time
	notes []string
}

type restartRecorder struct {
	Services
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
	lc := localCluster(t, loopbackInventory(t, 3))
	ctx := context.Background()
	if err := lc.Start(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	rec := &restarts{lc: lc, at: map[string]time.Time{}}
	targets := append([]Target(nil), lc.Targets...)
	for i := range targets {
		targets[i].Services = restartRecorder{Services: targets[i].Services, name: targets[i].Host.Name, r: rec}
	}
	leader := leaderName(ctx, lc.Inv, lc.Dial)
	if leader == "" {
		t.Fatal("no leader")
	}
	w := startWriter(t, lc, lc.Inv.ClientURLs())

	// A tuning change reaches every member's etcd.conf: each must restart.
	changed := *lc.Inv
	changed.Cluster.SnapshotCount = 20000
	out := ApplyAll(ctx, &changed, targets, ApplyAllOptions{ApplyOptions: ApplyOptions{Dial: lc.Dial}, WaitReady: true, Wait: time.Minute}, testLog(t))
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
	acked, failed := w.finish()
	if len(failed) > 0 {
		t.Errorf("%d of %d writes failed during the rolling restart, first: %v", len(failed), len(acked)+len(failed), failed[0])
	}
	t.Logf("rolling restart of 3 members: %v; %d writes acknowledged, %d failed", notes, len(acked), len(failed))

	// Applied again, nothing changes and nothing restarts.
	rec.notes = nil
	for _, o := range ApplyAll(ctx, &changed, targets, ApplyAllOptions{ApplyOptions: ApplyOptions{Dial: lc.Dial}, WaitReady: true, Wait: time.Minute}, testLog(t)) {
		if o.Err != nil || o.Res.Changed() || o.Rolling {
			t.Errorf("second apply on %s: %s rolling=%v err=%v", o.Name, o.Res.Summary(), o.Rolling, o.Err)
		}
	}
	if len(rec.notes) != 0 {
		t.Errorf("second apply restarted %v", rec.notes)
	}
}
