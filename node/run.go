package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"go.etcd.io/etcd/client/pkg/v3/types"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
)

var (
	// ErrRemoved means the cluster removed this member; its data dir must be
	// moved aside before the host can join again.
	ErrRemoved = errors.New("member removed from the cluster")
	// ErrStartTimeout means start-up exceeded --start-timeout.
	ErrStartTimeout = errors.New("start-up took longer than --start-timeout")
	// ErrStopped means the server stopped without being asked to.
	ErrStopped = errors.New("etcd server stopped unexpectedly")
	// ErrLostData means the cluster has this member but its data dir has
	// none of its data: it must be replaced, not restarted.
	ErrLostData = errors.New("member lost its data")
)

// RunOptions are the knobs of Run; the zero value is what Main uses.
type RunOptions struct {
	// Notifier receives sd_notify messages; nil means SystemdNotifier.
	Notifier Notifier
	// UnderSystemd enables the start-up bound (systemd would otherwise
	// enforce TimeoutStartSec= itself).
	UnderSystemd bool
	// Watchdog is the ping interval; 0 means no watchdog.
	Watchdog time.Duration
	// Tick is how often STATUS is refreshed and EXTEND_TIMEOUT_USEC sent;
	// 0 means 2 s.
	Tick time.Duration
	// DNS answers the wait for DNS SRV records; nil means this host's
	// resolver, the one etcd uses.
	DNS *net.Resolver
}

// probeEvery is how often readiness is polled once etcd reports ready.
const probeEvery = 50 * time.Millisecond

// Run starts the member, tells systemd about every phase and serves until
// ctx ends (then stops gracefully and returns nil) or the server fails.
// c must have passed Validate.
func Run(ctx context.Context, c *Config, o RunOptions) error {
	if o.Notifier == nil {
		o.Notifier = SystemdNotifier{}
	}
	if o.Tick == 0 {
		o.Tick = 2 * time.Second
	}
	ec := c.Etcd
	var removed, orderly atomic.Bool
	lg := instrument(ec.GetLogger(), c.Secrets(), &removed, &orderly)
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(lg)
	if err := ec.ZapLoggerBuilder(ec); err != nil {
		return fmt.Errorf("setting up logging: %w", err)
	}
	ec.SetupGlobalLoggers()
	for _, w := range c.Warnings {
		lg.Warn(w)
	}

	r := &runner{c: c, o: o, lg: lg, lc: &lifecycle{n: o.Notifier, lg: lg}, removed: &removed, orderly: &orderly, start: time.Now(),
		streams: newStreamEnder(), handover: newHandover(ec.ElectionMs)}
	// On the caller's config for this run only: another Run with it gets
	// its own ender, not this one, stopped.
	orig := ec.GRPCAdditionalServerOptions
	ec.GRPCAdditionalServerOptions = append(slices.Clip(orig), r.streams.option(), r.handover.option())
	defer func() { ec.GRPCAdditionalServerOptions = orig }()
	r.metrics = registerApplianceMetrics(c.Etcd, r.lc)
	if o.UnderSystemd && c.StartTimeout > 0 {
		t := time.NewTimer(c.StartTimeout)
		defer t.Stop()
		r.deadline = t.C
	}
	return r.run(ctx)
}

type runner struct {
	// metrics is what the appliance's metrics read of this member.
	metrics *memberState
	c       *Config
	o       RunOptions
	lg      *zap.Logger
	lc      *lifecycle
	removed *atomic.Bool
	orderly *atomic.Bool // a stop was asked for
	// streams ends the clients' watches when a stop is asked for.
	streams *streamEnder
	// handover answers the writes a leader change lost.
	handover *handover
	start    time.Time
	deadline <-chan time.Time
	e        *embed.Etcd
	// errc is the server's error channel; nil once closed.
	errc    <-chan error
	serving bool
	kind    startKind
	// disc reads the v3 discovery service while the member bootstraps
	// through it; discSize is the size it last read there.
	disc     *clientv3.Client
	discSize int
}

func (r *runner) name() string { return r.c.Etcd.Name }

