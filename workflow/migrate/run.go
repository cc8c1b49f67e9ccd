package migrate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	udiff "github.com/aymanbagabas/go-udiff"
	"github.com/coreos/go-semver/semver"
	humanize "github.com/dustin/go-humanize"
	"github.com/sirupsen/logrus"
	"go.etcd.io/etcd/api/v3/version"
	"go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.etcd.io/etcd/server/v3/storage/backend"
	"go.etcd.io/etcd/server/v3/storage/schema"
	"go.uber.org/zap"

	"github.com/etcd-appliance/appliance/datadir"
	"github.com/etcd-appliance/appliance/host"
	"github.com/etcd-appliance/appliance/internal/envfile"
	"github.com/etcd-appliance/appliance/layout"
	"github.com/etcd-appliance/appliance/node"
	"github.com/etcd-appliance/appliance/workflow"
)

// Errors that stop a migration before it changes anything.
var (
	// ErrV2 means the data is etcd 2.x's, which etcd 3.7 cannot read.
	ErrV2 = errors.New("etcd 2.x data")
	// ErrCluster means the data is one member's of a larger cluster.
	ErrCluster = errors.New("member of a multi-member cluster")
)

// Options tune Run.
type Options struct {
	// Plan records every change and is the dry-run guard.
	Plan *workflow.Plan
	Now  func() time.Time
	// Owner owns the migrated data dir and the configuration's group:
	// "etcd" (tests run as whoever they are: "").
	Owner string
}

// Result says what Run found and did.
type Result struct {
	Source Source
	// Config is the new /etc/etcd/etcd.conf, Diff its change.
	Config []byte
	Diff   string
	// Warnings say which old settings were translated.
	Warnings []string
	// Restored: the key space now lives in a data dir etcd 3.7 opens,
	// with Keys live keys at Revision; the old one is kept as Kept.
	Restored       bool
	Kept           string
	Keys           int
	Revision       int64
	UpToDate       bool // the data needs no migration
	UnitsMoved     int  // unit files moved aside (daemon-reload needed)
	StartCommand   string
	MigrationTaken time.Duration
}

// Run migrates this host (reached through f, a LocalFS: the restore runs
// in this process) from its distribution's etcd, in steps: find (its
// settings and data), settings (translated through the server's parser),
// data (restored into a new dir and checked against the old, which is
// then kept under a dated name), config (/etc/etcd/etcd.conf written last,
// so that nothing points at data that is not there). Every change goes
// through o.Plan.
func Run(ctx context.Context, f host.LocalFS, hostname string, o Options, log logrus.FieldLogger) (Result, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	r := &run{f: f, o: o, log: log, stamp: o.Now().Format("20060102-150405")}
	err := workflow.Run(ctx,
		workflow.Step{Name: "find", Run: func(context.Context) error { return r.find(hostname) }},
		workflow.Step{Name: "settings", Run: r.settings},
		workflow.Step{Name: "data", Run: r.data},
		workflow.Step{Name: "unit", Run: r.unit},
		workflow.Step{Name: "config", Run: r.config},
	)
	r.res.StartCommand = "systemctl start etcd"
	if r.res.UnitsMoved > 0 {
		r.res.StartCommand = "systemctl daemon-reload && systemctl start etcd"
	}
	return r.res, err
}

type run struct {
	f     host.LocalFS
	o     Options
	log   logrus.FieldLogger
	stamp string
	res   Result
}

func (r *run) find(hostname string) error {
	src, err := Find(r.f, hostname)
	r.res.Source = src
	if err != nil {
		return err
	}
	d := src.Data
	switch {
	case d.V2:
		return fmt.Errorf("%w: %s holds etcd 2.x data (v2 keys only), which etcd 3.7 cannot read. The last tool to convert v2 keys was "+
			"`ETCDCTL_API=3 etcdctl migrate --data-dir %s` in etcd 3.4 (removed in 3.5): run it with etcd 3.4's etcdctl on a copy, "+
			"start etcd 3.4 on the result, then migrate from 3.4 (docs/migration.md). Nothing was changed", ErrV2, src.DataDir, src.DataDir)
	case len(d.Members) > 1:
		return fmt.Errorf("%w: %s holds a member of a %d-member cluster; migrate the cluster instead: back it up with `etcd-installer backup`, "+
			"provision the new cluster from an inventory and restore (docs/migration.md). Nothing was changed", ErrCluster, src.DataDir, len(d.Members))
	}
	r.res.UpToDate = !d.Initialized || !d.OlderThan(3, 6)
	return nil
}

