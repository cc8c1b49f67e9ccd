package node

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/etcd-appliance/appliance/internal/etcdtest"
)

// The lines of an orderly stop are demoted, only during one; others, and
// the same lines at any other time, keep their level.
func TestQuietCore(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	var removed, orderly atomic.Bool
	lg := instrument(zap.New(core), nil, &removed, &orderly)
	closed := errors.New("accept tcp 127.0.0.1:2379: use of closed network connection")
	noise := func() {
		lg.Error("setting up serving from embedded etcd failed.", zap.Error(closed))
		lg.With(zap.String("peer", "x")).Warn("lost TCP streaming connection with remote peer")
		lg.Warn("leadership transfer failed", zap.Error(errors.New("etcdserver: unhealthy cluster")))
		lg.Error("setting up serving from embedded etcd failed.", zap.Error(errors.New("tls: bad certificate")))
		lg.Error("something else entirely", zap.Error(closed))
		lg.Error("Health check error", zap.String("reason", "[-]linearizable_read failed: context canceled\n"))
	}
	levels := func() string {
		var out []string
		for _, e := range logs.TakeAll() {
			out = append(out, e.Level.String())
		}
		return strings.Join(out, " ")
	}
	noise()
	if got := levels(); got != "error warn warn error error warn" {
		t.Errorf("not stopping: %s", got)
	}
	orderly.Store(true)
	noise()
	if got := levels(); got != "debug debug info error error debug" {
		t.Errorf("stopping: %s", got)
	}
}

// The storage version monitor's first try on a new cluster is a warning,
// at any time; its other failures stay errors.
func TestStorageVersionRaceIsAWarning(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	var removed, orderly atomic.Bool
	lg := instrument(zap.New(core), nil, &removed, &orderly)
	lg.Error("failed to update storage version", zap.Error(errors.New("cannot detect storage schema version: missing term information")))
	lg.Error("failed to update storage version", zap.Error(errors.New("disk full")))
	if e := logs.TakeAll(); len(e) != 2 || e[0].Level != zapcore.WarnLevel || e[1].Level != zapcore.ErrorLevel {
		t.Errorf("%v", e)
	}
}

// Three members stopped one after the other, as `run` stops them: no
// member logs anything at error level, and none of a stopping member's own
// closing lines reach warn level. A real failure still logs at error
// level: a member whose client port is taken.
func TestOrderlyStopIsQuiet(t *testing.T) {
	c := etcdtest.NewCluster(t, 3)
	c.Start()
	c.WaitReady(time.Minute)
	for i := len(c.Members) - 1; i >= 0; i-- {
		m := c.Members[i]
		before := len(m.Log())
		m.Signal(syscall.SIGTERM)
		if _, ok := m.Wait(30 * time.Second); !ok {
			t.Fatalf("%s did not stop", m.Name)
		}
		own := m.Log()[before:]
		for _, l := range strings.Split(own, "\n") {
			if strings.Contains(l, `"level":"warn"`) && (strings.Contains(l, "closed network connection") || strings.Contains(l, "streaming connection")) {
				t.Errorf("%s, stopping, logs its closing at warn level: %s", m.Name, l)
			}
		}
	}
	for _, m := range c.Members {
		if strings.Contains(m.Log(), `"level":"error"`) {
			t.Errorf("%s logged at error level:\n%s", m.Name, m.Log())
		}
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := fmt.Sprintf("http://%s", ln.Addr())
	f := etcdtest.NewCluster(t, 1)
	m := f.Members[0]
	for i, a := range m.Args {
		if a == "--listen-client-urls" {
			m.Args[i+1] = taken
		}
	}
	m.Start()
	if _, ok := m.Wait(30 * time.Second); !ok {
		t.Fatal("a member whose client port is taken did not exit")
	}
	if !strings.Contains(m.Log(), `"level":"error"`) {
		t.Errorf("a real failure logged nothing at error level:\n%s", m.Log())
	}
}
