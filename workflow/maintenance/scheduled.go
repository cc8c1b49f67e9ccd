package maintenance

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/etcd-appliance/appliance/cluster"
	"github.com/etcd-appliance/appliance/host"
	"github.com/etcd-appliance/appliance/layout"
)

// ErrNotDefragmented means a member was restarted to be defragmented and
// its backend did not shrink: etcd did not defragment at start.
var ErrNotDefragmented = errors.New("the restart did not defragment the member")

// Restarter restarts this host's member safely under held, the
// maintenance lock the caller took: only while the others keep quorum,
// waiting until it serves again (saferestart.Run with Options.Held).
type Restarter func(ctx context.Context, why string, held cluster.HeldLock) error

// DefragAtStart wraps restart so that etcd defragments the member when it
// starts: the threshold is written to layout.DefragmentEnv (under f's
// root), which etcd.service reads when present, for this one restart
// only. systemd removes the file when etcd-maintenance.service ends
// (its RuntimeDirectory), even if this process is killed first.
func DefragAtStart(f host.FS, minFree int64, restart Restarter) Restarter {
	return func(ctx context.Context, why string, held cluster.HeldLock) error {
		path := f.Path(layout.DefragmentEnv)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return err
		}
		env := "# etcd-maintenance.service: this one restart defragments at start.\n" +
			"ETCD_BOOTSTRAP_DEFRAG_THRESHOLD_MEGABYTES=" + strconv.FormatInt(max(minFree>>20, 1), 10) + "\n"
		if _, err := f.WriteFile(layout.DefragmentEnv, []byte(env), 0o600, "", ""); err != nil {
			return err
		}
		defer os.Remove(path)
		return restart(ctx, why, held)
	}
}

// Scheduled is one run of etcd-maintenance.service on the host of member
// o.Self. Each host defragments its own member, by restarting it: etcd
// defragments at start (DefragAtStart) before it serves, while its
// clients have moved to the other members on the closed connection, where
// an online defragmentation would stall every request sent to it for its
// whole duration. Every host's timer fires at the same moment, so a run
// first waits for the maintenance lock and decides under it: the member
// restarted before it serves again by then, and the cluster is surveyed
// whole. The leader's host lets the followers go first (it releases the
// lock and takes it again, up to o.LeaderWait), then hands its leadership
// over as it stops. When NOSPACE is raised, the leader's host recovers
// the cluster online (Run): the cluster refuses writes anyway, so nothing
// is stalled that was not. A cluster of one member is defragmented
// online: a restart would refuse its clients for as long.
func Scheduled(ctx context.Context, c *cluster.Client, o Options, restart Restarter, log logrus.FieldLogger) (Result, error) {
	o.defaults()
	var res Result
	alarms, err := listAlarms(ctx, c)
	if err != nil {
		return res, err
	}
	for _, a := range alarms {
		if a.Kind == "NOSPACE" || a.Kind == "CORRUPT" {
			// No lease is granted under NOSPACE: no lock either. The
			// leader's host alone acts.
			return Run(ctx, c, o, log)
		}
	}
	mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	members, err := c.Members(mctx)
	cancel()
	if err != nil {
		return res, fmt.Errorf("the cluster does not answer: %w", err)
	}
	var others []string
	voting, found := 0, false
	for _, m := range members {
		if !m.Learner {
			voting++
		}
		if m.Name == o.Self {
			found = true
		} else if !m.Learner {
			others = append(others, m.ClientURLs...)
		}
	}
	if !found {
		return res, fmt.Errorf("the cluster has no member %s (its members: %s)", o.Self, cluster.Names(members))
	}
	if voting == 1 {
		// The voter's host alone acts (a learner's host would otherwise
		// defragment the same member at the same moment, with no lock).
		if len(others) > 0 || !isVoter(members, o.Self) {
			res.Skipped = "a cluster of one voting member: its host does the maintenance"
			return res, nil
		}
		o.Lock = nil
		o.Self = ""
		return Run(ctx, c, o, log)
	}
	deadline := time.Now().Add(o.LeaderWait)
	for attempt := 0; ; attempt++ {
		held, err := o.Lock(ctx, others, o.Holder, o.LockWait, func(h string) {
			log.WithField("holder", h).Info("waiting for the maintenance lock: another member is being restarted or maintained")
		})
		if err != nil {
			// NOSPACE raised meanwhile: etcd grants no lease, so no lock;
			// the recovery needs none.
			if alarms, aerr := listAlarms(ctx, c); aerr == nil {
				for _, a := range alarms {
					if a.Kind == "NOSPACE" || a.Kind == "CORRUPT" {
						return Run(ctx, c, o, log)
					}
				}
			}
			// The leader's host, back in the queue behind followers that
			// each hold it for a restart: still theirs to finish.
			if attempt > 0 && errors.Is(err, cluster.ErrLockTimeout) && time.Now().Before(deadline) {
				continue
			}
			return res, fmt.Errorf("scheduled maintenance of %s: %w", o.Self, err)
		}
		r, again, err := scheduledUnderLock(ctx, c, o, held, restart, time.Now().Before(deadline), log)
		res = r
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		if rerr := held.Release(rctx); rerr != nil {
			log.WithError(rerr).Warn("releasing the maintenance lock failed; its lease frees it within ", cluster.LockTTL)
		}
		cancel()
		if err != nil || !again {
			return res, err
		}
		if attempt == 0 {
			log.Info(res.Skipped)
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(o.Poll):
		}
	}
}