// settings translates the old settings through the server's own parser
// and renders /etc/etcd/etcd.conf from them.
func (r *run) settings(context.Context) error {
	src := r.res.Source
	in := []string{"ETCD_NAME=" + src.Name, "ETCD_DATA_DIR=" + src.DataDir}
	for _, kv := range src.Env {
		if k, _, _ := strings.Cut(kv, "="); k != "ETCD_NAME" && k != "ETCD_DATA_DIR" {
			in = append(in, kv)
		}
	}
	env, warnings, err := node.Translate(in)
	if err != nil {
		return fmt.Errorf("the settings of %s: %w", describe(src), err)
	}
	r.res.Warnings = warnings
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s the settings of etcd.service, as ETCD_* variables.\n", ownMarker)
	fmt.Fprintf(&b, "%s on %s from %s.\n", migratedMarker, r.o.Now().UTC().Format(time.DateOnly), describe(src))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		q, err := envfile.Quote(v)
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		fmt.Fprintf(&b, "%s=%s\n", k, q)
	}
	r.res.Config = b.Bytes()
	old, _ := r.f.ReadFile(layout.EtcdConf)
	r.res.Diff = udiff.Unified(layout.EtcdConf+" (now)", layout.EtcdConf+" (migrated)", string(old), b.String())
	return nil
}

func describe(src Source) string {
	if src.ConfigFile != "" {
		return src.Style + " etcd (" + src.ConfigFile + ")"
	}
	return src.Style + " etcd (its unit's defaults)"
}

// data restores the old key space into DIR.migrating with etcdutl (the
// old backend read as a snapshot), checks it against the old backend,
// keeps the old dir as DIR.etcd-VERSION-STAMP and moves the new one to
// DIR. A run that was interrupted left DIR.migrating: it is kept aside,
// never deleted.
func (r *run) data(ctx context.Context) error {
	src := r.res.Source
	if r.res.UpToDate {
		if src.Data.Initialized {
			r.log.WithField("dir", src.DataDir).Infof("%s opens as it is (written by %s)", src.DataDir, src.Data.WrittenBy())
		}
		return nil
	}
	dir := src.DataDir
	next := dir + ".migrating"
	kept := fmt.Sprintf("%s.etcd-%s-%s", dir, src.Data.Release(), r.stamp)
	if _, err := r.f.Stat(next); err == nil {
		aside := next + ".failed-" + r.stamp
		if err := r.o.Plan.Do("", "keep "+next+", left by an interrupted migration, as "+aside, func() error { return r.f.Rename(next, aside) }); err != nil {
			return err
		}
	}
	what := fmt.Sprintf("restore the key space of %s (written by %s, %s) into %s with etcdutl, and check it against the old backend",
		dir, src.Data.WrittenBy(), humanize.Bytes(uint64(src.Data.Size)), next)
	start := time.Now()
	if err := r.o.Plan.Do("", what, func() error { return r.restore(dir, next) }); err != nil {
		return err
	}
	if err := r.o.Plan.Do("", "keep "+dir+" as "+kept+", untouched", func() error { return r.f.Rename(dir, kept) }); err != nil {
		return err
	}
	if err := r.o.Plan.Do("", "move "+next+" to "+dir, func() error { return r.f.Rename(next, dir) }); err != nil {
		return err
	}
	r.res.Restored, r.res.Kept, r.res.MigrationTaken = !r.o.Plan.DryRun(), kept, time.Since(start)
	if r.o.Owner == "" {
		return nil
	}
	return r.o.Plan.Do("", "give "+dir+" to "+r.o.Owner+" (0700)", func() error { return chownTree(r.f.Path(dir), r.o.Owner) })
}

