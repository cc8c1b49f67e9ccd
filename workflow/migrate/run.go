package migrate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
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
	"github.com/etcd-appliance/appliance/render"
	"github.com/etcd-appliance/appliance/workflow"
)

// Errors that stop a migration before it changes anything.
var (
	// ErrRunning means an etcd holds the data dir.
	ErrRunning = errors.New("etcd is running")
	// ErrLayout means the data dir is laid out in a way migrate does not
	// handle (a WAL apart, a link, a mount point).
	ErrLayout = errors.New("data dir layout not handled")
	// ErrSpace means the file system has no room for the restored copy.
	ErrSpace = errors.New("not enough space")
	// ErrUnapplied means the backend misses committed writes its WAL holds.
	ErrUnapplied = errors.New("writes not applied to the backend")
	// ErrInterrupted means a migration was cut off in a state migrate
	// does not finish by itself.
	ErrInterrupted = errors.New("interrupted migration")
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
	UnitsMoved     int  // unit files moved aside or written (daemon-reload needed)
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
	unlock, err := lock(f)
	if err != nil {
		return r.res, err
	}
	defer unlock()
	err = workflow.Run(ctx,
		workflow.Step{Name: "find", Run: func(context.Context) error { return r.find(hostname) }},
		workflow.Step{Name: "settings", Run: r.settings},
		workflow.Step{Name: "data", Run: r.data},
		workflow.Step{Name: "unit", Run: r.unit},
		workflow.Step{Name: "config", Run: r.config},
	)
	// restart, not start: the package's own member may be running.
	r.res.StartCommand = "systemctl restart etcd"
	if r.res.UnitsMoved > 0 {
		r.res.StartCommand = "systemctl daemon-reload && systemctl restart etcd"
	}
	return r.res, err
}

type run struct {
	// restoring: the data needs a restore; resume: the checked restore an
	// interrupted run left, to move into place.
	restoring bool
	resume    string
	f         host.LocalFS
	o         Options
	log       logrus.FieldLogger
	stamp     string
	res       Result
}

func (r *run) find(hostname string) error {
	src, err := Find(r.f, hostname)
	r.res.Source = src
	if err != nil {
		return err
	}
	r.res.Warnings = append(r.res.Warnings, src.Warnings...)
	d, dir := src.Data, src.DataDir
	nothing := "Nothing was changed"
	switch {
	case d.Locked:
		return fmt.Errorf("%w: a running etcd holds %s; stop it first (systemctl stop etcd, or the unit that runs it), then run migrate again. %s",
			ErrRunning, dir, nothing)
	case src.WALDir != "" && src.WALDir != path.Join(dir, "member", "wal"):
		return fmt.Errorf("%w: the WAL of %s lives apart, in %s (ETCD_WAL_DIR), which migrate does not move; put it back first: "+
			"stop etcd, `mv %s %s/member/wal`, remove ETCD_WAL_DIR from %s, then run migrate again. %s",
			ErrLayout, dir, src.WALDir, src.WALDir, dir, src.ConfigFile, nothing)
	case d.V2:
		return fmt.Errorf("%w: %s holds etcd 2.x data (v2 keys only), which etcd 3.7 cannot read. The last tool to convert v2 keys was "+
			"`ETCDCTL_API=3 etcdctl migrate --data-dir %s` in etcd 3.4 (removed in 3.5): run it with etcd 3.4's etcdctl on a copy, "+
			"start etcd 3.4 on the result, then migrate from 3.4 (docs/migration.md). %s", ErrV2, dir, dir, nothing)
	case len(d.Members) > 1:
		return fmt.Errorf("%w: %s holds a member of a %d-member cluster; migrate the cluster instead: back it up with `etcd-installer backup`, "+
			"provision the new cluster from an inventory and restore (docs/migration.md). %s", ErrCluster, dir, len(d.Members), nothing)
	}
	for _, u := range src.UnitFiles {
		if u.SetsDir {
			return fmt.Errorf("%w: %s sets the data or WAL dir (or reads another environment file), which migrate does not follow; "+
				"move that setting into %s, then run migrate again. %s", ErrLayout, u.Path, firstOf(src.ConfigFile, DebianDefaults), nothing)
		}
	}
	if !d.Initialized {
		return r.interrupted()
	}
	// Data whose writer is unknown is restored too: cheap, and never
	// wrong for data a distribution's etcd left.
	r.restoring = d.Release() == "" || d.OlderThan(3, 6)
	r.res.UpToDate = !r.restoring
	if !r.restoring {
		return nil
	}
	if err := r.fits(dir); err != nil {
		return fmt.Errorf("%w. %s", err, nothing)
	}
	u, err := datadir.ReadUnapplied(r.f.Path(dir), "")
	if err != nil {
		return fmt.Errorf("%w: %w; migrate cannot tell whether the backend holds every acknowledged write. %s", ErrUnapplied, err, nothing)
	}
	if u.Writes > 0 {
		return fmt.Errorf("%w: the WAL of %s holds %d committed writes its backend has not applied (applied up to index %d, committed %d): "+
			"the old etcd stopped before applying them, and restoring the backend would lose them. Let the etcd that wrote it apply them: "+
			"start it once more and stop it cleanly (on Debian: `apt install etcd-server` replaces this package and keeps every file; "+
			"`systemctl start etcd`, wait for it to serve, `systemctl stop etcd`; install this package again), then run migrate again. %s",
			ErrUnapplied, dir, u.Writes, u.Applied, u.Committed, nothing)
	}
	return nil
}

