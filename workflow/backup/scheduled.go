package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/etcd-appliance/appliance/cluster"
	"github.com/etcd-appliance/appliance/internal/atomicfile"
	"github.com/etcd-appliance/appliance/internal/backupstatus"
	"github.com/etcd-appliance/appliance/workflow"
)

// ErrVerify means a scheduled backup did not verify: it is kept aside in
// the failed/ directory and never counted as a good one.
var ErrVerify = errors.New("backup did not verify")

// ScheduledOptions say what etcd-backup.service does on this member.
type ScheduledOptions struct {
	// Cluster and Token are the inventory's, recorded in each backup.
	Cluster, Token string
	// Dir holds the backups; failed ones go to Dir/failed.
	Dir string
	// KeepLast and KeepDaily are the retention (Retain).
	KeepLast, KeepDaily int
	// Name is this member; Endpoints reach the cluster.
	Name      string
	Endpoints []string
	Cred      cluster.Credentials
	// UID and GID own what is written (-1: as written).
	UID, GID int
	// Status is where the last good backup is recorded ("" for nowhere).
	Status string
	Now    func() time.Time
	// Progress reports the snapshot and the verification.
	Progress Progress
	// Copy, when set, receives a copy of each verified backup.
	Copy *Copy

	// tamper, in tests, damages the snapshot between save and verify.
	tamper func(file string)
}

// ScheduledResult says what one scheduled run did.
type ScheduledResult struct {
	// Skipped says why this member took no backup (not the leader).
	Skipped string
	File    string
	Info    Info
	// Took is the snapshot's time, Verify the verification's.
	Took, Verify time.Duration
	Deleted      []string
	// Copied says where the copy went; CopyDeleted what the retention
	// deleted there.
	Copied      string
	CopyDeleted []string
}

// Scheduled is one run of etcd-backup.service: on the leader, a snapshot
// saved to Dir, verified by restoring it into a scratch directory, then
// the retention; on any other member, nothing (it says which member is
// the leader). A failure is returned so that the unit fails.
func Scheduled(ctx context.Context, o ScheduledOptions, log logrus.FieldLogger) (ScheduledResult, error) {
	var res ScheduledResult
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	var c *cluster.Client
	var self *cluster.EndpointRow
	var release func()
	steps := []workflow.Step{
		{Name: "dir", Run: func(context.Context) error {
			unlock, err := lockDir(o.Dir, log)
			if err != nil {
				return err
			}
			release = unlock
			return nil
		}},
		// Only the leader backs up, so that the members' timers firing
		// together take one copy of each revision, not three.
		{Name: "leader", Run: func(ctx context.Context) error {
			var err error
			if c, err = cluster.DialWith(o.Endpoints, o.Cred); err != nil {
				return err
			}
			self, res.Skipped, err = cluster.LeaderSelf(ctx, c, o.Name, "takes the backup")
			return err
		}},
		{Name: "snapshot", Run: func(ctx context.Context) error {
			// Sorted by name is sorted by time.
			res.File = filepath.Join(o.Dir, fmt.Sprintf("%s-%s.db", o.Cluster, now().UTC().Format("20060102T150405Z")))
			if err := destination(res.File, false); err != nil {
				return err
			}
			start := time.Now()
			var err error
			res.Info, err = save(ctx, o.Cluster, o.Token, c, o.Cred, self, res.File, o.Progress, log)
			res.Took = time.Since(start)
			res.Info.TakenAt = now().UTC()
			return err
		}},
		{Name: "verify", Run: func(ctx context.Context) error {
			if o.tamper != nil {
				o.tamper(res.File)
			}
			start := time.Now()
			err := Verify(res.File, res.Info, o.Dir, o.Progress)
			res.Verify = time.Since(start)
			if err != nil {
				return errors.Join(fmt.Errorf("%w: %w", ErrVerify, err), keepAside(o.Dir, res.File))
			}
			t := now().UTC()
			res.Info.Verified = &t
			meta, _ := json.MarshalIndent(res.Info, "", "  ")
			if _, err := atomicfile.Write(res.File+".json", append(meta, '\n'), atomicfile.Options{Mode: 0o600, UID: -1, GID: -1}); err != nil {
				return err
			}
			for _, p := range []string{res.File, res.File + ".json"} {
				if err := own(p, o.UID, o.GID); err != nil {
					return err
				}
			}
			log.WithFields(logrus.Fields{"file": res.File, "revision": res.Info.Revision, "keys": res.Info.TotalKeys,
				"took": res.Verify.Round(time.Millisecond)}).Info("verified: restored into a scratch directory, its key space hashes as the cluster's did")
			return nil
		}},
		{Name: "status", Run: func(context.Context) error {
			if o.Status == "" {
				return nil
			}
			st := backupstatus.Status{File: res.File, TakenAt: res.Info.TakenAt, Verified: *res.Info.Verified, Revision: res.Info.Revision, Size: res.Info.Size}
			return backupstatus.Write(o.Status, st, o.UID, o.GID)
		}},
		{Name: "retention", Run: func(context.Context) error {
			var err error
			res.Deleted, err = applyRetention(o, res.File, now(), log)
			return err
		}},
		{Name: "copy", Run: func(ctx context.Context) error {
			if o.Copy == nil {
				return nil
			}
			var err error
			res.CopyDeleted, err = copyOffHost(ctx, *o.Copy, res.File, o.Cluster, res.Info.Token, o.KeepLast, o.KeepDaily, now(), log)
			if err == nil {
				res.Copied = o.Copy.To + ":" + o.Copy.Dir
			}
			return err
		}},
	}
	defer func() {
		if c != nil {
			c.Close()
		}
		if release != nil {
			release()
		}
	}()
	for _, s := range steps {
		if err := workflow.Run(ctx, s); err != nil {
			return res, fmt.Errorf("%w: %w", ErrBackup, err)
		}
		if res.Skipped != "" {
			log.Info("skipped: " + res.Skipped)
			return res, nil
		}
	}
	return res, nil
}

