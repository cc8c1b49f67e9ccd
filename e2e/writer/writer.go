// Package writer is the system test's client, run inside a test host:
// concurrent clients, spread over the members, put, read (linearizable)
// and compare-and-swap a small set of keys through every fault, recording
// each operation's call, return and result; a watcher per member follows
// the keys from the first revision, reconnecting after each fault from the
// last revision it saw. `verify` checks it all with package lincheck.
package writer

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/srv"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"

	"github.com/etcd-appliance/appliance/e2e/lincheck"
)

// Stats is what the writer reports while it runs.
type Stats struct {
	// Acked counts writes the cluster acknowledged (puts, and
	// compare-and-swaps that succeeded).
	Acked int64 `json:"acked"`
	// Failed puts could not complete within the application's 10 s
	// deadline, every attempt included.
	Failed int64 `json:"failed"`
	// Retried counts attempts that failed before a later one of the same
	// put succeeded in time.
	Retried int64 `json:"retried"`
	// Ops counts operations of every kind; Unknown those whose outcome
	// the client could not know.
	Ops     int64  `json:"ops"`
	Unknown int64  `json:"unknown"`
	LastErr string `json:"lastErr,omitempty"`
	// Start is when the history's clock began (its times are offsets
	// from it).
	Start time.Time `json:"start"`
}

// options configure a run; Main fills them from flags.
type options struct {
	endpoints []string
	tls       *transport.TLSInfo
	prefix    string
	keys      int
	clients   int
	// everyEndpoint gives each client every endpoint, as applications
	// configure theirs (a planned restart then costs no write); by
	// default client c talks to member c mod n only.
	everyEndpoint bool
	history       string
	watches       string
	stats         string
	stop          string
	stepFile      string
	maxOps        int
	maxTime       time.Duration
}

func (o options) key(i int) string { return fmt.Sprintf("%sk%02d", o.prefix, i) }

// watchPath is watcher i's stream file.
func (o options) watchPath(i int) string { return fmt.Sprintf("%s-%d.jsonl", o.watches, i) }

