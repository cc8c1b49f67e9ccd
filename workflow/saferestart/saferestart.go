// Package saferestart restarts this host's etcd member only when its
// cluster keeps quorum without it, and never together with another
// member: the restart holds the cluster's maintenance lock, a lease-held
// mutex in etcd itself (cluster.MaintenanceLock). The package's upgrade
// script runs it, so `apt upgrade` run on every host at the same moment
// (how fleets are upgraded) restarts the members one after the other, each
// once the one before serves again; a member whose peers could not keep
// quorum without it is not restarted at all: its running process goes on
// serving and the operator is told what to do.
package saferestart

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/etcd-appliance/appliance/cluster"
	"github.com/etcd-appliance/appliance/host"
	"github.com/etcd-appliance/appliance/internal/errkind"
	"github.com/etcd-appliance/appliance/workflow"
)

// ErrNotRestarted means the member was left running as it was: restarting
// it was not safe, or could not be shown to be. The message says why and
// what to do.
var ErrNotRestarted = errors.New("not restarted")

// ErrNotReady means the member was restarted but did not serve again in
// time; the lock is released, and the next member's quorum check counts
// this one as down.
var ErrNotReady = errors.New("restarted, but not serving again")

// Held is a held maintenance lock.
type Held = cluster.HeldLock

// Locker takes the maintenance lock through endpoints (members that stay
// up).
type Locker = cluster.Locker

// Options say which member to restart and how patiently.
type Options struct {
	// Unit is the member's unit (etcd.service).
	Unit string
	// Name is the member's name (its ETCD_NAME).
	Name string
	// Endpoints reach the cluster (the host's etcdctl settings).
	Endpoints []string
	Dial      cluster.Dialer
	Lock      Locker
	// Held is a maintenance lock the caller already holds (a scheduled
	// maintenance decides under it whether to restart): Run neither takes
	// it nor releases it, and checks it is still held before restarting.
	Held Held
	// Holder says who takes the lock and why, for those who wait.
	Holder string
	// LockWait bounds the wait for the lock; ReadyWait the wait for the
	// restarted member to serve.
	LockWait, ReadyWait time.Duration
	// LeaderWait, when set, makes the leader's restart go last: holding
	// the lock while others queue for it (every host upgraded at once),
	// the leader's run gives it up and queues again behind them, for up
	// to this long. Each leader's stop hands leadership over, and a write
	// forwarded to a leader handing over is lost and waits out its
	// client's timeout: leader last costs one handover, not up to one
	// per restart.
	LeaderWait time.Duration
	// Again is the command to run once the cause is fixed, for messages.
	Again string
	Plan  *workflow.Plan
}

// Result says what happened.
type Result struct {
	Restarted bool
	// Skipped says why nothing needed restarting (not an error).
	Skipped string
	// Lock is how long the lock took to get; Took how long the member
	// took to serve again.
	Lock, Took time.Duration
	// Yielded counts the times the leader's run let others go first.
	Yielded int
	// Down and Up are when the restart was asked for and when the member
	// was seen serving again: it was out of service in between.
	Down, Up time.Time
}

type run struct {
	svc  host.Services
	o    Options
	log  logrus.FieldLogger
	res  Result
	self cluster.Member
	// others are the client URLs of the voting members but this one.
	others []string
	single bool
	held   Held
}

// Run restarts the member, safely.
func Run(ctx context.Context, svc host.Services, o Options, log logrus.FieldLogger) (Result, error) {
	r := &run{svc: svc, o: o, log: log.WithField("member", o.Name)}
	defer func() {
		if r.held != nil {
			// The lock is released even when ctx is done: a fresh
			// context, bounded.
			rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := r.held.Release(rctx); err != nil {
				r.log.WithError(err).Warn("releasing the maintenance lock failed; its lease frees it within ", cluster.LockTTL)
			}
		}
	}()
	steps := []workflow.Step{
		{Name: "unit", Run: r.unit},
		{Name: "members", Run: r.members},
		{Name: "lock", Run: r.lock},
		{Name: "quorum", Run: r.quorum},
		{Name: "restart", Run: r.restart},
	}
	for _, s := range steps {
		if r.res.Skipped != "" {
			break
		}
		if err := workflow.Run(ctx, s); err != nil {
			return r.res, err
		}
	}
	return r.res, nil
}