// restore runs etcdutl's restore of the old backend (a copy of a data
// dir's db has no snapshot hash to check) and compares the key spaces.
func (r *run) restore(dir, next string) error {
	src := r.res.Source
	env := map[string]string{}
	for _, kv := range src.Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = strings.Trim(v, `"'`)
	}
	peer := firstOf(env["ETCD_INITIAL_ADVERTISE_PEER_URLS"], "http://localhost:2380")
	token := firstOf(env["ETCD_INITIAL_CLUSTER_TOKEN"], "etcd-cluster")
	oldDB := filepath.Join(r.f.Path(dir), "member", "snap", "db")
	err := snapshot.NewV3(zap.NewNop()).Restore(snapshot.RestoreConfig{
		SnapshotPath: oldDB, Name: src.Name, OutputDataDir: r.f.Path(next),
		PeerURLs: []string{peer}, InitialCluster: src.Name + "=" + peer, InitialClusterToken: token,
		SkipHashCheck: true,
	})
	if err != nil {
		return fmt.Errorf("etcdutl restore of %s: %w (the old data is untouched)", oldDB, err)
	}
	was, err := datadir.ReadKeySpace(oldDB)
	if err != nil {
		return err
	}
	now, err := datadir.ReadKeySpace(filepath.Join(r.f.Path(next), "member", "snap", "db"))
	if err != nil {
		return err
	}
	if was != now {
		return fmt.Errorf("the restored key space differs from the old one (%d live keys at revision %d, %d entries; now %d at %d, %d): %s kept for a look, the old data is untouched",
			was.Live, was.Revision, was.Entries, now.Live, now.Revision, now.Entries, next)
	}
	if err := stamp(r.f.Path(next)); err != nil {
		return fmt.Errorf("stamping %s for etcd %s: %w (the old data is untouched)", next, version.Version, err)
	}
	r.res.Keys, r.res.Revision = now.Live, now.Revision
	r.log.WithFields(logrus.Fields{"keys": now.Live, "revision": now.Revision}).Info("restored and checked: the same key space")
	return nil
}

func firstOf(s, def string) string {
	if s = strings.TrimSpace(strings.Split(s, ",")[0]); s != "" {
		return s
	}
	return def
}

// unit moves aside what an administrator wrote for the distribution's
// etcd.service that would run another command under this package's unit
// (an ExecStart= drop-in pointing at their binary, a whole unit copied to
// /etc): kept as NAME.distribution-STAMP, which systemd does not read.
// Other drop-ins (limits, environment) apply as they did, with a warning
// to review them.
func (r *run) unit(context.Context) error {
	for _, u := range r.res.Source.UnitFiles {
		if !u.Replaces {
			r.res.Warnings = append(r.res.Warnings, fmt.Sprintf("%s applies to this package's etcd.service too: review it (`systemctl cat etcd`)", u.Path))
			continue
		}
		aside := u.Path + ".distribution-" + r.stamp
		if err := r.o.Plan.Do("", "move "+u.Path+" aside to "+aside+" (it runs another etcd than this package's)", func() error {
			return r.f.Rename(u.Path, aside)
		}); err != nil {
			return err
		}
		r.res.UnitsMoved++
	}
	return nil
}

// config writes /etc/etcd/etcd.conf, keeping a distribution's own file
// (EL's) under a dated name first.
func (r *run) config(context.Context) error {
	src := r.res.Source
	if src.ConfigFile == layout.EtcdConf {
		keep := layout.EtcdConf + ".distribution-" + r.stamp
		old, err := r.f.ReadFile(layout.EtcdConf)
		if err != nil {
			return err
		}
		if err := r.o.Plan.Do("", "keep the distribution's "+layout.EtcdConf+" as "+keep, func() error {
			_, err := r.f.WriteFile(keep, old, 0o640, "root", r.o.Owner)
			return err
		}); err != nil {
			return err
		}
	}
	return r.o.Plan.DoDetail("", "write "+layout.EtcdConf+" with the migrated settings", r.res.Diff, func() error {
		_, err := r.f.WriteFile(layout.EtcdConf, r.res.Config, 0o640, "root", r.o.Owner)
		return err
	})
}

// stamp records in a restored data dir that this release's schema is in
// place, as `etcdutl migrate --target-version` does: etcdutl restores the
// old backend as it was, which without the stamp reads as data of 3.5,
// and the server's guard refuses that. Only an upgrade is planned here, so
// the WAL's version (which matters to downgrades only) is not read.
func stamp(dir string) error {
	v := semver.New(version.Version)
	be := backend.NewDefaultBackend(zap.NewNop(), filepath.Join(dir, "member", "snap", "db"))
	defer be.Close()
	if err := schema.Migrate(zap.NewNop(), be.BatchTx(), nil, semver.Version{Major: v.Major, Minor: v.Minor}); err != nil {
		return err
	}
	be.ForceCommit()
	return nil
}

// chownTree gives a data dir to the service user, 0700 at the top.
func chownTree(dir, owner string) error {
	uid, gid, err := host.IDs(owner)
	if err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	return filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}
