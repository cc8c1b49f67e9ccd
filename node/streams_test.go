package node

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-appliance/appliance/internal/etcdtest"
)

// stopWithStreams starts a one-member cluster on bin, opens a watch and a
// lease's keep-alives on it, and returns how long a SIGTERM takes to end
// the process.
func stopWithStreams(t *testing.T, bin string) time.Duration {
	t.Helper()
	c := etcdtest.NewCluster(t, 1)
	if bin != "" {
		c.UseBinary(bin)
	}
	c.Start()
	c.WaitReady(20 * time.Second)
	cli := etcdtest.Client(t, c.Endpoints())
	wch := cli.Watch(context.Background(), "s/", clientv3.WithPrefix())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	lease, err := cli.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.KeepAlive(context.Background(), lease.ID); err != nil {
		t.Fatal(err)
	}
	// The watch is open once it delivered an event.
	if _, err := cli.Put(ctx, "s/open", "1"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-wch:
	case <-ctx.Done():
		t.Fatal("the watch delivered nothing")
	}
	start := time.Now()
	c.Members[0].Signal(syscall.SIGTERM)
	if _, exited := c.Members[0].Wait(30 * time.Second); !exited {
		t.Fatal("not stopped within 30 s")
	}
	return time.Since(start)
}

// A member asked to stop ends its clients' watches and keep-alives at
// once instead of waiting etcd's request timeout (7 s) for them: upstream
// etcd, side by side, shows the wait the test would catch.
func TestStopEndsLongLivedStreams(t *testing.T) {
	ours := stopWithStreams(t, "")
	upstream := stopWithStreams(t, etcdtest.UpstreamBinary(t))
	t.Logf("stop with a watch and a keep-alive open: ours %s, upstream %s", ours.Round(time.Millisecond), upstream.Round(time.Millisecond))
	if ours > 3*time.Second {
		t.Errorf("ours took %s to stop with a watch open, want well under etcd's 7 s request timeout", ours)
	}
	if upstream < 5*time.Second {
		t.Errorf("upstream stopped in %s with a watch open: the test no longer sees the wait it is about", upstream)
	}
}

// An application's watch lives through a member's restart: ended by the
// stop, it resumes on another member from the revision it had seen, and
// on the restarted member alone (its only endpoint) once it is back;
// neither misses an event.
func TestWatchesSurviveRestart(t *testing.T) {
	c := etcdtest.NewCluster(t, 3)
	c.Start()
	c.WaitReady(30 * time.Second)
	m0 := c.Members[0]
	everywhere := etcdtest.Client(t, c.Endpoints())
	onlyM0 := etcdtest.Client(t, []string{m0.ClientURL})
	writer := etcdtest.Client(t, c.Endpoints(c.Members[1], c.Members[2]))
	wctx, wcancel := context.WithCancel(context.Background())
	defer wcancel()
	watches := map[string]clientv3.WatchChan{
		"every endpoint": everywhere.Watch(wctx, "r/", clientv3.WithPrefix()),
		"m0 only":        onlyM0.Watch(wctx, "r/", clientv3.WithPrefix()),
	}
	const n = 40
	put := func(i int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := writer.Put(ctx, fmt.Sprintf("r/%03d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n / 2 {
		put(i)
	}
	start := time.Now()
	m0.Signal(syscall.SIGTERM)
	if _, exited := m0.Wait(30 * time.Second); !exited {
		t.Fatal("m0 not stopped within 30 s")
	}
	took := time.Since(start)
	for i := n / 2; i < n; i++ {
		put(i)
	}
	m0.Start()
	m0.WaitReady(30 * time.Second)
	for name, wch := range watches {
		deadline := time.After(30 * time.Second)
		for i := 0; i < n; {
			select {
			case resp, ok := <-wch:
				if !ok || resp.Err() != nil {
					t.Fatalf("%s: the watch ended after %d events: %v", name, i, resp.Err())
				}
				for _, ev := range resp.Events {
					if want := fmt.Sprintf("r/%03d", i); string(ev.Kv.Key) != want {
						t.Fatalf("%s: event %d is %s, want %s (an event lost or repeated)", name, i, ev.Kv.Key, want)
					}
					i++
				}
			case <-deadline:
				t.Fatalf("%s: %d of %d events within 30 s", name, i, n)
			}
		}
	}
	t.Logf("m0 stopped in %s with two watches open; both saw all %d events", took.Round(time.Millisecond), n)
	if took > 3*time.Second {
		t.Errorf("m0 took %s to stop", took)
	}
}