// refuse is an ErrNotRestarted with the advice every refusal ends with.
func (r *run) refuse(format string, args ...any) error {
	return errkind.New(ErrNotRestarted, "%s not restarted: %s; the running etcd goes on serving as it was (a package's new binary takes effect at its next restart); once fixed, run `%s`",
		r.o.Unit, fmt.Sprintf(format, args...), r.o.Again)
}

func (r *run) unit(ctx context.Context) error {
	st, err := r.svc.State(ctx, r.o.Unit)
	if err != nil {
		return err
	}
	if !st.Running() {
		r.res.Skipped = fmt.Sprintf("%s is %s: nothing to restart", r.o.Unit, st.Active)
	}
	return nil
}

func (r *run) members(ctx context.Context) error {
	c, err := r.o.Dial(r.o.Endpoints)
	if err != nil {
		return r.refuse("cannot reach the cluster at %s: %v", strings.Join(r.o.Endpoints, ","), err)
	}
	defer c.Close()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	members, err := c.Members(cctx)
	if err != nil {
		return r.refuse("the cluster does not answer at %s, so whether it keeps quorum without this member is unknown: %v",
			strings.Join(r.o.Endpoints, ","), err)
	}
	found, voting := false, 0
	for _, m := range members {
		if !m.Learner {
			voting++
		}
		if m.Name == r.o.Name {
			r.self, found = m, true
			continue
		}
		if !m.Learner {
			r.others = append(r.others, m.ClientURLs...)
		}
	}
	if !found {
		return r.refuse("the cluster at %s has no member named %s (members: %s)", strings.Join(r.o.Endpoints, ","), r.o.Name, cluster.Names(members))
	}
	// A cluster of one has no quorum to keep and no one to take turns
	// with.
	r.single = voting == 1 && !r.self.Learner
	return nil
}

func (r *run) lock(ctx context.Context) error {
	if r.single || r.o.Held != nil {
		return nil
	}
	if r.o.Plan.DryRun() {
		r.log.Info("would take the maintenance lock")
		return nil
	}
	start := time.Now()
	yieldUntil := start.Add(r.o.LeaderWait)
	for {
		// One bound for the whole wait, a yield included.
		wait := r.o.LockWait
		if r.res.Yielded > 0 {
			wait = max(time.Until(start.Add(r.o.LockWait+r.o.LeaderWait)), time.Second)
		}
		held, err := r.o.Lock(ctx, r.others, r.o.Holder, wait, func(h string) {
			r.log.WithField("holder", h).Info("waiting for the maintenance lock: another member is being restarted or maintained")
		})
		r.res.Lock = time.Since(start)
		if errors.Is(err, cluster.ErrLockTimeout) {
			if r.res.Yielded > 0 {
				return r.refuse("%v (this member leads, and let the members waiting to restart go first)", err)
			}
			return r.refuse("%v", err)
		}
		if err != nil {
			return r.refuse("the maintenance lock could not be taken through %s: %v", strings.Join(r.others, ","), err)
		}
		if n := r.followersFirst(ctx, held, yieldUntil); n > 0 {
			r.log.WithField("waiting", n).Info("this member leads and others wait to restart: they go first, the leader last (one leadership handover)")
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			if err := held.Release(rctx); err != nil {
				r.log.WithError(err).Warn("releasing the maintenance lock failed; its lease frees it within ", cluster.LockTTL)
			}
			cancel()
			r.res.Yielded++
			continue
		}
		r.held = held
		break
	}
	r.log.WithField("waited", r.res.Lock.Round(10*time.Millisecond)).Info("maintenance lock taken")
	return nil
}

