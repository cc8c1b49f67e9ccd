// Package member changes who is in a running cluster: Add brings an
// inventory member in as a learner and promotes it once it has caught up;
// Remove takes one out and cleans up its host. Both refuse a change that
// could cost quorum, go through named steps with the dry-run guard, and
// resume where they stopped when run again.
package member

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/etcd-appliance/appliance/cluster"
	"github.com/etcd-appliance/appliance/internal/errkind"
	"github.com/etcd-appliance/appliance/internal/progress"
	"github.com/etcd-appliance/appliance/internal/suggest"
	"github.com/etcd-appliance/appliance/inventory"
	"github.com/etcd-appliance/appliance/render"
	"github.com/etcd-appliance/appliance/workflow"
	"github.com/etcd-appliance/appliance/workflow/apply"
)

// ErrQuorumRisk means a membership change could leave the cluster without
// quorum.
var ErrQuorumRisk = errors.New("membership change would risk quorum")

// ErrNoSuchMember means the name is not a member anywhere.
var ErrNoSuchMember = errors.New("no such member")

// Options tune Add and Remove.
type Options struct {
	Dial cluster.Dialer
	// Wait bounds the new member's start and catch-up.
	Wait time.Duration
	// Force skips the quorum and health guards.
	Force bool
	Now   func() time.Time
	// Extra files for the new member's host: its certificates.
	Extra []render.File
	// BackupKnownHosts is apply's (the [backup] copy_to host's keys).
	BackupKnownHosts []byte
	// Plan records every change and is the dry-run guard.
	Plan *workflow.Plan
	// Progress reports the learner catching up (its backend growing
	// towards the leader's).
	Progress progress.To
}

func (o Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// addRun is one Add: what its steps found.
type addRun struct {
	inv     *inventory.Inventory
	name    string
	m       *inventory.Member
	t       workflow.Target
	o       Options
	log     logrus.FieldLogger
	c       cluster.Membership
	members []cluster.Member
	joining *cluster.Member
	voting  int
	done    bool // already a voting member
}

// Add adds the inventory member name to the running cluster, in steps:
// check (the cluster answers and every voting member is healthy), learner
// (added as a non-voting member), host (applied with initial-cluster-state
// "existing"), ready (its unit serves), promote (once it has caught up).
// Re-running it resumes where it stopped.
func Add(ctx context.Context, inv *inventory.Inventory, name string, t workflow.Target, o Options, log logrus.FieldLogger) error {
	if err := Addable(inv, name); err != nil {
		return err
	}
	m, _ := inv.Member(name)
	r := &addRun{inv: inv, name: name, m: m, t: t, o: o, log: log.WithField("member", name)}
	defer func() {
		if r.c != nil {
			r.c.Close()
		}
	}()
	return workflow.Run(ctx,
		workflow.Step{Name: "check", Run: r.check},
		workflow.Step{Name: "learner", Run: r.learner},
		workflow.Step{Name: "host", Run: r.host},
		workflow.Step{Name: "ready", Run: r.ready},
		workflow.Step{Name: "promote", Run: r.promote},
	)
}

// Addable says why name cannot be added: it must have a [[member]] table
// in the inventory first.
func Addable(inv *inventory.Inventory, name string) error {
	if _, ok := inv.Member(name); ok {
		return nil
	}
	var names []string
	for _, m := range inv.Members {
		names = append(names, m.Name)
	}
	if _, ok := inv.Host(name); ok {
		return errkind.New(ErrNoSuchMember, "%s is a [[proxy]] in %s, and a proxy cannot become a member; fix: replace its [[proxy]] table with a [[member]] table (name, address), then run member add again",
			name, inv.Source)
	}
	msg := fmt.Sprintf("%s has no [[member]] named %s (its members: %s", inv.Source, name, strings.Join(names, ", "))
	if c, ok := suggest.Name(name, names); ok {
		msg += "; did you mean " + c + "?"
	}
	return errkind.New(ErrNoSuchMember, "%s); fix: to add a new member, add a [[member]] table with name = %q and its address to %s first, then run member add again",
		msg, name, inv.Source)
}

func (r *addRun) check(ctx context.Context) error {
	c, members, err := cluster.RunningMembers(ctx, r.inv, r.name, r.o.Dial)
	if err != nil {
		return err
	}
	r.c, r.members = c, members
	peerURL := r.inv.PeerURL(r.m)
	for i := range members {
		mm := &members[i]
		if mm.Name == r.name || contains(mm.PeerURLs, peerURL) {
			r.joining = mm
		}
	}
	if r.joining != nil && !r.joining.Learner {
		r.done = true
		return nil
	}
	voting, healthy, down := cluster.HealthyVoting(ctx, c, members, "")
	r.voting = voting
	if !r.o.Force && healthy < voting {
		return fmt.Errorf("%w: %d of %d voting members are healthy (unhealthy: %s); a new voting member raises the quorum, "+
			"so fix the cluster first or pass --force", ErrQuorumRisk, healthy, voting, strings.Join(down, ", "))
	}
	return nil
}

func (r *addRun) learner(ctx context.Context) error {
	if r.done {
		return nil
	}
	if r.joining != nil {
		r.log.Info("already added as a learner; resuming")
		return nil
	}
	peerURL := r.inv.PeerURL(r.m)
	what := fmt.Sprintf("add %s (%s) to the cluster as a learner: %d voting members once it is promoted%s",
		r.name, peerURL, r.voting+1, evenNote(r.voting+1))
	return r.o.Plan.Do("", what, func() error {
		r.log.WithField("peer-url", peerURL).Infof("adding as a learner: the cluster goes from %d to %d voting members once it is promoted%s",
			r.voting, r.voting+1, evenNote(r.voting+1))
		actx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		added, err := r.c.AddLearner(actx, []string{peerURL})
		if err != nil {
			return err
		}
		r.joining = &added
		r.members = append(r.members, added)
		return nil
	})
}

func (r *addRun) host(ctx context.Context) error {
	ao := apply.Options{Dial: r.o.Dial, Extra: r.o.Extra, Plan: r.o.Plan, BackupKnownHosts: r.o.BackupKnownHosts}
	if r.done {
		r.log.Info("already a voting member; applying its host only")
		_, err := apply.Host(ctx, r.inv, r.t, ao, r.log)
		return err
	}
	names := []string{r.name}
	for _, mm := range r.members {
		if mm.Name != "" && mm.Name != r.name {
			names = append(names, mm.Name)
		}
	}
	ao.Member = render.MemberOptions{State: "existing", InitialCluster: names}
	if _, err := apply.Host(ctx, r.inv, r.t, ao, r.log); err != nil {
		return fmt.Errorf("applying %s: %w (the learner stays in the cluster; fix and re-run member add to resume)", r.name, err)
	}
	return nil
}

func (r *addRun) ready(ctx context.Context) error {
	if r.done || r.o.Plan.DryRun() {
		return nil
	}
	if _, err := workflow.WaitReady(ctx, r.t, r.o.Wait, r.log); err != nil {
		return fmt.Errorf("%w (the learner stays in the cluster; fix and re-run member add to resume)", err)
	}
	return nil
}

func (r *addRun) promote(ctx context.Context) error {
	if r.done {
		return nil
	}
	return r.o.Plan.Do("", "promote "+r.name+" to a voting member once it has caught up with the leader", func() error {
		defer r.catchUpProgress(ctx)()
		deadline := time.Now().Add(r.o.Wait)
		for {
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := r.c.Promote(pctx, r.joining.ID)
			cancel()
			// An earlier attempt that timed out may have been applied.
			if err == nil || errors.Is(err, rpctypes.ErrMemberNotLearner) {
				break
			}
			// etcd promotes a learner only once it has caught up with the
			// leader; a leader change mid-request is worth another try too.
			if !retryablePromote(err) {
				return fmt.Errorf("promoting %s: %w", r.name, err)
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("promoting %s: not promoted after %s: %w (re-run member add to resume)", r.name, r.o.Wait, err)
			}
			r.log.Debug("learner catching up")
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(500 * time.Millisecond):
			}
		}
		r.log.Infof("promoted: the cluster has %d voting members%s", r.voting+1, evenNote(r.voting+1))
		return nil
	})
}