func own(p string, uid, gid int) error {
	if uid < 0 && gid < 0 {
		return nil
	}
	return os.Chown(p, uid, gid)
}

// keepAside moves a backup that did not verify (and its metadata) to
// dir/failed, where it is kept for inspection and never counted.
func keepAside(dir, file string) error {
	failed := filepath.Join(dir, "failed")
	if err := os.MkdirAll(failed, 0o700); err != nil {
		return err
	}
	var errs []error
	for _, p := range []string{file, file + ".json"} {
		if err := os.Rename(p, filepath.Join(failed, filepath.Base(p))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Listed is one backup in a backup dir.
type Listed struct {
	File string
	Info Info
	// Err says why the backup is not a good one (unreadable metadata,
	// not verified).
	Err error
}

// DirReader reads a backup dir: on this machine (host.LocalFS) or on a
// host over SSH (host.RunnerFS).
type DirReader interface {
	ReadDir(p string) ([]fs.DirEntry, error)
	ReadFile(p string) ([]byte, error)
}

// List reads the backups of dir, oldest first. A file without metadata
// or not verified is listed with Err set.
func List(f DirReader, dir string) ([]Listed, error) {
	entries, err := f.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []Listed
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".db") {
			continue
		}
		l := Listed{File: filepath.Join(dir, e.Name())}
		b, err := f.ReadFile(l.File + ".json")
		switch {
		case err != nil:
			l.Err = fmt.Errorf("no metadata: %w", err)
		case json.Unmarshal(b, &l.Info) != nil:
			l.Err = fmt.Errorf("%s.json is not a backup's metadata", e.Name())
		case l.Info.Verified == nil:
			l.Err = errors.New("not verified")
		}
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].File < out[j].File })
	return out, nil
}

// Retain chooses the verified backups to keep: the newest keepLast, and
// the newest of each of the last keepDaily days that have one (UTC). It
// returns the others, the ones to delete. taken maps a backup to when it
// was taken.
func Retain(taken map[string]time.Time, keepLast, keepDaily int) (drop []string) {
	names := make([]string, 0, len(taken))
	for n := range taken {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return taken[names[i]].After(taken[names[j]]) })
	keep := map[string]bool{}
	for i, n := range names {
		if i < keepLast {
			keep[n] = true
		}
	}
	days := map[string]bool{}
	for _, n := range names {
		d := taken[n].UTC().Format(time.DateOnly)
		if days[d] {
			continue
		}
		if len(days) == keepDaily {
			break
		}
		days[d] = true
		keep[n] = true
	}
	for _, n := range names {
		if !keep[n] {
			drop = append(drop, n)
		}
	}
	sort.Strings(drop)
	return drop
}