// followersFirst says how many others wait for the lock when this member
// leads and LeaderWait has not run out (0: go on). Taking the lock again
// queues this run behind them (the queue is ordered by creation).
//
// Once only: taken again, the lock comes after everyone who waited, and
// two runs for the leader (the package's and an operator's) would
// otherwise hand it to each other until LeaderWait ran out. Only those
// waiting or queuing within leaderGrace go first: a host whose upgrade
// starts later finds the leader restarted before it.
func (r *run) followersFirst(ctx context.Context, held Held, until time.Time) int {
	if r.o.LeaderWait <= 0 || r.res.Yielded > 0 || time.Now().After(until) || r.single {
		return 0
	}
	c, err := r.o.Dial(r.others)
	if err != nil {
		return 0
	}
	defer c.Close()
	leads := false
	for _, u := range r.others {
		sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		st := c.Status(sctx, u)
		cancel()
		if st.Err == nil && st.Leader != 0 {
			leads = st.Leader == r.self.ID
			break
		}
	}
	if !leads {
		return 0
	}
	// Hosts upgraded together start within moments of one another, and
	// the leader's may be first at the lock: it gives the others
	// leaderGrace to queue.
	deadline := time.Now().Add(leaderGrace)
	for {
		if n, err := held.Waiters(ctx); err == nil && n > 0 {
			return n
		}
		if time.Now().After(deadline) {
			return 0
		}
		select {
		case <-ctx.Done():
			return 0
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// leaderGrace is how long the leader's run, first at the lock, waits for
// others to queue before it restarts.
const leaderGrace = 3 * time.Second

// quorum is checked once the lock is held: the member restarted before
// this one has served again by then, or counts as down.
func (r *run) quorum(ctx context.Context) error {
	if r.single {
		return nil
	}
	c, err := r.o.Dial(r.others)
	if err != nil {
		return r.refuse("cannot reach the other members at %s: %v", strings.Join(r.others, ","), err)
	}
	defer c.Close()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	members, err := c.Members(cctx)
	if err != nil {
		return r.refuse("the other members do not answer at %s: %v", strings.Join(r.others, ","), err)
	}
	voting, healthy, down := cluster.HealthyVoting(ctx, c, members, r.o.Name)
	quorum := voting/2 + 1
	if healthy < quorum {
		return r.refuse("with %s restarting, %d of the %d voting members would serve, and quorum is %d (not serving: %s); bring them back first (etcd-installer doctor says why they are down)",
			r.o.Name, healthy, voting, quorum, strings.Join(down, ", "))
	}
	r.log.WithFields(logrus.Fields{"healthy": healthy, "voting": voting}).Info("the others keep quorum without this member")
	return nil
}

func (r *run) restart(ctx context.Context) error {
	err := r.o.Plan.Do("", "restart "+r.o.Unit+" (it serves again before the lock is released)", func() error {
		// The lock may have been lost while the quorum was checked (its
		// lease not kept alive): then another member may be restarting.
		held := r.held
		if held == nil {
			held = r.o.Held
		}
		if held != nil {
			if err := held.Check(ctx); err != nil {
				return r.refuse("%v", err)
			}
		}
		start := time.Now()
		before, err := r.svc.State(ctx, r.o.Unit)
		if err != nil {
			return err
		}
		r.res.Down = time.Now()
		if err := r.svc.Restart(ctx, r.o.Unit); err != nil {
			return err
		}
		if err := r.serving(ctx, start, before.MainPID); err != nil {
			return err
		}
		r.res.Up = time.Now()
		r.res.Restarted, r.res.Took = true, r.res.Up.Sub(start)
		return nil
	})
	if err == nil && r.res.Restarted {
		r.log.WithField("took", r.res.Took.Round(10*time.Millisecond)).Info("restarted; serving again")
	}
	return err
}

// serving waits for READY of a process other than oldPID (systemctl
// restart --no-block returns before the old one stops), then for a
// linearizable read through the member itself.
func (r *run) serving(ctx context.Context, start time.Time, oldPID int) error {
	deadline := start.Add(r.o.ReadyWait)
	var c cluster.Membership
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	last := ""
	for {
		st, err := r.svc.State(ctx, r.o.Unit)
		if err != nil {
			return err
		}
		switch {
		case st.Active == "failed":
			return fmt.Errorf("%w: %s failed (%s, exit status %d): %s\n%s", ErrNotReady, r.o.Unit, st.Result, st.ExitStatus, st.Status,
				r.svc.Logs(ctx, r.o.Unit, 20))
		case st.Active == "active" && st.MainPID != oldPID:
			if c == nil {
				c, _ = r.o.Dial(r.self.ClientURLs)
			}
			if c != nil && slices.ContainsFunc(r.self.ClientURLs, func(u string) bool {
				hctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				defer cancel()
				return c.Healthy(hctx, u) == nil
			}) {
				return nil
			}
		}
		if st.Status != last && st.Status != "" {
			r.log.Info(st.Status)
			last = st.Status
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w after %s: %s is %s: %s", ErrNotReady, r.o.ReadyWait, r.o.Unit, st.Active, st.Status)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// EtcdLock is the Locker over etcd itself, with credentials cr.
func EtcdLock(cr cluster.Credentials) Locker { return cluster.EtcdLocker(cr) }