func (r *runner) run(ctx context.Context) error {
	starting := fmt.Sprintf("starting %s: opening backend and replaying WAL in %s", r.name(), r.c.Etcd.Dir)
	r.lc.enter(PhaseStarting)
	r.lc.setStatus("%s", starting)
	startDone := r.extendWhileStarting()
	defer startDone()
	r.kind = kindOf(r.c.Etcd)
	defer r.closeDiscovery()
	if check := r.bootstrapWait(); check != nil {
		if done, err := r.waitBootstrap(ctx, check); done {
			return err
		}
		r.lc.enter(PhaseStarting)
		r.lc.setStatus("%s", starting)
	}
	tick := time.NewTicker(r.o.Tick)
	defer tick.Stop()
	done, err := r.open(ctx, tick.C)
	// Bootstrapped (or not): the discovery service is not needed again.
	r.closeDiscovery()
	if done {
		return err
	}
	r.errc = r.e.Err()
	if done, err := r.waitQuorum(ctx, tick.C); done {
		return err
	}
	if done, err := r.waitReadiness(ctx, tick.C); done {
		return err
	}
	startDone()
	r.serving = true
	r.lc.ready(servingStatus(r.name(), r.e.Server))
	r.lg.Info("member is ready", zap.Duration("took", time.Since(r.start)))
	return r.serve(ctx, tick.C)
}

// extendWhileStarting keeps systemd's start timeout moving while we start:
// each message allows three more ticks; the hard bound is our own
// deadline. The function it returns stops it (more calls do nothing).
func (r *runner) extendWhileStarting() func() {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(r.o.Tick)
		defer t.Stop()
		for {
			r.lc.extend(3 * r.o.Tick)
			select {
			case <-t.C:
			case <-done:
				return
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done) }) }
}

// open starts etcd: backend open and WAL replay. done means run ends,
// with err.
func (r *runner) open(ctx context.Context, tick <-chan time.Time) (done bool, err error) {
	ec := r.c.Etcd
	opening := "" // what STATUS says etcd does while it opens
	type started struct {
		e   *embed.Etcd
		err error
	}
	sc := make(chan started, 1)
	go func() {
		e, err := embed.StartEtcd(ec)
		if err == nil {
			r.handover.serving(e.Server)
		}
		sc <- started{e, err}
	}()
	for {
		select {
		case <-tick:
			if opening = r.openingStatus(ctx); opening != "" {
				r.lc.setStatus("%s", opening)
			}
		case s := <-sc:
			if err := r.lostData(s.err); err != nil {
				r.lc.fail("%v", err)
				return true, err
			}
			if err := r.discoveryFull(s.err); err != nil {
				r.lc.fail("%v", err)
				return true, err
			}
			if s.err != nil {
				r.lc.fail("failed to start: %v", s.err)
				return true, fmt.Errorf("starting etcd: %w", s.err)
			}
			r.e = s.e
			r.metrics.srv.Store(s.e.Server)
			return false, nil
		case <-ctx.Done():
			// Leaving mid-replay is as safe as a crash; waiting could outlast
			// TimeoutStopSec=.
			r.orderly.Store(true)
			r.lc.stopping("stopping: interrupted while opening the backend")
			return true, nil
		case <-r.deadline:
			if opening != "" {
				return true, r.gaveUp(opening)
			}
			r.lc.fail("gave up after %s: opening the backend and replaying the WAL in %s did not finish; "+
				"raise ETCD_START_TIMEOUT if the WAL is that large", r.c.StartTimeout, ec.Dir)
			return true, fmt.Errorf("%w (%s) while opening the backend", ErrStartTimeout, r.c.StartTimeout)
		}
	}
}

// lostData recognizes etcd's refusal of a member that starts a new
// cluster with an empty data dir while its peers already have it: its
// disk was replaced or its data dir deleted. Restarting would be refused
// again every 5 s forever; the fix is to replace the member.
func (r *runner) lostData(err error) error {
	if err == nil || r.kind != startNew || !strings.Contains(err.Error(), "has already been bootstrapped") {
		return nil
	}
	return fmt.Errorf("%w: the cluster already has member %s, but its data dir %s holds none of its data (a new disk, or the dir deleted), "+
		"so it cannot rejoin as itself; replace it: `etcd-installer member replace INVENTORY %s` (member remove, then member add, in one step)",
		ErrLostData, r.name(), r.c.Etcd.Dir, r.name())
}

