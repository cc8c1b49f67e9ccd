package apply

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sirupsen/logrus"

	"github.com/etcd-appliance/appliance/cluster"
	"github.com/etcd-appliance/appliance/inventory"
	"github.com/etcd-appliance/appliance/workflow"
	"github.com/etcd-appliance/appliance/workflow/certs"
)

// ErrRollingStopped marks hosts a rolling restart left alone because an
// earlier host failed.
var ErrRollingStopped = errors.New("not applied: the rolling restart stopped at an earlier host")

// Outcome is what All did on one host.
type Outcome struct {
	Name string
	Res  Result
	// Took is how long the host took to become ready (when waited for).
	Took time.Duration
	Err  error
	// Stage is where it failed: connect, apply or ready.
	Stage string
	// Rolling is true when the host restarted (or, in a dry run, would
	// restart) in the rolling phase; Order is its place in it, from 1,
	// of Of; Leader marks the leader, put last.
	Rolling   bool
	Order, Of int
	Leader    bool
}

// AllOptions tune All.
type AllOptions struct {
	Options
	// Extra hands each host its extra files (its certificates).
	Extra certs.Source
	// WaitReady waits for every started host. Hosts restarted one at a
	// time are always waited for: the next restart needs them serving.
	WaitReady bool
	Wait      time.Duration
}

// Every reaches the named hosts through hosts (this machine, or over SSH)
// and applies them with All; a host that cannot be reached is reported
// with Stage "connect" and the others go on. Outcomes come in the order
// of names.
func Every(ctx context.Context, inv *inventory.Inventory, hosts *workflow.Hosts, names []string, o AllOptions, log logrus.FieldLogger) []Outcome {
	targets, failed := hosts.Each(names)
	byName := map[string]Outcome{}
	for _, out := range All(ctx, inv, targets, o, log) {
		byName[out.Name] = out
	}
	for name, err := range failed {
		byName[name] = Outcome{Name: name, Err: err, Stage: "connect"}
	}
	outs := make([]Outcome, len(names))
	for i, name := range names {
		outs[i] = byName[name]
	}
	return outs
}

// All applies every target. Hosts whose running member must restart go
// one at a time, each ready before the next, followers first and the
// leader last: restarting them together, each seeing a healthy cluster
// when it checked, would stop the cluster. The other hosts are applied in
// parallel and started together, as a new cluster's members must be. One
// failing host does not stop the parallel ones; it ends the rolling
// restart, leaving the hosts after it as they were for a re-run.
func All(ctx context.Context, inv *inventory.Inventory, targets []workflow.Target, o AllOptions, log logrus.FieldLogger) []Outcome {
	out := make([]Outcome, len(targets))
	opts := make([]Options, len(targets))
	for i, t := range targets {
		out[i] = Outcome{Name: t.Host.Name, Stage: "apply"}
		opts[i] = o.Options
	}
	_ = workflow.OnEvery(targets, func(i int, t workflow.Target) error {
		opts[i].Extra, out[i].Err = o.Extra.For(t.Host.Name)
		return out[i].Err
	})

	rolling := make([]bool, len(targets))
	if !o.Plan.DryRun() {
		// A dry run of every host decides which hosts would restart.
		_ = workflow.OnEvery(targets, func(i int, t workflow.Target) error {
			if out[i].Err != nil {
				return nil
			}
			po := opts[i]
			po.Plan = workflow.NewPlan(true, nil)
			res, err := Host(ctx, inv, t, po, log)
			if err != nil {
				out[i].Err = err
				return err
			}
			rolling[i] = res.Restarted
			return nil
		})
	}

	_ = workflow.OnEvery(targets, func(i int, t workflow.Target) error {
		if out[i].Err != nil || rolling[i] {
			return nil
		}
		out[i].Res, out[i].Err = Host(ctx, inv, t, opts[i], log)
		return out[i].Err
	})
	if o.WaitReady && !o.Plan.DryRun() {
		_ = workflow.OnEvery(targets, func(i int, t workflow.Target) error {
			if out[i].Err != nil || rolling[i] {
				return nil
			}
			out[i].Stage = "ready"
			out[i].Took, out[i].Err = workflow.WaitReady(ctx, t, o.Wait, log)
			return out[i].Err
		})
	}

	// Certificates first, on every host that will restart: etcd reads them
	// at each handshake, so a member restarted with new peer settings
	// finds its peers already presenting what it now asks for.
	_ = workflow.OnEvery(targets, func(i int, t workflow.Target) error {
		if out[i].Err != nil || !rolling[i] || len(opts[i].Extra) == 0 {
			return nil
		}
		co := opts[i]
		co.CertsOnly = true
		if _, err := Host(ctx, inv, t, co, log); err != nil {
			out[i].Err = err
		}
		return out[i].Err
	})

	if o.Plan.DryRun() {
		// What the dry run found decides which hosts would restart, and in
		// which order: the operator sees the rolling restart before it.
		for i := range targets {
			rolling[i] = out[i].Err == nil && out[i].Res.Restarted
		}
		order, leader := restartOrder(ctx, inv, targets, rolling, o.Dial)
		for k, i := range order {
			out[i].Rolling, out[i].Order, out[i].Of = true, k+1, len(order)
			out[i].Leader = targets[i].Host.Name == leader
		}
		return out
	}

	var stopped string
	order, leader := restartOrder(ctx, inv, targets, rolling, o.Dial)
	for k, i := range order {
		t := targets[i]
		out[i].Rolling, out[i].Order, out[i].Of = true, k+1, len(order)
		out[i].Leader = t.Host.Name == leader
		if out[i].Err != nil {
			stopped = t.Host.Name
			continue
		}
		if stopped != "" {
			out[i].Err = fmt.Errorf("%w (%s)", ErrRollingStopped, stopped)
			continue
		}
		log.WithField("host", t.Host.Name).Info("rolling restart: this member now, the next once it serves")
		held, err := maintenanceLock(ctx, inv, t, opts[i], log)
		if err == nil {
			// A lease lost while waiting: another may be restarting.
			err = held.check(ctx)
		}
		if err != nil {
			held.release()
			out[i].Err, stopped = err, t.Host.Name
			continue
		}
		out[i].Res, out[i].Err = Host(ctx, inv, t, opts[i], log)
		if out[i].Err == nil {
			out[i].Stage = "ready"
			out[i].Took, out[i].Err = workflow.WaitReady(ctx, t, o.Wait, log)
		}
		held.release()
		if out[i].Err != nil {
			stopped = t.Host.Name
		}
	}
	return out
}

