package backup

import (
	"github.com/coreos/go-semver/semver"
	"go.etcd.io/etcd/api/v3/version"

	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/etcd-appliance/appliance/cluster"
	"github.com/etcd-appliance/appliance/inventory"
	"github.com/etcd-appliance/appliance/workflow"
)

// RestoreOptions tune Restore.
type RestoreOptions struct {
	Dial cluster.Dialer
	// Wait bounds the restored cluster's start.
	Wait time.Duration
	// Plan records every change and is the dry-run guard.
	Plan *workflow.Plan
}

// restoreRun is one Restore: what its steps found and did.
type restoreRun struct {
	inv     *inventory.Inventory
	file    string
	targets []workflow.Target
	o       RestoreOptions
	log     logrus.FieldLogger
	info    Info
	stamp   string
	// moved says which hosts had their data dir moved aside, to put it
	// back if any host fails: a cluster restored on some members only
	// would split.
	moved []bool
}

// Restore replaces every member's data with the snapshot in file, in
// steps: check (the file against its checksum, and restored into a
// scratch directory here and hashed: see Verify; every member reachable),
// stop (every member), restore (each data dir moved aside, kept, and the
// snapshot restored with the member's name, peer URL and the inventory's
// initial cluster by etcdutl on the host), start (all together), verify
// (every member hashes the key space as the backup recorded). A host that
// fails before the start puts every member back on its old data.
func Restore(ctx context.Context, inv *inventory.Inventory, file string, targets []workflow.Target, o RestoreOptions, log logrus.FieldLogger) error {
	r := &restoreRun{inv: inv, file: file, targets: targets, o: o, log: log,
		stamp: time.Now().Format("20060102-150405"), moved: make([]bool, len(targets))}
	if err := workflow.Run(ctx,
		workflow.Step{Name: "check", Run: r.check},
		workflow.Step{Name: "stop", Run: r.stop},
	); err != nil {
		return err
	}
	// Once the members are stopped, a cancelled context must not leave
	// them so: restoring and starting (or rolling back) run to the end.
	if err := workflow.Run(context.WithoutCancel(ctx),
		workflow.Step{Name: "restore", Run: r.restore},
		workflow.Step{Name: "start", Run: r.start},
	); err != nil {
		return err
	}
	return workflow.Run(ctx, workflow.Step{Name: "verify", Run: r.verify})
}

func (r *restoreRun) check(context.Context) error {
	info, err := ReadInfo(r.file)
	if err != nil {
		return err
	}
	if err := Verify(r.file, info, filepath.Dir(r.file), Progress{}); err != nil {
		return fmt.Errorf("%w (nothing was stopped)", err)
	}
	r.info = info
	if info.Cluster != r.inv.Cluster.Name {
		r.log.Warnf("the snapshot comes from cluster %s, restoring it into %s", info.Cluster, r.inv.Cluster.Name)
	}
	for _, t := range r.targets {
		if t.Host.Member == nil || t.Runner == nil {
			return fmt.Errorf("%w: restore needs every member's host, with a way to run commands on it (%s)", ErrBackup, t.Host.Name)
		}
	}
	return nil
}

func (r *restoreRun) each(f func(i int, t workflow.Target) error) error {
	return workflow.OnEvery(r.targets, f)
}

func (r *restoreRun) stop(ctx context.Context) error {
	if !r.o.Plan.DryRun() {
		r.log.Info("stopping every member")
	}
	err := r.each(func(_ int, t workflow.Target) error {
		return r.o.Plan.Do(t.Host.Name, "stop "+t.Unit(), func() error { return t.Services.Stop(ctx, t.Unit()) })
	})
	if err == nil || r.o.Plan.DryRun() {
		return err
	}
	if serr := r.each(func(_ int, t workflow.Target) error { return t.Services.Start(context.WithoutCancel(ctx), t.Unit()) }); serr != nil {
		return fmt.Errorf("stopping the members: %w; starting them again: %w", err, serr)
	}
	return fmt.Errorf("stopping the members: %w (nothing restored: every member was started again)", err)
}

func (r *restoreRun) restore(ctx context.Context) error {
	err := r.each(func(i int, t workflow.Target) error { return r.restoreHost(ctx, i, t) })
	if err != nil && !r.o.Plan.DryRun() {
		return r.rollback(ctx, err)
	}
	return err
}