// Main runs the clients until a stop file appears (or their bounds end
// them), or with `verify` checks what they recorded. It returns the exit
// code.
func Main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("e2e-writer", flag.ContinueOnError)
	eps := fs.String("endpoints", "", "comma-separated client URLs")
	srvDomain := fs.String("discovery-srv", "", "find the endpoints in this domain's _etcd-client(-ssl)._tcp SRV records instead, as etcdctl --discovery-srv does")
	var o options
	fs.StringVar(&o.history, "history", "/root/writer-history.jsonl", "every operation, one JSON object a line")
	fs.StringVar(&o.watches, "watches", "/root/writer-watch", "watcher i's events go to PATH-i.jsonl")
	fs.StringVar(&o.stats, "stats", "/root/writer.json", "counters, rewritten as it goes")
	fs.StringVar(&o.stop, "stop", "/root/writer.stop", "the clients stop when this file exists")
	fs.StringVar(&o.stepFile, "step-file", "/root/writer.step", "the system test's current step, recorded with each operation")
	fs.StringVar(&o.prefix, "prefix", "e2e/", "the keys it uses (writers beside each other need their own)")
	fs.IntVar(&o.keys, "keys", 8, "how many keys")
	fs.IntVar(&o.clients, "clients", 4, "concurrent clients, spread over the endpoints")
	fs.BoolVar(&o.everyEndpoint, "every-endpoint", false, "give each client every endpoint (as applications do) instead of one member each")
	fs.IntVar(&o.maxOps, "max-ops", 400000, "stop after this many operations")
	fs.DurationVar(&o.maxTime, "max-time", 30*time.Minute, "stop after this long")
	viz := fs.String("viz", "/root/writer-violation.html", "verify: where the checker draws a violation")
	timeout := fs.Duration("check-timeout", 5*time.Minute, "verify: how long the linearizability check may take")
	startAt := fs.String("start", "", "verify: when the run's clock began (its stats' start, RFC 3339), to report times of day")
	var tlsInfo transport.TLSInfo
	fs.StringVar(&tlsInfo.TrustedCAFile, "cacert", "", "cluster CA (with TLS)")
	fs.StringVar(&tlsInfo.CertFile, "cert", "", "client certificate (with TLS)")
	fs.StringVar(&tlsInfo.KeyFile, "key", "", "client key (with TLS)")
	// The old writer's flag: its log of acknowledged keys is now the
	// history.
	fs.String("log", "", "ignored (the history replaces it)")
	verify := len(args) > 0 && args[0] == "verify"
	fill := len(args) > 0 && args[0] == "fill"
	if verify || fill {
		args = args[1:]
	}
	count := fs.Int("count", 100, "fill: how many values")
	size := fs.Int("size", 1<<20, "fill: each value's size in bytes")
	untilFull := fs.Bool("until-full", false, "fill: go on until the cluster refuses a write with NOSPACE (and succeed then)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	o.endpoints = strings.Split(*eps, ",")
	if *srvDomain != "" {
		found, err := srv.GetClient("etcd-client", *srvDomain, "")
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		o.endpoints = found.Endpoints
		fmt.Fprintf(stderr, "e2e-writer: endpoints from %s SRV records: %s\n", *srvDomain, strings.Join(o.endpoints, ","))
	}
	if !tlsInfo.Empty() {
		o.tls = &tlsInfo
	}
	if verify {
		var start time.Time
		if *startAt != "" {
			var err error
			if start, err = time.Parse(time.RFC3339Nano, *startAt); err != nil {
				fmt.Fprintf(stderr, "--start %q: %v (give the stats file's start, RFC 3339)\n", *startAt, err)
				return 2
			}
		}
		return Verify(o, *viz, *timeout, start, stdout, stderr)
	}
	if fill {
		return Fill(o, *count, *size, *untilFull, stdout, stderr)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

// client connects to endpoints with keepalives, as long-lived etcd
// clients do: without them a connection to a host whose link was cut
// stays "up" and requests wait for their timeout.
func (o options) client(endpoints []string) (*clientv3.Client, error) {
	cfg := clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second,
		DialKeepAliveTime: time.Second, DialKeepAliveTimeout: time.Second, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(recordPeer)}}
	if o.tls != nil {
		tc, err := o.tls.ClientConfig()
		if err != nil {
			return nil, err
		}
		cfg.TLS = tc
	}
	return clientv3.New(cfg)
}

type peerKey struct{}

// withPeer returns a context whose unary calls record, in the returned
// peer, the member they went to: a failed attempt's report names it.
func withPeer(ctx context.Context) (context.Context, *peer.Peer) {
	p := &peer.Peer{}
	return context.WithValue(ctx, peerKey{}, p), p
}

