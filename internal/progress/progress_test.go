package progress

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/etcd-appliance/appliance/internal/etcdtest"
)

func TestLine(t *testing.T) {
	for _, c := range []struct {
		done, total int64
		took        time.Duration
		want        string
	}{
		{412 << 20, 1 << 30, 10 * time.Second, "snapshot: 412 MiB of 1.0 GiB (40%), 41 MiB/s, about 15s left"},
		{1 << 30, 1 << 30, 20 * time.Second, "snapshot: 1.0 GiB of 1.0 GiB (100%), 51 MiB/s"},
		{5 << 20, 0, 5 * time.Second, "snapshot: 5.0 MiB, 1.0 MiB/s"},
		{0, 1 << 30, 0, "snapshot: 0 B of 1.0 GiB (0%), 0 B/s"},
	} {
		if got := Line("snapshot", c.done, c.total, c.took); got != c.want {
			t.Errorf("Line(%d, %d, %s) = %q, want %q", c.done, c.total, c.took, got, c.want)
		}
	}
}

// Reports come while the work goes on; on a terminal they rewrite one
// line, elsewhere each is a timestamped line of its own.
func TestReports(t *testing.T) {
	for _, tty := range []bool{true, false} {
		var n atomic.Int64
		var w etcdtest.Buffer
		r := Start(&w, "verify", 100, n.Load, Options{TTY: tty, Every: 5 * time.Millisecond})
		deadline := time.Now().Add(5 * time.Second)
		for strings.Count(w.String(), "verify: ") < 3 && time.Now().Before(deadline) {
			n.Add(10)
			time.Sleep(5 * time.Millisecond)
		}
		r.Stop()
		out := w.String()
		if strings.Count(out, "verify: ") < 3 {
			t.Fatalf("tty=%v: %q", tty, out)
		}
		if tty != strings.Contains(out, "\r") || tty == strings.Contains(out, "Z verify: ") {
			t.Errorf("tty=%v: %q", tty, out)
		}
	}
}

// Stop always ends with a line saying where the operation ended, even one
// faster than the first report.
func TestStopSaysWhereItEnded(t *testing.T) {
	var w etcdtest.Buffer
	Start(&w, "snapshot", 100, func() int64 { return 100 }, Options{Every: time.Hour}).Stop()
	if out := w.String(); strings.Count(out, "\n") != 1 || !strings.Contains(out, "Z snapshot: 100 B of 100 B (100%), ") || !strings.Contains(out, ", ended in ") {
		t.Fatalf("%q", out)
	}
}