func (r *restoreRun) restoreHost(ctx context.Context, i int, t workflow.Target) error {
	m := t.Host.Member
	dir := r.inv.DataDir(m)
	if _, err := t.FS.Stat(dir); err == nil {
		aside := dir + ".pre-restore-" + r.stamp
		if err := r.o.Plan.Do(t.Host.Name, "move "+dir+" aside to "+aside+" (kept)", func() error {
			if err := t.FS.Rename(dir, aside); err != nil {
				return err
			}
			r.moved[i] = true
			r.log.WithFields(logrus.Fields{"host": t.Host.Name, "kept": aside}).Info("moved the data dir aside")
			return nil
		}); err != nil {
			return err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	what := fmt.Sprintf("restore the snapshot (revision %d) into %s as member %s with etcdutl", r.info.Revision, dir, m.Name)
	return r.o.Plan.Do(t.Host.Name, what, func() error {
		// Named per member: on one machine, members share the data parent.
		snap := t.FS.Path(path.Join(r.inv.Cluster.DataDir, ".restore-"+m.Name+"-"+r.stamp+".db"))
		f, err := os.Open(r.file)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := t.Runner.Run(ctx, f, "dd", "of="+snap, "bs=1M", "status=none"); err != nil {
			return fmt.Errorf("copying the snapshot: %w", err)
		}
		defer t.Runner.Run(context.WithoutCancel(ctx), nil, "rm", "-f", snap)
		if _, err := t.Runner.Run(ctx, nil, t.EtcdutlCommand(), "snapshot", "restore", snap,
			"--name", m.Name, "--data-dir", t.FS.Path(dir),
			"--initial-cluster", r.inv.InitialCluster(nil), "--initial-cluster-token", r.inv.Cluster.Token,
			"--initial-advertise-peer-urls", r.inv.PeerURL(m)); err != nil {
			return fmt.Errorf("restoring: %w", err)
		}
		// etcdutl restores the backend as the snapshot had it: one taken
		// from a 3.4 or 3.5 cluster reads as 3.5 data until stamped, and
		// the server refuses that.
		if _, err := t.Runner.Run(ctx, nil, t.EtcdutlCommand(), "migrate", "--data-dir", t.FS.Path(dir), "--target-version", storageVersion()); err != nil {
			return fmt.Errorf("stamping the restored data for etcd %s: %w", storageVersion(), err)
		}
		if !t.NoChown {
			if _, err := t.Runner.Run(ctx, nil, "chown", "-R", "etcd:etcd", t.FS.Path(dir)); err != nil {
				return err
			}
		}
		r.log.WithField("host", t.Host.Name).Info("restored")
		return nil
	})
}

func (r *restoreRun) start(ctx context.Context) error {
	if !r.o.Plan.DryRun() {
		r.log.Info("starting every member")
	}
	if err := r.each(func(_ int, t workflow.Target) error {
		return r.o.Plan.Do(t.Host.Name, "start "+t.Unit(), func() error { return t.Services.Start(ctx, t.Unit()) })
	}); err != nil {
		return err
	}
	if r.o.Plan.DryRun() {
		return nil
	}
	return r.each(func(_ int, t workflow.Target) error {
		_, err := workflow.WaitReady(ctx, t, r.o.Wait, r.log)
		return err
	})
}

func (r *restoreRun) verify(ctx context.Context) error {
	if r.o.Plan.DryRun() {
		return nil
	}
	c, err := r.o.Dial(r.inv.ClientURLs())
	if err != nil {
		return err
	}
	defer c.Close()
	for i := range r.inv.Members {
		ep := r.inv.ClientURL(&r.inv.Members[i])
		h, err := c.HashKV(ctx, ep, r.info.Revision)
		if err != nil {
			return fmt.Errorf("%w: checking %s: %w", ErrBackup, r.inv.Members[i].Name, err)
		}
		if h != r.info.HashKV {
			return fmt.Errorf("%w: %s hashes the key space at revision %d to %d, the backup recorded %d", ErrBackup, r.inv.Members[i].Name, r.info.Revision, h, r.info.HashKV)
		}
	}
	r.log.WithFields(logrus.Fields{"revision": r.info.Revision, "hashKV": r.info.HashKV}).Info("restored: every member holds the snapshot's key space")
	return nil
}

// rollback puts every member back on the data it had before a restore
// that failed on some host, and starts them again. Nothing is deleted: a
// partly restored data dir is kept as *.failed-restore-STAMP.
func (r *restoreRun) rollback(ctx context.Context, cause error) error {
	r.log.WithError(cause).Warn("restore failed; putting every member back on its old data")
	ctx = context.WithoutCancel(ctx)
	err := r.each(func(i int, t workflow.Target) error {
		dir := r.inv.DataDir(t.Host.Member)
		if _, err := t.FS.Stat(dir); err == nil {
			failed := dir + ".failed-restore-" + r.stamp
			if err := t.FS.Rename(dir, failed); err != nil {
				return err
			}
			r.log.WithFields(logrus.Fields{"host": t.Host.Name, "kept": failed}).Info("kept the partly restored data dir")
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if r.moved[i] {
			if err := t.FS.Rename(dir+".pre-restore-"+r.stamp, dir); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w; putting the old data back failed too: %w (the old data dirs are kept as *.pre-restore-%s; every member is stopped)",
			cause, err, r.stamp)
	}
	// A member without data of its own would bootstrap an empty cluster:
	// it stays stopped.
	var empty []string
	err = r.each(func(i int, t workflow.Target) error {
		if !r.moved[i] {
			return nil
		}
		return t.Services.Start(ctx, t.Unit())
	})
	for i, t := range r.targets {
		if !r.moved[i] {
			empty = append(empty, t.Host.Name)
		}
	}
	if err != nil {
		return fmt.Errorf("%w; the members are back on their old data, but starting them failed: %w", cause, err)
	}
	if len(empty) > 0 {
		return fmt.Errorf("%w (nothing restored: members with data were put back on it and started; %s had no data dir and stay stopped)",
			cause, strings.Join(empty, ", "))
	}
	return fmt.Errorf("%w (nothing restored: every member was put back on its old data and started again)", cause)
}

// storageVersion is this release's storage schema, "3.7" for etcd 3.7.3.
func storageVersion() string {
	v := semver.New(version.Version)
	return fmt.Sprintf("%d.%d", v.Major, v.Minor)
}