// catchUpProgress reports the data in the learner's backend as it grows
// towards the most any other member holds (a learner catches up by a
// snapshot, then the log), until the returned stop.
func (r *addRun) catchUpProgress(ctx context.Context) func() {
	if r.o.Progress.W == nil {
		return func() {}
	}
	status := func(ep string) cluster.EndpointStatus {
		sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		return r.c.Status(sctx, ep)
	}
	var total int64
	for _, m := range r.members {
		if m.Name != r.name && len(m.ClientURLs) > 0 {
			total = max(total, status(m.ClientURLs[0]).DBSizeInUse)
		}
	}
	learner := r.inv.ClientURL(r.m)
	return r.o.Progress.Start(r.name+" catching up", total, func() int64 { return status(learner).DBSizeInUse })
}

func retryablePromote(err error) bool {
	for _, e := range []error{rpctypes.ErrMemberLearnerNotReady, rpctypes.ErrUnhealthy, rpctypes.ErrTimeout,
		rpctypes.ErrLeaderChanged, rpctypes.ErrNoLeader, rpctypes.ErrNotLeader} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func evenNote(n int) string {
	if n%2 == 0 {
		return fmt.Sprintf(" (an even count: it tolerates %d failure(s), like %d members; add or remove one more)", (n-1)/2, n-1)
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Remove removes the member name from the cluster, in steps: check (the
// remaining members keep quorum), remove (from the cluster), host (stop
// and disable its unit, move its data dir aside: kept, named with the
// date, so the host can join again later). t may be nil when the host is
// gone for good.
func Remove(ctx context.Context, inv *inventory.Inventory, name string, t *workflow.Target, o Options, log logrus.FieldLogger) error {
	log = log.WithField("member", name)
	var c cluster.Membership
	var target *cluster.Member
	remaining := 0
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	return workflow.Run(ctx,
		workflow.Step{Name: "check", Run: func(ctx context.Context) error {
			var members []cluster.Member
			var err error
			if c, members, err = cluster.RunningMembers(ctx, inv, name, o.Dial); err != nil {
				return err
			}
			for i := range members {
				if members[i].Name == name {
					target = &members[i]
				}
			}
			if target == nil {
				if _, ok := inv.Member(name); !ok {
					var names []string
					for _, m := range members {
						names = append(names, m.Name)
					}
					return fmt.Errorf("%w: %s is neither a member of the running cluster (%s) nor of %s; fix: check the name",
						ErrNoSuchMember, name, strings.Join(names, ", "), inv.Source)
				}
				log.Info("not a member of the running cluster (already removed?); cleaning up its host only")
				return nil
			}
			voting, healthy, down := cluster.HealthyVoting(ctx, c, members, name)
			remaining = voting
			if !target.Learner {
				remaining--
			}
			quorum := remaining/2 + 1
			if !o.Force && healthy < quorum {
				return fmt.Errorf("%w: after removing %s, %d of %d remaining voting members would be healthy and quorum is %d (unhealthy: %s); "+
					"fix them first or pass --force", ErrQuorumRisk, name, healthy, remaining, quorum, strings.Join(down, ", "))
			}
			return nil
		}},
		workflow.Step{Name: "remove", Run: func(ctx context.Context) error {
			if target == nil {
				return nil
			}
			what := fmt.Sprintf("remove %s (%x) from the cluster: %d voting members remain%s", name, target.ID, remaining, evenNote(remaining))
			return o.Plan.Do("", what, func() error {
				rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
				defer cancel()
				if err := c.Remove(rctx, target.ID); err != nil {
					return fmt.Errorf("removing %s: %w", name, err)
				}
				log.Infof("removed: the cluster has %d voting members%s", remaining, evenNote(remaining))
				return nil
			})
		}},
		workflow.Step{Name: "host", Run: func(ctx context.Context) error {
			if t == nil {
				return nil
			}
			return cleanUp(ctx, inv, name, *t, o, log)
		}},
	)
}

// Replace puts member name back with an empty data dir, for a member
// whose disk died (its etcd exits 81) or that must start afresh: Remove
// (refused when the other members could not keep quorum; the host's unit
// stopped, the data dir moved aside, never deleted), then Add (a learner,
// applied on its host, promoted once it has caught up). Run again after
// an interruption it resumes: a name no longer in the cluster, or a
// learner, goes straight to Add.
func Replace(ctx context.Context, inv *inventory.Inventory, name string, t workflow.Target, o Options, log logrus.FieldLogger) error {
	if err := Addable(inv, name); err != nil {
		return err
	}
	c, members, err := cluster.RunningMembers(ctx, inv, name, o.Dial)
	if err != nil {
		return err
	}
	c.Close()
	voting := false
	for _, m := range members {
		if m.Name == name && !m.Learner {
			voting = true
		}
	}
	if voting {
		if err := Remove(ctx, inv, name, &t, o, log); err != nil {
			return fmt.Errorf("replacing %s, removing it: %w", name, err)
		}
		if o.Plan.DryRun() {
			o.Plan.Do("", fmt.Sprintf("then add %s back as a learner on its host with an empty data dir, promoted once caught up (member add)", name), func() error { return nil })
			return nil
		}
	} else {
		log.WithField("member", name).Info("not a voting member of the running cluster (removed already, or a learner): adding it back")
	}
	if err := Add(ctx, inv, name, t, o, log); err != nil {
		return fmt.Errorf("replacing %s, adding it back: %w", name, err)
	}
	return nil
}

// cleanUp stops and disables a removed member's unit and moves its data
// dir aside. It tries every part and reports all that failed.
func cleanUp(ctx context.Context, inv *inventory.Inventory, name string, t workflow.Target, o Options, log logrus.FieldLogger) error {
	unit := t.Unit()
	var errs []error
	if err := o.Plan.Do(name, "stop "+unit, func() error { return t.Services.Stop(ctx, unit) }); err != nil {
		errs = append(errs, fmt.Errorf("stopping %s: %w", unit, err))
	}
	if err := o.Plan.Do(name, "disable "+unit, func() error { return t.Services.Disable(ctx, unit) }); err != nil {
		errs = append(errs, fmt.Errorf("disabling %s: %w", unit, err))
	}
	if m, ok := inv.Member(name); ok {
		dir := inv.DataDir(m)
		if _, err := t.FS.Stat(dir); err == nil {
			aside := fmt.Sprintf("%s.removed-%s", dir, o.now().Format("20060102-150405"))
			if err := o.Plan.Do(name, "move "+dir+" aside to "+aside+" (kept)", func() error {
				if err := t.FS.Rename(dir, aside); err != nil {
					return err
				}
				log.WithField("kept", aside).Info("moved the data dir aside")
				return nil
			}); err != nil {
				errs = append(errs, fmt.Errorf("moving %s aside: %w", dir, err))
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s left the cluster, but its host is not cleaned up: %w; "+
			"on the host: systemctl disable --now %s and move its data dir aside", name, err, unit)
	}
	return nil
}