// interrupted finds what a migration cut off between keeping the old dir
// and moving the new one in left: the data dir missing, the old one kept.
// When DIR.migrating is the checked restore (stamped for this release,
// which happens only once the check passed), the run finishes the swap;
// otherwise it stops and says what is where.
func (r *run) interrupted() error {
	dir := r.res.Source.DataDir
	kept, _ := filepath.Glob(r.f.Path(dir) + ".etcd-*")
	if len(kept) == 0 {
		r.res.UpToDate = true // no data: settings only
		return nil
	}
	next := dir + ".migrating"
	info, err := host.InspectDataDir(r.f, next)
	v := semver.New(version.Version)
	if err == nil && info.StorageVersion != "" && info.Release() == fmt.Sprintf("%d.%d", v.Major, v.Minor) && !info.Locked {
		r.resume, r.res.UpToDate = next, true
		r.res.Kept = path.Join(path.Dir(dir), filepath.Base(kept[len(kept)-1]))
		r.res.Source.Data = info
		return nil
	}
	return fmt.Errorf("%w: %s is missing, and %s holds the data a migration kept: put it back (`mv %s %s`) and run migrate again. Nothing was changed",
		ErrInterrupted, dir, kept[len(kept)-1], kept[len(kept)-1], r.f.Path(dir))
}

// fits refuses what the swap of directories cannot do, before anything is
// written: a data dir that is a symbolic link (the link would be moved,
// not the data) or a mount point (it cannot be renamed), and a file system
// without room for the restored copy.
func (r *run) fits(dir string) error {
	p := r.f.Path(dir)
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		target, _ := os.Readlink(p)
		return fmt.Errorf("%w: %s is a symbolic link to %s: migrate swaps directories by renaming them, and would move the link; "+
			"set ETCD_DATA_DIR to %s itself", ErrLayout, dir, target, target)
	}
	parent, err := os.Stat(filepath.Dir(p))
	if err != nil {
		return err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if pst, ok := parent.Sys().(*syscall.Stat_t); ok && st.Dev != pst.Dev {
			return fmt.Errorf("%w: %s is a mount point, which cannot be renamed; move the data into a directory below it "+
				"(stop etcd; mkdir %s/data; mv %s/member %s/data/), set ETCD_DATA_DIR to %s/data", ErrLayout, dir, dir, dir, dir, dir)
		}
	}
	var sfs syscall.Statfs_t
	if err := syscall.Statfs(filepath.Dir(p), &sfs); err != nil {
		return err
	}
	// The restored backend is at most the old one; the new WAL
	// preallocates 64 MiB; and room to spare.
	need := uint64(r.res.Source.Data.Size) + 128<<20
	if free := sfs.Bavail * uint64(sfs.Bsize); free < need {
		return fmt.Errorf("%w: %s has %s free; the restored copy of %s needs %s", ErrSpace, filepath.Dir(dir),
			humanize.IBytes(free), dir, humanize.IBytes(need))
	}
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
	r.res.Warnings = append(r.res.Warnings, warnings...)
	var b bytes.Buffer
	fmt.Fprintf(&b, "%sthe settings of etcd.service, as ETCD_* variables.\n", ownMarker)
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
	r.res.Diff = udiff.Unified(layout.EtcdConf+" (now)", layout.EtcdConf+" (migrated)", redact(string(old)), redact(b.String()))
	return nil
}