// waitQuorum waits until the member has joined its cluster (ReadyNotify:
// its attributes are committed, which needs quorum), saying for whom it
// waits. done means run ends, with err.
func (r *runner) waitQuorum(ctx context.Context, tick <-chan time.Time) (done bool, err error) {
	srv := r.e.Server
	readyc := srv.ReadyNotify()
	r.lc.enter(PhaseWaiting)
	r.lc.setStatus("%s", waitingStatus(r.name(), srv, r.kind))
	return await(r, ctx, tick, readyc, func() (bool, string) {
		select {
		case <-readyc:
			return true, ""
		default:
			return false, waitingStatus(r.name(), srv, r.kind)
		}
	})
}

// waitReadiness polls the member's own /readyz over its client listener:
// ReadyNotify fires before the client port answers.
func (r *runner) waitReadiness(ctx context.Context, tick <-chan time.Time) (done bool, err error) {
	probe, err := newReadinessProbe(r.c.Etcd, r.e.Server)
	if err != nil {
		return true, r.failed(err)
	}
	poll := time.NewTicker(probeEvery)
	defer poll.Stop()
	return await(r, ctx, tick, poll.C, func() (bool, string) {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if err := probe.check(pctx); err != nil {
			return false, "waiting for readiness: " + err.Error()
		}
		return true, ""
	})
}

// await is a start-up phase: it runs check until it reports done, again
// each time wake fires, with STATUS set to what check says at every tick.
// The server stopping or failing, a stop request and the start deadline
// end the phase and run (done).
func await[T any](r *runner, ctx context.Context, tick <-chan time.Time, wake <-chan T, check func() (ok bool, status string)) (done bool, err error) {
	for {
		ok, status := check()
		if ok {
			return false, nil
		}
		select {
		case <-wake:
		case <-tick:
			r.lc.setStatus("%s", status)
		case <-r.e.Server.StopNotify():
			return true, r.stopped()
		case err, ok := <-r.errc:
			if ok {
				return true, r.failed(err)
			}
			r.errc = nil
		case <-ctx.Done():
			return true, r.shutdown()
		case <-r.deadline:
			return true, r.gaveUp(status)
		}
	}
}

// serve keeps STATUS current until the member stops, fails or is asked to
// stop.
func (r *runner) serve(ctx context.Context, tick <-chan time.Time) error {
	srv := r.e.Server
	if r.o.Watchdog > 0 {
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go r.watchdog(wctx)
	}
	for {
		select {
		case <-tick:
		case <-srv.LeaderChangedNotify():
		case <-srv.StopNotify():
			return r.stopped()
		case err, ok := <-r.errc:
			if ok {
				return r.failed(err)
			}
			r.errc = nil
		case <-ctx.Done():
			return r.shutdown()
		}
		r.lc.setStatus("%s", servingStatus(r.name(), srv))
	}
}

// watchdog pings systemd while the local member is alive. The check
// runs on its own cadence and the pings follow its last success: a check
// slowed by a loaded host (a read waiting out its deadline during a
// defragmentation, then etcd's metrics gathered to see the
// defragmentation) must not cost a ping, while a check that hangs stops
// the pings within WatchdogSec - every, and systemd kills the member.
func (r *runner) watchdog(ctx context.Context) {
	pingWhileAlive(ctx, r.o.Watchdog, func(ctx context.Context) error { return alive(ctx, r.e.Server) }, r.lc.watchdog, func(err error) {
		r.lg.Warn("not pinging the watchdog: member is not alive", zap.Error(err))
	})
}