// applyRetention deletes the verified backups of this cluster that Retain
// does not keep. The backup just taken is always kept; files that are not
// verified backups, and backups of another cluster sharing the dir, are
// never touched; a backup dated in the future (a clock stepped back)
// counts as taken now, so it cannot hold a place forever.
func applyRetention(o ScheduledOptions, just string, now time.Time, log logrus.FieldLogger) ([]string, error) {
	list, err := List(osDir{}, o.Dir)
	if err != nil {
		return nil, err
	}
	taken := map[string]time.Time{}
	for _, l := range list {
		if l.Err != nil || l.Info.Cluster != o.Cluster || l.Info.Token != o.Token {
			continue
		}
		t := l.Info.TakenAt
		if t.After(now) {
			t = now
		}
		taken[l.File] = t
	}
	var deleted []string
	for _, f := range Retain(taken, o.KeepLast, o.KeepDaily) {
		if f == just {
			continue
		}
		if err := errors.Join(os.Remove(f), os.Remove(f+".json")); err != nil {
			return deleted, err
		}
		deleted = append(deleted, f)
		log.WithField("file", f).Info("deleted by the retention")
	}
	return deleted, nil
}

type osDir struct{}

func (osDir) ReadDir(p string) ([]fs.DirEntry, error) { return os.ReadDir(p) }
func (osDir) ReadFile(p string) ([]byte, error)       { return os.ReadFile(p) }

// ErrNoSuchBackup means no member keeps a scheduled backup of that name.
var ErrNoSuchBackup = errors.New("no such backup")

// Fetch copies the scheduled backup name (a file name `backup list`
// shows, such as prod-20261130T210000Z.db) and its metadata from the
// first member that keeps it in dir to the local directory to, for
// restore. from reads each member's files (here, or over SSH).
func Fetch(name, dir string, from map[string]DirReader, hosts []string, to string) (string, string, error) {
	if filepath.Base(name) != name || !strings.HasSuffix(name, ".db") || strings.HasPrefix(name, ".") {
		return "", "", fmt.Errorf("%w: %q is not the name of a scheduled backup (as `etcd-installer backup list` shows it: CLUSTER-YYYYMMDDTHHMMSSZ.db)", ErrNoSuchBackup, name)
	}
	var tried []string
	for _, h := range hosts {
		f := from[h]
		if f == nil {
			continue
		}
		p := filepath.Join(dir, name)
		meta, err := f.ReadFile(p + ".json")
		if err != nil {
			tried = append(tried, h)
			continue
		}
		data, err := f.ReadFile(p)
		if err != nil {
			return "", "", fmt.Errorf("%s: %s: %w", h, p, err)
		}
		out := filepath.Join(to, name)
		if err := errors.Join(os.WriteFile(out, data, 0o600), os.WriteFile(out+".json", meta, 0o600)); err != nil {
			return "", "", err
		}
		return out, h, nil
	}
	return "", "", fmt.Errorf("%w: %s is not in %s on %s; fix: etcd-installer backup list INVENTORY shows what each member keeps", ErrNoSuchBackup, name, dir, strings.Join(tried, ", "))
}

// lockDir creates dir (0700) and takes an exclusive lock on dir/.lock, so
// that a manual run and the timer's never write the same dir at once; then
// it removes what a run killed half-way left (a scratch restore, a
// partial snapshot), which only a run holding the lock could be writing.
func lockDir(dir string, log logrus.FieldLogger) (func(), error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another backup is running in %s (it holds %s/.lock)", dir, dir)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if n := e.Name(); strings.HasPrefix(n, ".verify-") || strings.HasSuffix(n, ".db.part") {
			if err := os.RemoveAll(filepath.Join(dir, n)); err == nil {
				log.WithField("file", filepath.Join(dir, n)).Info("removed what an interrupted backup left")
			}
		}
	}
	return func() { f.Close() }, nil
}
