package node

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/etcd-appliance/appliance/internal/etcdtest"
)

// A backend read that waits out a defragmentation counts as alive; one that
// hangs otherwise, or fails, does not.
func TestBackendAlive(t *testing.T) {
	block := func() error { select {} }
	for _, tc := range []struct {
		name   string
		read   func() error
		defrag bool
		ok     bool
	}{
		{"answers", func() error { return nil }, false, true},
		{"fails", func() error { return errors.New("boom") }, true, false},
		{"waits, defragmenting", block, true, true},
		{"waits, not defragmenting", block, false, false},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		err := backendAlive(ctx, tc.read, func() bool { return tc.defrag })
		cancel()
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

// A member defragmented for longer than its watchdog interval keeps
// pinging the watchdog: systemd would otherwise kill it mid-way. The
// backend holds enough data that the defragmentation outlasts the
// interval (checked: the test fails when it does not).
func TestWatchdogThroughDefrag(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	m := c.Members[0]
	sock := etcdtest.NewNotifySocket(t, nil)
	const watchdog = 600 * time.Millisecond
	m.Env = append(m.Env, sock.Env(), "WATCHDOG_USEC=600000")
	c.Start()
	c.WaitReady(30 * time.Second)
	cli := etcdtest.Client(t, c.Endpoints())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// About 400 MB of values: a defragmentation copies all of it.
	val := strings.Repeat("x", 256<<10)
	for i := range 1600 {
		if _, err := cli.Put(ctx, "big/"+itoa(i), val); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	if _, err := cli.Defragment(ctx, c.Endpoints()[0]); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if took < 2*watchdog {
		t.Fatalf("the defragmentation took %s, not longer than the watchdog interval %s: the test proves nothing", took, watchdog)
	}
	// The longest gap between pings that touches the defragmentation:
	// the first ping after it counts, and so does its end when no ping
	// followed (pings that stopped for good are the longest gap of all).
	end := start.Add(took)
	var last time.Time
	var gap time.Duration
	for _, n := range sock.Messages() {
		if n.State != "WATCHDOG=1" || n.At.Before(start.Add(-watchdog)) {
			continue
		}
		if !last.IsZero() && n.At.Sub(last) > gap {
			gap = n.At.Sub(last)
		}
		last = n.At
		if n.At.After(end) {
			break
		}
	}
	if !last.IsZero() && last.Before(end) && end.Sub(last) > gap {
		gap = end.Sub(last)
	}
	t.Logf("defragmentation %s; longest gap between watchdog pings %s (interval %s)", took.Round(time.Millisecond), gap.Round(time.Millisecond), watchdog)
	if last.IsZero() || gap >= watchdog {
		t.Errorf("watchdog pings stopped for %s during a %s defragmentation: systemd would kill the member", gap, took)
	}
	// A check may fail outside the defragmentation: filling 400 MB on a
	// slow disk, a backend commit can hold reads longer than this test's
	// tiny interval allows (half a ping, 100 ms). Only the defragmentation
	// is what the test is about.
	for _, line := range strings.Split(m.Log(), "\n") {
		if !strings.Contains(line, "not pinging the watchdog") {
			continue
		}
		var entry struct {
			TS time.Time `json:"ts"`
		}
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("a log line that is not JSON: %s", line)
		}
		if entry.TS.After(start.Add(-watchdog)) && entry.TS.Before(start.Add(took)) {
			t.Errorf("the member stopped pinging during the defragmentation: %s", line)
		} else {
			t.Logf("a ping skipped outside the defragmentation (%s before it): %s", start.Sub(entry.TS).Round(time.Millisecond), line)
		}
	}
}
