package lincheck

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// history builds ops with times in steps of 10: each op is [call, ret].
func put(c int, k, v string, call, ret int64) Op {
	return Op{Client: c, Kind: Put, Key: k, Value: v, Call: call, Return: ret, Step: "step A"}
}

func get(c int, k, got string, call, ret int64) Op {
	return Op{Client: c, Kind: Get, Key: k, Found: got != "", Got: got, Call: call, Return: ret, Step: "step B"}
}

func cas(c int, k, expect, v string, ok bool, call, ret int64) Op {
	return Op{Client: c, Kind: CAS, Key: k, Expect: expect, ExpectAbsent: expect == "", Value: v, OK: ok, Call: call, Return: ret, Step: "step C"}
}

func events(ops ...Op) []Event {
	var out []Event
	for i, op := range ops {
		out = append(out, Event{Key: op.Key, Value: op.Value, Rev: int64(i + 2)})
	}
	return out
}

func TestLinearizable(t *testing.T) {
	ops := []Op{
		put(0, "x", "1", 0, 10),
		get(1, "x", "1", 20, 30),
		// Concurrent with the put of 2: either value may be read.
		put(0, "x", "2", 40, 60),
		get(1, "x", "1", 45, 50),
		cas(2, "x", "2", "3", true, 70, 80),
		cas(1, "x", "2", "4", false, 90, 100),
		get(2, "y", "", 0, 5),
		// Unknown, and it took effect: readers may see it after its call.
		{Client: 3, Kind: Put, Key: "y", Value: "u1", Call: 10, Unknown: true},
		get(2, "y", "u1", 200, 210),
		// Unknown, and it never took effect: dropped.
		{Client: 3, Kind: Put, Key: "y", Value: "u2", Call: 300, Unknown: true},
		{Client: 3, Kind: CAS, Key: "y", Expect: "u1", Value: "u3", Call: 300, Unknown: true},
		get(2, "y", "u1", 400, 410),
	}
	final := events(ops[0], ops[2], ops[4], ops[7])
	res, err := Check(ops, final, 10*time.Second, "")
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != 10 || res.Unknown != 1 || res.Dropped != 2 {
		t.Errorf("result %+v: want 10 ops checked, 1 unknown kept, 2 dropped", res)
	}
}

// A checker that cannot fail proves nothing: each planted bug is found,
// named with its key and step, and drawn.
func TestPlantedViolations(t *testing.T) {
	cases := []struct {
		name  string
		ops   []Op
		final []Event
		want  string
	}{
		{"stale read", []Op{
			put(0, "x", "1", 0, 10),
			put(0, "x", "2", 20, 30),
			get(1, "x", "1", 40, 50), // after the put of 2 returned
		}, nil, `key x: get(x) -> 1 by client 1 during step "step B"`},
		{"lost update", []Op{
			put(0, "x", "1", 0, 10),
			// Both compare-and-swaps from 1 succeed: one update is lost.
			cas(1, "x", "1", "a", true, 20, 30),
			cas(2, "x", "1", "b", true, 40, 50),
		}, nil, `key x: cas(x, 1 -> b) -> true by client 2 during step "step C"`},
		{"write acknowledged but never visible", []Op{
			put(0, "x", "1", 0, 10),
			get(1, "x", "", 20, 30),
		}, nil, "key x: get(x) -> none"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			viz := filepath.Join(t.TempDir(), "viz.html")
			final := tc.final
			if final == nil {
				final = events(tc.ops...)
			}
			res, err := Check(tc.ops, final, 10*time.Second, viz)
			if !errors.Is(err, ErrNotLinearizable) {
				t.Fatalf("want a violation, got %v", err)
			}
			if len(res.Violations) != 1 || !strings.Contains(res.Violations[0], tc.want) {
				t.Errorf("violations %q, want %q", res.Violations, tc.want)
			}
			if b, err := os.ReadFile(viz); err != nil || !strings.Contains(string(b), "<html") {
				t.Errorf("no visualization written: %v", err)
			}
		})
	}
}

func TestWatches(t *testing.T) {
	ops := []Op{put(0, "x", "1", 0, 10), put(0, "y", "2", 20, 30), put(0, "x", "3", 40, 50)}
	final := events(ops...)
	good := map[string][]Event{"w0": final, "w1": final}
	if err := CheckWatches(final, good, ops); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		streams map[string][]Event
		final   []Event
		want    string
	}{
		"skipped event": {map[string][]Event{"w0": final, "w1": {final[0], final[2]}}, final,
			"watcher w1: event 1 is x=3 at revision 4, the cluster's history has y=2 at revision 3 there"},
		"repeated event": {map[string][]Event{"w0": {final[0], final[1], final[1], final[2]}}, final,
			"watcher w0: event 2 (y at revision 3) after revision 3: out of order or repeated"},
		"out of order": {map[string][]Event{"w0": {final[1], final[0], final[2]}}, final,
			"watcher w0: event 0 is y=2 at revision 3, the cluster's history has x=1 at revision 2 there"},
		"stopped early": {map[string][]Event{"w0": final[:2]}, final,
			"watcher w0 saw 2 of the history's 3 events"},
		"acknowledged write lost": {map[string][]Event{"w0": final[:2]}, final[:2],
			"acknowledged write x=3 is not in the cluster's history"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := CheckWatches(tc.final, tc.streams, ops)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v\nwant %q", err, tc.want)
			}
		})
	}
}
