package writer

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcd-appliance/appliance/e2e/lincheck"
	"github.com/etcd-appliance/appliance/internal/etcdtest"
)

// The clients and watchers against three real members on loopback, one of
// them killed and started again mid-run: the history is linearizable,
// every watcher holds the cluster's history, and a stale read planted in
// the recorded history is found.
func TestWriterThroughAKill(t *testing.T) {
	c := etcdtest.NewCluster(t, 3)
	c.Start()
	c.WaitReady(30 * time.Second)
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	args := []string{"--endpoints", strings.Join(c.Endpoints(), ","), "--history", p("history.jsonl"), "--watches", p("watch"),
		"--stats", p("stats.json"), "--stop", p("stop"), "--step-file", p("step"), "--max-time", "2m"}
	os.WriteFile(p("step"), []byte("before the kill\n"), 0o644)
	var out, errb etcdtest.Buffer
	var wg sync.WaitGroup
	wg.Add(1)
	code := -1
	go func() { defer wg.Done(); code = Main(args, &out, &errb) }()

	stats := func() Stats {
		var s Stats
		b, _ := os.ReadFile(p("stats.json"))
		json.Unmarshal(b, &s)
		return s
	}
	progress := func(n int64) {
		t.Helper()
		start := stats().Acked
		if !etcdtest.Eventually(60*time.Second, 100*time.Millisecond, func() bool { return stats().Acked >= start+n }) {
			t.Fatalf("writes stalled: %+v", stats())
		}
	}
	progress(50)
	os.WriteFile(p("step"), []byte("member m1 killed\n"), 0o644)
	c.Members[1].Kill()
	progress(50)
	c.Members[1].Start()
	c.Members[1].WaitReady(30 * time.Second)
	os.WriteFile(p("step"), []byte("after the kill\n"), 0o644)
	progress(50)
	os.WriteFile(p("stop"), nil, 0o644)
	wg.Wait()
	if code != 0 {
		t.Fatalf("writer exited %d: %s", code, errb.String())
	}

	viz := p("viz.html")
	vargs := []string{"verify", "--endpoints", strings.Join(c.Endpoints(), ","), "--history", p("history.jsonl"), "--watches", p("watch"), "--viz", viz}
	var vout, verr bytes.Buffer
	if code := Main(vargs, &vout, &verr); code != 0 {
		t.Fatalf("verify: exit %d: %s %s", code, vout.String(), verr.String())
	}
	var sum Summary
	if err := json.Unmarshal(vout.Bytes(), &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Ops < 100 || sum.Watchers != 3 || sum.WatchEvents != 3*sum.HistoryEvents || len(sum.Violations) != 0 {
		t.Errorf("summary %+v", sum)
	}
	t.Logf("summary %+v", sum)
	steps := map[string]bool{}
	ops, _ := readLines[lincheck.Op](p("history.jsonl"))
	for _, op := range ops {
		steps[op.Step] = true
	}
	if !steps["before the kill"] || !steps["member m1 killed"] || !steps["after the kill"] {
		t.Errorf("operations not marked with their steps: %v", steps)
	}

	// Planted: the last successful read of a key answers an older value.
	var lastGet, lastPut = -1, -1
	for i, op := range ops {
		if op.Kind == lincheck.Get && op.Found {
			lastGet = i
		}
	}
	for i, op := range ops {
		if i < lastGet && op.Kind == lincheck.Put && !op.Unknown && op.Key == ops[lastGet].Key && op.Value != ops[lastGet].Got && op.Return < ops[lastGet].Call {
			lastPut = i
			break
		}
	}
	if lastGet < 0 || lastPut < 0 {
		t.Fatal("no read to plant a stale value in")
	}
	ops[lastGet].Got = ops[lastPut].Value
	var planted bytes.Buffer
	for _, op := range ops {
		b, _ := json.Marshal(op)
		planted.Write(append(b, '\n'))
	}
	os.WriteFile(p("history.jsonl"), planted.Bytes(), 0o644)
	vout.Reset()
	if code := Main(vargs, &vout, &verr); code == 0 {
		t.Fatalf("a stale read passed: %s", vout.String())
	}
	if !strings.Contains(vout.String(), `during step \"`) {
		t.Errorf("the violation does not name its step: %s", vout.String())
	}
	if _, err := os.Stat(viz); err != nil {
		t.Errorf("no visualization: %v", err)
	}
}

// The report of unknown outcomes names when, which member, how long and
// why, and stops at maxFailed.
func TestFailuresReport(t *testing.T) {
	start := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	ops := []lincheck.Op{
		{Client: 1, Kind: lincheck.Put, Key: "k1", Call: int64(1500 * time.Millisecond)},
		{Client: 2, Kind: lincheck.Put, Key: "k2", Call: int64(2 * time.Second), Unknown: true,
			Err: "context deadline exceeded", Peer: "10.0.0.2:2379", Took: int64(3 * time.Second), Step: "8. upgrade"},
		{Client: 3, Kind: lincheck.CAS, Key: "k3", Call: int64(3 * time.Second), Unknown: true, Err: "etcdserver: no leader"},
	}
	got := failures(ops, start)
	want := []string{
		`10:00:02.000 client 2 put k2 via 10.0.0.2:2379 after 3s: context deadline exceeded (step "8. upgrade")`,
		`10:00:03.000 client 3 cas k3 via no member (none picked) after 0s: etcdserver: no leader (step "")`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	many := make([]lincheck.Op, maxFailed+5)
	for i := range many {
		many[i] = lincheck.Op{Kind: lincheck.Put, Unknown: true, Err: "x"}
	}
	if got := failures(many, time.Time{}); len(got) != maxFailed+1 || got[maxFailed] != "and 5 more" || !strings.HasPrefix(got[0], "+0s ") {
		t.Errorf("bounded report: %d lines, last %q, first %q", len(got), got[len(got)-1], got[0])
	}
}
