// Package localclustertest starts real local clusters for integration
// tests (members as processes on loopback ports, through the same apply
// workflow as real hosts) and has the helpers those tests share: a steady
// writer that remembers every outcome, and the voting members.
package localclustertest

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

	"github.com/etcd-appliance/appliance/cluster"
	"github.com/etcd-appliance/appliance/internal/etcdtest"
	"github.com/etcd-appliance/appliance/inventory"
	"github.com/etcd-appliance/appliance/inventory/inventorytest"
	"github.com/etcd-appliance/appliance/render"
	"github.com/etcd-appliance/appliance/workflow"
	"github.com/etcd-appliance/appliance/workflow/apply"
	"github.com/etcd-appliance/appliance/workflow/certs"
	"github.com/etcd-appliance/appliance/workflow/localcluster"
)

// Log is a logger that prints only with go test -v.
func Log(t testing.TB) logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	if testing.Verbose() {
		l.SetOutput(os.Stderr)
	}
	return l
}

// Text is an inventory of n members m0, m1, ... on 127.0.0.1 with free
// ports; cluster holds extra lines for its [cluster] table.
func Text(t testing.TB, n int, cluster string) string {
	t.Helper()
	if cluster == "" {
		cluster = `log_level = "warn"`
	}
	return inventorytest.Loopback("it", cluster, n, etcdtest.FreePorts(t, 2*n))
}

// Inventory is Text, parsed.
func Inventory(t testing.TB, n int, cluster string) *inventory.Inventory {
	t.Helper()
	return inventorytest.Parse(t, Text(t, n, cluster))
}

// New prepares a local cluster of inv in a temporary directory; it is
// stopped when the test ends.
func New(t testing.TB, inv *inventory.Inventory) *localcluster.Cluster {
	t.Helper()
	var out io.Writer
	if testing.Verbose() {
		out = os.Stderr
	}
	lc, err := localcluster.New(inv, t.TempDir(), filepath.Join(etcdtest.BinDir(t), "etcd"), out, false, Log(t))
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

// Started is New, started and waited for.
func Started(t testing.TB, inv *inventory.Inventory) *localcluster.Cluster {
	t.Helper()
	lc := New(t, inv)
	if err := lc.Start(context.Background(), time.Minute); err != nil {
		t.Fatal(err)
	}
	return lc
}

// Status asks every member of the local cluster.
func Status(t testing.TB, lc *localcluster.Cluster) cluster.ClusterStatus {
	t.Helper()
	c, err := lc.Dial(lc.Inv.ClientURLs())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return cluster.Status(context.Background(), lc.Inv, c)
}

// Member is the inventory member name.
func Member(t testing.TB, inv *inventory.Inventory, name string) *inventory.Member {
	t.Helper()
	m, ok := inv.Member(name)
	if !ok {
		t.Fatalf("no member %s", name)
	}
	return m
}

// Voting lists the cluster's voting members.
func Voting(t testing.TB, lc *localcluster.Cluster) (names []string) {
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

// Writer puts keys w/000000, w/000001, ... one after the other until
// stopped, retrying each until its deadline as an application does, and
// remembers every outcome.
type Writer struct {
	acked   []string
	failed  []error
	mu      sync.Mutex
	stop    atomic.Bool
	retried atomic.Int64
	done    chan struct{}
}

// StartWriter starts a writer through endpoints of the local cluster.
func StartWriter(t testing.TB, lc *localcluster.Cluster, endpoints []string) *Writer {
	t.Helper()
	tc, err := lc.ClientTLS()
	if err != nil {
		t.Fatal(err)
	}
	c, err := cluster.Dial(endpoints, tc)
	if err != nil {
		t.Fatal(err)
	}
	w := &Writer{done: make(chan struct{})}
	go func() {
		defer close(w.done)
		defer c.Close()
		tick := time.NewTicker(5 * time.Millisecond) // a steady writer, not a load test
		defer tick.Stop()
		for i := 0; !w.stop.Load() && i < 100000; i++ {
			key := fmt.Sprintf("w/%06d", i)
			// An application's write, as the system test's writer makes
			// it: clientv3 never retries a write once sent, and etcd
			// drops a proposal in flight across a leader change (the
			// request then waits for its timeout), so an application
			// retries its idempotent put until its deadline; a write that
			// does not complete within it has failed.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			var err error
			for {
				actx, acancel := context.WithTimeout(ctx, 3*time.Second)
				_, err = c.KV().Put(actx, key, "v")
				acancel()
				if err == nil || ctx.Err() != nil {
					break
				}
				w.retried.Add(1)
				select {
				case <-ctx.Done():
				case <-time.After(100 * time.Millisecond):
				}
			}
			cancel()
			w.mu.Lock()
			if err != nil {
				w.failed = append(w.failed, fmt.Errorf("%s: %w", key, err))
			} else {
				w.acked = append(w.acked, key)
			}
			w.mu.Unlock()
			<-tick.C
		}
	}()
	return w
}

// Retried counts the attempts that failed and were retried in time.
func (w *Writer) Retried() int64 { return w.retried.Load() }

// Finish stops the writer and returns the acknowledged keys and the
// failures.
func (w *Writer) Finish() ([]string, []error) {
	w.stop.Store(true)
	<-w.done
	return w.acked, w.failed
}

// TLSText is Text with TLS on (a loopback inventory is plain http unless
// it says so) and extra lines under [cluster].
func TLSText(t testing.TB, n int, extra string) string {
	t.Helper()
	return Text(t, n, "log_level = \"warn\"\ntls = \"on\"\n"+extra)
}

// TLSInventory is TLSText, parsed.
func TLSInventory(t testing.TB, n int, extra string) *inventory.Inventory {
	t.Helper()
	return inventorytest.Parse(t, TLSText(t, n, extra))
}

// StartOnly starts the named members of lc as the initial cluster (the
// others stay for member add) and waits for them.
func StartOnly(t testing.TB, lc *localcluster.Cluster, names ...string) {
	t.Helper()
	ctx := context.Background()
	for _, name := range names {
		tg, _ := lc.Target(name)
		o := apply.Options{Dial: lc.Dial, Member: render.MemberOptions{InitialCluster: names}}
		if lc.Certs != "" {
			files, err := certs.HostFiles(lc.Certs, lc.Inv, name)
			if err != nil {
				t.Fatal(err)
			}
			o.Extra = files
		}
		if _, err := apply.Host(ctx, lc.Inv, tg, o, Log(t)); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range names {
		tg, _ := lc.Target(name)
		if _, err := workflow.WaitReady(ctx, tg, time.Minute, Log(t)); err != nil {
			t.Fatal(err)
		}
	}
}

// Root is the directory holding the local cluster's hosts and data.
func Root(lc *localcluster.Cluster) string { return filepath.Dir(lc.Inv.Cluster.DataDir) }

// HostTree is where the local cluster keeps the files of host name.
func HostTree(lc *localcluster.Cluster, name string) string {
	tg, _ := lc.Target(name)
	return tg.FS.Path("/")
}

// Actions lists a plan's changes for one host ("" for the cluster) as
// "WHAT; WHAT; ...".
func Actions(p *workflow.Plan, host string) string {
	var what []string
	for _, a := range p.For(host) {
		what = append(what, a.What)
	}
	return strings.Join(what, "; ")
}