// scheduledUnderLock decides and acts while the lock is held. again says
// the leader's host is to wait for its followers and ask again.
func scheduledUnderLock(ctx context.Context, c *cluster.Client, o Options, held cluster.HeldLock, restart Restarter, mayWait bool, log logrus.FieldLogger) (res Result, again bool, err error) {
	rows, leader, err := survey(ctx, c)
	if err != nil {
		return res, false, err
	}
	me := rowOf(rows, o.Self)
	if !o.All && !Fragmented(me, o.FreePercent, o.MinFree) {
		res.Fine = append(res.Fine, describe(me))
		log.WithField("member", describe(me)).Info("no need to defragment")
		return res, false, nil
	}
	if me.ID == leader {
		var first []string
		for _, r := range rows {
			if r.ID != leader && !r.Learner && Fragmented(r, o.FreePercent, o.MinFree) {
				first = append(first, r.Name)
			}
		}
		if len(first) > 0 {
			if mayWait {
				res.Skipped = fmt.Sprintf("followers first: %s need defragmenting; %s (the leader) waits for their hosts' runs, up to %s", strings.Join(first, ", "), o.Self, o.LeaderWait)
				return res, true, nil
			}
			log.WithField("followers", strings.Join(first, ", ")).Warnf("followers are still fragmented after %s (their hosts' runs failed or their timers are off: systemctl status %s there); the leader goes on alone", o.LeaderWait, "etcd-maintenance.service")
		}
	}
	d := Defrag{Name: o.Self, Before: me.DBSize, InUse: me.DBSizeInUse}
	start := time.Now()
	if err := restart(ctx, "defragmentation of "+describe(me)+" (a restart: etcd defragments at start)", held); err != nil {
		return res, false, fmt.Errorf("defragmenting %s: %w", o.Self, err)
	}
	d.Took = time.Since(start)
	if err := held.Check(ctx); err != nil {
		log.WithError(err).Warn("the maintenance lock was lost during the restart: another host may have disrupted its member meanwhile")
	}
	rows, leader, err = survey(ctx, c)
	if err != nil {
		return res, false, fmt.Errorf("after restarting %s: %w", o.Self, err)
	}
	after := rowOf(rows, o.Self)
	d.After = after.DBSize
	if me.ID == me.Leader && leader != me.ID {
		for _, r := range rows {
			if r.ID == leader {
				d.LeaderTo = r.Name
			}
		}
	}
	res.Defragmented = append(res.Defragmented, d)
	if d.After >= d.Before && d.Before-d.InUse >= o.MinFree {
		return res, false, fmt.Errorf("%w: %s was %s and is %s after the restart; does etcd.service read %s? (EnvironmentFile=-%s in the unit; a drop-in that resets EnvironmentFile= must list it again)",
			ErrNotDefragmented, o.Self, describe(me), describe(after), layout.DefragmentEnv, layout.DefragmentEnv)
	}
	log.WithFields(logrus.Fields{"member": o.Self, "before": d.Before, "after": d.After, "took": d.Took.Round(time.Millisecond)}).Info("defragmented")
	return res, false, nil
}

func isVoter(ms []cluster.Member, name string) bool {
	for _, m := range ms {
		if m.Name == name {
			return !m.Learner
		}
	}
	return false
}