func recordPeer(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if p, ok := ctx.Value(peerKey{}).(*peer.Peer); ok {
		opts = append(opts, grpc.Peer(p))
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

// failed marks op as unknown, with why, where and how long it waited.
func failed(op *lincheck.Op, err error, p *peer.Peer) {
	op.Took = op.Return - op.Call
	op.Unknown, op.Return, op.Err = true, 0, err.Error()
	if p.Addr != nil {
		op.Peer = p.Addr.String()
	}
}

// recorder appends operations to the history file, in one goroutine.
type recorder struct {
	mu    sync.Mutex
	w     *bufio.Writer
	start time.Time
	step  atomic.Value
}

func (r *recorder) now() int64 { return int64(time.Since(r.start)) }

func (r *recorder) record(op lincheck.Op) {
	op.Step, _ = r.step.Load().(string)
	b, _ := json.Marshal(op)
	r.mu.Lock()
	r.w.Write(append(b, '\n'))
	r.mu.Unlock()
}

func (r *recorder) flush() {
	r.mu.Lock()
	r.w.Flush()
	r.mu.Unlock()
}

func run(o options) error {
	f, err := os.OpenFile(o.history, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	rec := &recorder{w: bufio.NewWriter(f), start: time.Now()}
	rec.step.Store("")
	var st struct {
		acked, failed, retried, ops, unknown atomic.Int64
		lastErr                              atomic.Value
	}
	st.lastErr.Store("")
	writeStats := func() {
		b, _ := json.Marshal(Stats{Acked: st.acked.Load(), Failed: st.failed.Load(), Retried: st.retried.Load(),
			Ops: st.ops.Load(), Unknown: st.unknown.Load(), LastErr: st.lastErr.Load().(string), Start: rec.start})
		os.WriteFile(o.stats+".tmp", b, 0o644)
		os.Rename(o.stats+".tmp", o.stats)
	}

	ctx, cancel := context.WithTimeout(context.Background(), o.maxTime)
	defer cancel()
	stopped := func() bool {
		_, err := os.Stat(o.stop)
		return err == nil || ctx.Err() != nil || st.ops.Load() >= int64(o.maxOps)
	}

	// Watchers first, one per endpoint, from the first revision.
	wctx, wcancel := context.WithCancel(context.Background())
	defer wcancel()
	watchers := make([]*watcher, len(o.endpoints))
	var wwg sync.WaitGroup
	for i, ep := range o.endpoints {
		w, err := newWatcher(o, ep, o.watchPath(i))
		if err != nil {
			return err
		}
		watchers[i] = w
		wwg.Add(1)
		go func() { defer wwg.Done(); w.run(wctx, o.prefix) }()
	}

	var cwg sync.WaitGroup
	for c := range o.clients {
		// Client c talks to one member: the clients together reach all.
		eps := []string{o.endpoints[c%len(o.endpoints)]}
		if o.everyEndpoint {
			eps = o.endpoints
		}
		cli, err := o.client(eps)
		if err != nil {
			return err
		}
		defer cli.Close()
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), uint64(time.Now().UnixNano())))
			last := map[string]string{} // the value this client last saw per key
			seq := 0
			value := func() string { seq++; return fmt.Sprintf("c%d-%d", c, seq) }
			for !stopped() {
				key := o.key(rng.IntN(o.keys))
				switch p := rng.IntN(10); {
				case p < 5:
					// An application's put: attempts until its 10 s deadline,
					// each attempt its own operation with its own value.
					deadline := time.Now().Add(10 * time.Second)
					for attempt := 0; ; attempt++ {
						op := lincheck.Op{Client: c, Kind: lincheck.Put, Key: key, Value: value(), Call: rec.now()}
						actx, acancel := context.WithTimeout(ctx, 3*time.Second)
						actx, p := withPeer(actx)
						_, err := cli.Put(actx, key, op.Value)
						acancel()
						op.Return = rec.now()
						st.ops.Add(1)
						if err == nil {
							rec.record(op)
							st.acked.Add(1)
							st.retried.Add(int64(attempt))
							last[key] = op.Value
							break
						}
						failed(&op, err, p)
						rec.record(op)
						st.unknown.Add(1)
						st.lastErr.Store(err.Error())
						if time.Now().After(deadline) || stopped() {
							st.failed.Add(1)
							break
						}
						time.Sleep(100 * time.Millisecond)
					}
				case p < 8:
					op := lincheck.Op{Client: c, Kind: lincheck.Get, Key: key, Call: rec.now()}
					actx, acancel := context.WithTimeout(ctx, 3*time.Second)
					resp, err := cli.Get(actx, key)
					acancel()
					op.Return = rec.now()
					st.ops.Add(1)
					if err != nil {
						// A read that failed changed nothing: not recorded.
						st.lastErr.Store(err.Error())
						time.Sleep(100 * time.Millisecond)
						continue
					}
					if len(resp.Kvs) > 0 {
						op.Found, op.Got = true, string(resp.Kvs[0].Value)
						last[key] = op.Got
					} else {
						delete(last, key)
					}
					rec.record(op)
				default:
					exp, found := last[key]
					op := lincheck.Op{Client: c, Kind: lincheck.CAS, Key: key, Value: value(), Expect: exp, ExpectAbsent: !found, Call: rec.now()}
					cmp := clientv3.Compare(clientv3.Value(key), "=", exp)
					if !found {
						cmp = clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
					}
					actx, acancel := context.WithTimeout(ctx, 3*time.Second)
					actx, p := withPeer(actx)
					resp, err := cli.Txn(actx).If(cmp).Then(clientv3.OpPut(key, op.Value)).Commit()
					acancel()
					op.Return = rec.now()
					st.ops.Add(1)
					if err != nil {
						failed(&op, err, p)
						st.unknown.Add(1)
						st.lastErr.Store(err.Error())
						rec.record(op)
						time.Sleep(100 * time.Millisecond)
						continue
					}
					op.OK = resp.Succeeded
					if op.OK {
						st.acked.Add(1)
						last[key] = op.Value
					} else {
						delete(last, key) // read it again before the next try
					}
					rec.record(op)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}

	// Counters and the current step, while the clients run.
	done := make(chan struct{})
	go func() { cwg.Wait(); close(done) }()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for running := true; running; {
		select {
		case <-done:
			running = false
		case <-tick.C:
		}
		if b, err := os.ReadFile(o.stepFile); err == nil {
			rec.step.Store(strings.TrimSpace(string(b)))
		}
		rec.flush()
		writeStats()
	}
	rec.flush()
	writeStats()

	// The watchers catch up with the last write before they stop.
	last, err := lastRevision(o)
	if err == nil {
		deadline := time.Now().Add(60 * time.Second)
		for _, w := range watchers {
			for w.last.Load() < last && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
	wcancel()
	wwg.Wait()
	return err
}

// lastRevision is the revision of the last write to the keys, read
// linearizably through every endpoint.
func lastRevision(o options) (int64, error) {
	cli, err := o.client(o.endpoints)
	if err != nil {
		return 0, err
	}
	defer cli.Close()
	var resp *clientv3.GetResponse
	for attempt := 0; attempt < 20; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err = cli.Get(ctx, o.prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
		cancel()
		if err == nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil {
		return 0, err
	}
	var last int64
	for _, kv := range resp.Kvs {
		last = max(last, kv.ModRevision)
	}
	return last, nil
}

// watcher follows the keys through one member from the first revision,
// and after each interruption from the revision after the last it saw.
type watcher struct {
	cli  *clientv3.Client
	f    *os.File
	last atomic.Int64
}

func newWatcher(o options, endpoint, path string) (*watcher, error) {
	cli, err := o.client([]string{endpoint})
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		cli.Close()
		return nil, err
	}
	return &watcher{cli: cli, f: f}, nil
}

func (w *watcher) run(ctx context.Context, prefix string) {
	defer w.cli.Close()
	defer w.f.Close()
	bw := bufio.NewWriter(w.f)
	defer bw.Flush()
	for ctx.Err() == nil {
		// Leader required: a member cut off from the others says so
		// instead of going quiet, and the watch starts again.
		wch := w.cli.Watch(clientv3.WithRequireLeader(ctx), prefix, clientv3.WithPrefix(), clientv3.WithRev(w.last.Load()+1))
		for resp := range wch {
			if err := resp.Err(); err != nil {
				if errors.Is(err, rpctypes.ErrCompacted) {
					fmt.Fprintf(os.Stderr, "watcher: %v\n", err)
					return
				}
				break
			}
			for _, ev := range resp.Events {
				e := lincheck.Event{Key: string(ev.Kv.Key), Value: string(ev.Kv.Value), Rev: ev.Kv.ModRevision, Delete: ev.Type == clientv3.EventTypeDelete}
				b, _ := json.Marshal(e)
				bw.Write(append(b, '\n'))
				w.last.Store(e.Rev)
			}
			bw.Flush()
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Summary is what Verify found, printed as JSON.
type Summary struct {
	Ops, Unknown, Dropped int
	CheckSeconds          float64
	WatchEvents           int // events checked, every watcher together
	Watchers              int
	HistoryEvents         int
	Violations            []string `json:",omitempty"`
	Visualization         string   `json:",omitempty"`
	// Failed lists the writes whose outcome the client could not know,
	// the first ones, when, through which member and why: a stall is
	// found from the test's log.
	Failed []string `json:",omitempty"`
}

// maxFailed bounds Summary.Failed.
const maxFailed = 30

// failures describes the unknown operations of ops, the first maxFailed.
func failures(ops []lincheck.Op, start time.Time) []string {
	var out []string
	n := 0
	for _, op := range ops {
		if !op.Unknown {
			continue
		}
		if n++; n > maxFailed {
			continue
		}
		at := start.Add(time.Duration(op.Call)).UTC().Format("15:04:05.000")
		if start.IsZero() {
			at = "+" + time.Duration(op.Call).Round(time.Millisecond).String()
		}
		peer := op.Peer
		if peer == "" {
			peer = "no member (none picked)"
		}
		out = append(out, fmt.Sprintf("%s client %d %s %s via %s after %s: %s (step %q)",
			at, op.Client, op.Kind, op.Key, peer, time.Duration(op.Took).Round(time.Millisecond), op.Err, op.Step))
	}
	if n > maxFailed {
		out = append(out, fmt.Sprintf("and %d more", n-maxFailed))
	}
	return out
}

// Verify checks the recorded history for linearizability and every
// watcher's stream against the cluster's history of the keys, read again
// from the first revision.
func Verify(o options, viz string, timeout time.Duration, start time.Time, stdout, stderr io.Writer) int {
	ops, err := readLines[lincheck.Op](o.history)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	final, err := clusterHistory(o)
	if err != nil {
		fmt.Fprintln(stderr, "reading the cluster's history:", err)
		return 1
	}
	streams := map[string][]lincheck.Event{}
	sum := Summary{HistoryEvents: len(final)}
	// The run's watchers, whatever order SRV gave the endpoints in.
	paths, _ := filepath.Glob(o.watches + "-*.jsonl")
	for _, p := range paths {
		s, err := readLines[lincheck.Event](p)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		streams[filepath.Base(p)] = s
		sum.WatchEvents += len(s)
	}
	sum.Watchers = len(streams)
	os.Remove(viz)
	res, lerr := lincheck.Check(ops, final, timeout, viz)
	sum.Ops, sum.Unknown, sum.Dropped, sum.CheckSeconds = res.Ops, res.Unknown, res.Dropped, res.Took.Seconds()
	sum.Violations = res.Violations
	sum.Failed = failures(ops, start)
	if errors.Is(lerr, lincheck.ErrNotLinearizable) {
		sum.Visualization = viz
	} else if lerr != nil {
		sum.Violations = append(sum.Violations, lerr.Error())
	}
	if werr := lincheck.CheckWatches(final, streams, ops); werr != nil {
		sum.Violations = append(sum.Violations, strings.Split(werr.Error(), "\n")...)
	}
	b, _ := json.Marshal(sum)
	fmt.Fprintln(stdout, string(b))
	if len(sum.Violations) > 0 || sum.Ops == 0 {
		return 1
	}
	return 0
}

// clusterHistory reads every event of the keys from the first revision
// up to the last write, with a watch of its own.
func clusterHistory(o options) ([]lincheck.Event, error) {
	last, err := lastRevision(o)
	if err != nil {
		return nil, err
	}
	cli, err := o.client(o.endpoints)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out []lincheck.Event
	for resp := range cli.Watch(ctx, o.prefix, clientv3.WithPrefix(), clientv3.WithRev(1)) {
		if err := resp.Err(); err != nil {
			return nil, err
		}
		for _, ev := range resp.Events {
			out = append(out, lincheck.Event{Key: string(ev.Kv.Key), Value: string(ev.Kv.Value), Rev: ev.Kv.ModRevision, Delete: ev.Type == clientv3.EventTypeDelete})
		}
		if len(out) > 0 && out[len(out)-1].Rev >= last {
			return out, nil
		}
	}
	return nil, fmt.Errorf("the history's watch ended before revision %d: %w", last, ctx.Err())
}

func readLines[T any](path string) ([]T, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []T
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		var v T
		if err := json.Unmarshal(s.Bytes(), &v); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, v)
	}
	return out, s.Err()
}