// pingWhileAlive runs check every watchdog/3 (each bounded by half of
// that) and pings every watchdog/3 while the last success is younger than
// watchdog - watchdog/3.
func pingWhileAlive(ctx context.Context, watchdog time.Duration, check func(context.Context) error, ping func(), warn func(error)) {
	every := watchdog / 3
	var lastOK atomic.Int64
	lastOK.Store(time.Now().UnixNano())
	go func() {
		for ctx.Err() == nil {
			start := time.Now()
			// Half an interval: a check that must wait out a
			// defragmentation still succeeds well within WatchdogSec.
			cctx, cancel := context.WithTimeout(ctx, every/2)
			err := check(cctx)
			cancel()
			if err == nil {
				lastOK.Store(time.Now().UnixNano())
			} else if ctx.Err() == nil {
				warn(err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Until(start.Add(every))):
			}
		}
	}()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if time.Since(time.Unix(0, lastOK.Load())) < watchdog-every {
			ping()
		}
	}
}

func (r *runner) shutdown() error {
	r.orderly.Store(true)
	r.lc.stopping(stoppingStatus(r.name(), r.e))
	r.close()
	return nil
}

// stoppingStatus says what an asked-for stop does: a leader hands
// leadership over first; a follower just leaves.
func stoppingStatus(name string, e *embed.Etcd) string {
	if e == nil {
		return "stopping: " + name + " shuts down"
	}
	srv := e.Server
	switch lead := srv.Leader(); {
	case lead == srv.MemberID():
		return fmt.Sprintf("stopping: %s hands over leadership and shuts down", name)
	case lead == types.ID(0):
		return fmt.Sprintf("stopping: %s shuts down (no leader now)", name)
	default:
		return fmt.Sprintf("stopping: %s shuts down; %s stays leader", name, memberName(srv, lead))
	}
}

func (r *runner) stopped() error {
	srv := r.e.Server
	if r.removed.Load() || srv.IsIDRemoved(uint64(srv.MemberID())) {
		// Its cluster let it go: what stopping logs is not a fault.
		r.orderly.Store(true)
		dir := r.c.Etcd.Dir
		// etcd-installer member remove moves the data dir aside right
		// after this; removed any other way, it is still there. The
		// STATUS stays after the stop, so it must be true in both cases.
		r.lc.enter(PhaseRemoved)
		r.lc.setStatus("removed: the cluster removed member %s (%s); to join again it needs a new, empty data dir: "+
			"etcd-installer member remove keeps the old one as %s.removed-*, else move it aside yourself "+
			"(mv %s %s.removed-%s), then etcd-installer member add",
			r.name(), srv.MemberID(), dir, dir, dir, time.Now().Format("20060102"))
		r.close()
		return ErrRemoved
	}
	r.lc.fail("stopped unexpectedly: see the journal for the cause")
	r.close()
	return ErrStopped
}

func (r *runner) failed(err error) error {
	// A stopping server makes its listeners report "server is stopping"
	// before (or just after) StopNotify closes: classify it as a stop.
	if r.removed.Load() {
		return r.stopped()
	}
	select {
	case <-r.e.Server.StopNotify():
		return r.stopped()
	case <-time.After(2 * time.Second):
	}
	r.lc.fail("failed: %v", err)
	r.close()
	return err
}

func (r *runner) gaveUp(why string) error {
	r.lc.fail("gave up after %s (ETCD_START_TIMEOUT): %s", r.c.StartTimeout, why)
	r.close()
	return fmt.Errorf("%w (%s): %s", ErrStartTimeout, r.c.StartTimeout, why)
}

// closeBound limits how long closing may take, below the unit's
// TimeoutStopSec=60s: exiting without a clean close is as safe as a crash.
const closeBound = 40 * time.Second

// close shuts the member down. embed's Close waits for client servers that
// only start once the member is ready (it ranges over serveCtx.serversC),
// so before that it would hang: then stop the server alone, which closes
// raft, the WAL and the backend.
func (r *runner) close() {
	if r.e == nil {
		// Still waiting to bootstrap, or opening: nothing runs yet.
		return
	}
	// Whatever the reason for closing, the clients' watches go on
	// elsewhere at once rather than hold the close for etcd's 7 s.
	r.streams.stop()
	done := make(chan struct{})
	go func() {
		if r.serving {
			r.e.Close()
		} else {
			r.e.Server.HardStop()
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(closeBound):
		r.lg.Warn("etcd did not close in time; exiting without a clean close", zap.Duration("waited", closeBound))
	}
}