// restartOrder lists the rolling hosts with the leader last, so the
// cluster elects a new leader once rather than at every step, and names
// the leader when it is one of them. Without an answer from the cluster
// it keeps the order given.
func restartOrder(ctx context.Context, inv *inventory.Inventory, targets []workflow.Target, rolling []bool, dial cluster.Dialer) ([]int, string) {
	var order []int
	for i := range targets {
		if rolling[i] {
			order = append(order, i)
		}
	}
	if len(order) == 0 || dial == nil {
		return order, ""
	}
	leader := cluster.LeaderName(ctx, inv, dial)
	for k, i := range order {
		if targets[i].Host.Name == leader {
			return append(append(append([]int(nil), order[:k]...), order[k+1:]...), i), leader
		}
	}
	return order, ""
}

// heldLock is the maintenance lock around one rolling restart; its zero
// value holds nothing.
type heldLock struct {
	h   *cluster.Held
	m   cluster.Membership
	log logrus.FieldLogger
}

func (l heldLock) check(ctx context.Context) error {
	if l.h == nil {
		return nil
	}
	return l.h.Check(ctx)
}

func (l heldLock) release() {
	if l.h != nil {
		rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := l.h.Release(rctx); err != nil {
			l.log.WithError(err).Warn("releasing the maintenance lock failed; its lease frees it within ", cluster.LockTTL)
		}
	}
	if l.m != nil {
		l.m.Close()
	}
}

// maintenanceLock takes the cluster's maintenance lock (cluster.Lock)
// around one member's rolling restart, through the other members, so that
// it never overlaps a package upgrade's restart (etcd-installer
// safe-restart) on another host. --force-restart goes without it: the
// lock needs quorum, which the cluster it repairs may not have.
// Memberships that are not etcd clients (unit tests' fakes) have no lock.
func maintenanceLock(ctx context.Context, inv *inventory.Inventory, t workflow.Target, o Options, log logrus.FieldLogger) (heldLock, error) {
	log = log.WithField("host", t.Host.Name)
	if t.Host.Member == nil || len(inv.Members) == 1 || o.Dial == nil {
		return heldLock{}, nil
	}
	if o.ForceRestart {
		log.Warn("--force-restart: restarting without the maintenance lock (it needs quorum); nothing keeps a package upgrade elsewhere from restarting another member now")
		return heldLock{}, nil
	}
	m, err := o.Dial(cluster.OthersOf(inv, t.Host.Name))
	if err != nil {
		return heldLock{}, fmt.Errorf("maintenance lock: %w", err)
	}
	c, ok := m.(interface{ KV() *clientv3.Client })
	if !ok {
		m.Close()
		return heldLock{}, nil
	}
	wait := o.LockWait
	if wait == 0 {
		wait = 20 * time.Minute
	}
	hostname, _ := os.Hostname()
	holder := fmt.Sprintf("etcd-installer apply on %s (pid %d): rolling restart of %s", hostname, os.Getpid(), t.Host.Name)
	start := time.Now()
	h, err := cluster.Lock(ctx, c.KV(), holder, wait, func(h string) {
		log.WithFields(logrus.Fields{"holder": h, "waited": time.Since(start).Round(time.Second)}).Info("waiting for the maintenance lock: another member is being restarted or maintained")
	})
	if err != nil {
		m.Close()
		return heldLock{}, err
	}
	log.WithField("waited", time.Since(start).Round(10*time.Millisecond)).Info("maintenance lock taken")
	return heldLock{h: h, m: m, log: log}, nil
}