// redact hides the values of secret settings in text shown to the
// operator (the diff): discovery passwords and tokens, a user:password.
func redact(text string) string {
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		k, v, ok := strings.Cut(l, "=")
		k = strings.TrimSpace(k)
		secret := strings.HasSuffix(k, "_PASSWORD") || strings.HasSuffix(k, "_TOKEN") && k != "ETCD_INITIAL_CLUSTER_TOKEN" ||
			k == "ETCD_DISCOVERY_USER" && strings.Contains(v, ":")
		if ok && secret && !strings.HasPrefix(k, "#") {
			lines[i] = k + "=(hidden)"
		}
	}
	return strings.Join(lines, "\n")
}

func describe(src Source) string {
	if src.ConfigFile != "" {
		return src.Style + " etcd (" + src.ConfigFile + ")"
	}
	return src.Style + " etcd (its unit's defaults)"
}

// data restores the old key space into DIR.migrating with etcdutl (the
// old backend read as a snapshot), checks it against the old backend,
// gives it to the service user, keeps the old dir as
// DIR.etcd-VERSION-STAMP and moves the new one to DIR. A DIR.migrating
// left by an earlier run that failed is kept aside, never deleted.
func (r *run) data(ctx context.Context) error {
	src := r.res.Source
	dir := src.DataDir
	if r.resume != "" {
		if err := r.o.Plan.Do("", "finish the interrupted migration: move "+r.resume+" (restored and checked) to "+dir, func() error {
			return r.f.Rename(r.resume, dir)
		}); err != nil {
			return err
		}
		r.res.Restored = !r.o.Plan.DryRun()
	}
	if !r.restoring {
		if src.Data.Initialized && r.resume == "" {
			r.log.WithField("dir", dir).Infof("%s opens as it is (written by %s)", dir, src.Data.WrittenBy())
		}
		return r.own(dir)
	}
	next := dir + ".migrating"
	kept := fmt.Sprintf("%s.etcd-%s-%s", dir, firstOf(src.Data.Release(), "unknown"), r.stamp)
	if _, err := r.f.Stat(next); err == nil {
		aside := next + ".failed-" + r.stamp
		if err := r.o.Plan.Do("", "keep "+next+", left by a migration that failed, as "+aside, func() error { return r.f.Rename(next, aside) }); err != nil {
			return err
		}
	}
	what := fmt.Sprintf("restore the key space of %s (written by %s, %s) into %s with etcdutl, and check it against the old backend",
		dir, src.Data.WrittenBy(), humanize.Bytes(uint64(src.Data.Size)), next)
	start := time.Now()
	if err := r.o.Plan.Do("", what, func() error { return r.restore(dir, next) }); err != nil {
		return err
	}
	if err := r.own(next); err != nil {
		return err
	}
	if err := r.o.Plan.Do("", "keep "+dir+" as "+kept+", untouched", func() error { return r.f.Rename(dir, kept) }); err != nil {
		return err
	}
	if err := r.o.Plan.Do("", "move "+next+" to "+dir, func() error { return r.f.Rename(next, dir) }); err != nil {
		return err
	}
	r.res.Restored, r.res.Kept, r.res.MigrationTaken = !r.o.Plan.DryRun(), kept, time.Since(start)
	return nil
}

