package provision

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"github.com/etcd-appliance/appliance/internal/parallel"

	"github.com/sirupsen/logrus"
	clientsnap "go.etcd.io/etcd/client/v3/snapshot"
	"go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.uber.org/zap"

	"github.com/etcd-appliance/appliance/installer"
)

// ErrBackup is wrapped by backup and restore failures.
var ErrBackup = errors.New("backup")

// BackupInfo is written next to a snapshot as FILE.json.
type BackupInfo struct {
	Cluster     string         `json:"cluster"`
	Token       string         `json:"token"`
	Member      string         `json:"member"`
	Endpoint    string         `json:"endpoint"`
	EtcdVersion string         `json:"etcdVersion"`
	Revision    int64          `json:"revision"`
	HashKV      uint32         `json:"hashKV"`
	TotalKeys   int            `json:"totalKeys"`
	Size        int64          `json:"size"`
	SHA256      string         `json:"sha256"`
	TakenAt     time.Time      `json:"takenAt"`
	Members     []BackupMember `json:"members"`
}

// BackupMember is a member as it was when the snapshot was taken.
type BackupMember struct {
	Name     string   `json:"name"`
	PeerURLs []string `json:"peerURLs"`
}

// Backup saves a snapshot from a healthy member (the leader if it is
// healthy) to out, with its checksum and the cluster's metadata in
// out.json.
func Backup(ctx context.Context, inv *installer.Inventory, c Membership, cr Credentials, out string, log logrus.FieldLogger) (BackupInfo, error) {
	cs := Status(ctx, inv, c)
	var from *EndpointRow
	for i := range cs.Rows {
		r := &cs.Rows[i]
		if r.Healthy && (from == nil || r.Leader) {
			from = r
		}
	}
	if from == nil {
		return BackupInfo{}, fmt.Errorf("%w: no healthy member to take a snapshot from: %s", ErrBackup, strings.Join(cs.Problems, "; "))
	}
	log = log.WithFields(logrus.Fields{"member": from.Name, "file": out})
	version, err := clientsnap.SaveWithVersion(ctx, zap.NewNop(), cr.Config([]string{from.Endpoint}), out)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("%w: saving a snapshot from %s: %w", ErrBackup, from.Name, err)
	}
	st, err := snapshot.NewV3(zap.NewNop()).Status(out)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("%w: the snapshot does not check out: %w", ErrBackup, err)
	}
	hash, err := c.HashKV(ctx, from.Endpoint, st.Revision)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("%w: hashing the key space at revision %d: %w", ErrBackup, st.Revision, err)
	}
	sum, size, err := fileSHA256(out)
	if err != nil {
		return BackupInfo{}, err
	}
	info := BackupInfo{
		Cluster: inv.Cluster.Name, Token: inv.Cluster.Token, Member: from.Name, Endpoint: from.Endpoint,
		EtcdVersion: version, Revision: st.Revision, HashKV: hash, TotalKeys: st.TotalKey,
		Size: size, SHA256: sum, TakenAt: time.Now().UTC(),
	}
	if members, err := c.Members(ctx); err == nil {
		for _, m := range members {
			info.Members = append(info.Members, BackupMember{Name: m.Name, PeerURLs: m.PeerURLs})
		}
	}
	meta, _ := json.MarshalIndent(info, "", "  ")
	if err := os.WriteFile(out+".json", append(meta, '\n'), 0o600); err != nil {
		return info, err
	}
	log.WithFields(logrus.Fields{"revision": info.Revision, "size": size, "sha256": sum}).Info("snapshot saved")
	return info, nil
}

func fileSHA256(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// ReadBackupInfo reads FILE.json and checks FILE against its checksum.
func ReadBackupInfo(file string) (BackupInfo, error) {
	var info BackupInfo
	b, err := os.ReadFile(file + ".json")
	if err != nil {
		return info, fmt.Errorf("%w: %s.json (written by etcd-installer backup) is missing: %w", ErrBackup, file, err)
	}
	if err := json.Unmarshal(b, &info); err != nil {
		return info, fmt.Errorf("%w: %s.json: %w", ErrBackup, file, err)
	}
	sum, _, err := fileSHA256(file)
	if err != nil {
		return info, err
	}
	if sum != info.SHA256 {
		return info, fmt.Errorf("%w: %s has sha256 %s, but %s.json records %s: the file is damaged or not that backup", ErrBackup, file, sum, file, info.SHA256)
	}
	return info, nil
}

// Restore replaces every member's data with the snapshot: it stops every
// member, moves each data dir aside (kept), restores the snapshot with the
// member's name, peer URL and the inventory's initial cluster (etcdutl),
// starts all members together and checks the key space hash is back.
func Restore(ctx context.Context, inv *installer.Inventory, file string, targets []Target, dial func([]string) (Membership, error), wait time.Duration, log logrus.FieldLogger) error {
	info, err := ReadBackupInfo(file)
	if err != nil {
		return err
	}
	if info.Cluster != inv.Cluster.Name {
		log.Warnf("the snapshot comes from cluster %s, restoring it into %s", info.Cluster, inv.Cluster.Name)
	}
	stamp := time.Now().Format("20060102-150405")
	each := func(f func(t Target) error) error {
		return onEvery(targets, func(_ int, t Target) error { return f(t) })
	}
	for _, t := range targets {
		if t.Host.Member == nil || t.Runner == nil {
			return fmt.Errorf("%w: restore needs every member's host, with a way to run commands on it (%s)", ErrBackup, t.Host.Name)
		}
	}
	log.Info("stopping every member")
	if err := each(func(t Target) error { return t.Services.Stop(ctx, t.Unit()) }); err != nil {
		if serr := each(func(t Target) error { return t.Services.Start(context.WithoutCancel(ctx), t.Unit()) }); serr != nil {
			return fmt.Errorf("stopping the members: %w; starting them again: %w", err, serr)
		}
		return fmt.Errorf("stopping the members: %w (nothing restored: every member was started again)", err)
	}
	// What each host went through, to put it back if any host fails: a
	// cluster restored on some members only would split.
	moved := make([]bool, len(targets))
	err = onEvery(targets, func(i int, t Target) error {
		m := t.Host.Member
		dir := inv.DataDir(m)
		if _, err := t.FS.Stat(dir); err == nil {
			aside := dir + ".pre-restore-" + stamp
			if err := t.FS.Rename(dir, aside); err != nil {
				return err
			}
			moved[i] = true
			log.WithFields(logrus.Fields{"host": t.Host.Name, "kept": aside}).Info("moved the data dir aside")
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		// Named per member: on one machine, members share the data parent.
		snap := t.FS.Path(path.Join(inv.Cluster.DataDir, ".restore-"+m.Name+"-"+stamp+".db"))
		f, err := os.Open(file)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := t.Runner.Run(ctx, f, "dd", "of="+snap, "bs=1M", "status=none"); err != nil {
			return fmt.Errorf("copying the snapshot: %w", err)
		}
		defer t.Runner.Run(context.WithoutCancel(ctx), nil, "rm", "-f", snap)
		etcdutl := t.Etcdutl
		if etcdutl == "" {
			etcdutl = "etcdutl"
		}
		if _, err := t.Runner.Run(ctx, nil, etcdutl, "snapshot", "restore", snap,
			"--name", m.Name, "--data-dir", t.FS.Path(dir),
			"--initial-cluster", inv.InitialCluster(nil), "--initial-cluster-token", inv.Cluster.Token,
			"--initial-advertise-peer-urls", inv.PeerURL(m)); err != nil {
			return fmt.Errorf("restoring: %w", err)
		}
		if !t.NoChown {
			if _, err := t.Runner.Run(ctx, nil, "chown", "-R", "etcd:etcd", t.FS.Path(dir)); err != nil {
				return err
			}
		}
		log.WithField("host", t.Host.Name).Info("restored")
		return nil
	})
	if err != nil {
		return restoreRollback(ctx, inv, targets, moved, stamp, err, log)
	}
	log.Info("starting every member")
	if err := each(func(t Target) error { return t.Services.Start(ctx, t.Unit()) }); err != nil {
		return err
	}
	if err := each(func(t Target) error { _, err := WaitReady(ctx, t, wait, log); return err }); err != nil {
		return err
	}
	c, err := dial(inv.ClientURLs())
	if err != nil {
		return err
	}
	defer c.Close()
	for i := range inv.Members {
		ep := inv.ClientURL(&inv.Members[i])
		h, err := c.HashKV(ctx, ep, info.Revision)
		if err != nil {
			return fmt.Errorf("%w: checking %s: %w", ErrBackup, inv.Members[i].Name, err)
		}
		if h != info.HashKV {
			return fmt.Errorf("%w: %s hashes the key space at revision %d to %d, the backup recorded %d", ErrBackup, inv.Members[i].Name, info.Revision, h, info.HashKV)
		}
	}
	log.WithFields(logrus.Fields{"revision": info.Revision, "hashKV": info.HashKV}).Info("restored: every member holds the snapshot's key space")
	return nil
}

// restoreRollback puts every member back on the data it had before a
// restore that failed on some host, and starts them again. Nothing is
// deleted: a partly restored data dir is kept as *.failed-restore-STAMP.
func restoreRollback(ctx context.Context, inv *installer.Inventory, targets []Target, moved []bool, stamp string, cause error, log logrus.FieldLogger) error {
	log.WithError(cause).Warn("restore failed; putting every member back on its old data")
	ctx = context.WithoutCancel(ctx)
	err := onEvery(targets, func(i int, t Target) error {
		dir := inv.DataDir(t.Host.Member)
		if _, err := t.FS.Stat(dir); err == nil {
			failed := dir + ".failed-restore-" + stamp
			if err := t.FS.Rename(dir, failed); err != nil {
				return err
			}
			log.WithFields(logrus.Fields{"host": t.Host.Name, "kept": failed}).Info("kept the partly restored data dir")
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if moved[i] {
			if err := t.FS.Rename(dir+".pre-restore-"+stamp, dir); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w; putting the old data back failed too: %w (the old data dirs are kept as *.pre-restore-%s; every member is stopped)",
			cause, err, stamp)
	}
	// A member without data of its own would bootstrap an empty cluster:
	// it stays stopped.
	var empty []string
	err = onEvery(targets, func(i int, t Target) error {
		if !moved[i] {
			return nil
		}
		return t.Services.Start(ctx, t.Unit())
	})
	for i, t := range targets {
		if !moved[i] {
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

// onEvery runs f for every target at once and joins the errors, each
// named by its host.
func onEvery(targets []Target, f func(i int, t Target) error) error {
	return parallel.Each(targets, func(i int, t Target) error {
		if err := f(i, t); err != nil {
			return fmt.Errorf("%s: %w", t.Host.Name, err)
		}
		return nil
	})
}