// own gives a data dir to the service user, 0700 at the top, when it is
// not already (a rerun after an interrupted chown, data a root-run etcd
// wrote).
func (r *run) own(dir string) error {
	if r.o.Owner == "" {
		return nil
	}
	fi, err := r.f.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) && r.o.Plan.DryRun() {
		err = nil // made by an earlier step of this dry run
	}
	if err != nil || fi == nil {
		return err
	}
	if user, _, err := r.f.Owner(dir); err == nil && user == r.o.Owner && fi.Mode().Perm() == 0o700 {
		return nil
	}
	return r.o.Plan.Do("", "give "+dir+" to "+r.o.Owner+" (0700)", func() error { return chownTree(r.f.Path(dir), r.o.Owner) })
}

// restore runs etcdutl's restore of the old backend (a copy of a data
// dir's db has no snapshot hash to check) as the member it was, with its
// peer URLs as its data records them, and compares the key spaces. A
// restore that fails leaves nothing: the new dir is this run's own.
func (r *run) restore(dir, next string) error {
	src := r.res.Source
	env := map[string]string{}
	for _, kv := range src.Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = strings.Trim(v, `"'`)
	}
	peers := strings.Split(firstOf(env["ETCD_INITIAL_ADVERTISE_PEER_URLS"], "http://localhost:2380"), ",")
	if ms := src.Data.Members; len(ms) == 1 && len(ms[0].PeerURLs) > 0 {
		peers = ms[0].PeerURLs
	}
	var initial []string
	for _, p := range peers {
		initial = append(initial, src.Name+"="+strings.TrimSpace(p))
	}
	token := firstOf(env["ETCD_INITIAL_CLUSTER_TOKEN"], "etcd-cluster")
	oldDB := filepath.Join(r.f.Path(dir), "member", "snap", "db")
	err := snapshot.NewV3(zap.NewNop()).Restore(snapshot.RestoreConfig{
		SnapshotPath: oldDB, Name: src.Name, OutputDataDir: r.f.Path(next),
		PeerURLs: peers, InitialCluster: strings.Join(initial, ","), InitialClusterToken: token,
		SkipHashCheck: true,
	})
	if err != nil {
		// Partly written (a full disk): useless, and this run's.
		os.RemoveAll(r.f.Path(next))
		return fmt.Errorf("etcdutl restore of %s: %w (the old data is untouched; the partial copy was removed)", oldDB, err)
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
	dir := r.res.Source.DataDir
	if !render.OutsideDataDir(dir) {
		return nil
	}
	data, err := render.SandboxDropIn([]string{layout.DataDirDropIn + ": written by etcd-installer migrate: the data dir " + dir +
		" is outside " + layout.DataDir + ", which the unit's sandbox makes read-only"}, dir)
	if err != nil {
		return err
	}
	r.res.UnitsMoved++
	return r.o.Plan.Do("", "let the unit write "+dir+" ("+layout.DataDirDropIn+")", func() error {
		_, err := r.f.WriteFile(layout.DataDirDropIn, data, 0o644, "root", "root")
		return err
	})
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

// ErrBusy means another migrate runs on this host.
var ErrBusy = errors.New("another etcd-installer migrate is running")

// lock keeps two runs of migrate on one host apart with a lock on the
// directory the data dirs live in (/var/lib/etcd; /etc without one): a
// lock on a directory creates no file, so a dry run changes nothing.
func lock(f host.LocalFS) (func(), error) {
	p := f.Path(layout.DataDir)
	if _, err := os.Stat(p); err != nil {
		p = f.Path("/etc")
	}
	fd, err := os.Open(p)
	if err != nil {
		return func() {}, nil // nothing there to protect
	}
	if err := syscall.Flock(int(fd.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		fd.Close()
		return nil, fmt.Errorf("%w (it holds a lock on %s); wait for it to finish", ErrBusy, p)
	}
	return func() { fd.Close() }, nil
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
