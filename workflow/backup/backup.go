// Package backup saves a cluster's key space to a snapshot file with its
// checksum and metadata (Save), and puts a snapshot back on every member
// of a cluster (Restore), keeping every old data dir and putting the
// cluster back as it was when a host fails half-way.
package backup

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
	"path/filepath"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	clientsnap "go.etcd.io/etcd/client/v3/snapshot"
	"go.etcd.io/etcd/etcdutl/v3/etcdutl"
	"go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.etcd.io/etcd/server/v3/storage/backend"
	"go.etcd.io/etcd/server/v3/storage/mvcc"
	"go.uber.org/zap"

	"github.com/etcd-appliance/appliance/cluster"
	"github.com/etcd-appliance/appliance/internal/atomicfile"
	"github.com/etcd-appliance/appliance/internal/progress"
	"github.com/etcd-appliance/appliance/inventory"
	"github.com/etcd-appliance/appliance/workflow"
)

// ErrBackup is wrapped by backup and restore failures.
var ErrBackup = errors.New("backup")

// Info is written next to a snapshot as FILE.json.
type Info struct {
	Cluster  string `json:"cluster"`
	Token    string `json:"token"`
	Member   string `json:"member"`
	Endpoint string `json:"endpoint"`
	// ServerVersion is the etcd release of the member the snapshot came
	// from (what `status` shows, 3.7.3); StorageVersion is the version of
	// the data format the snapshot holds (3.7.0: etcd versions its data
	// by minor release), what a restoring etcd must understand.
	ServerVersion  string `json:"serverVersion"`
	StorageVersion string `json:"storageVersion"`
	// EtcdVersion is the storage version under its name in backups taken
	// before both were recorded; read, never written.
	EtcdVersion string    `json:"etcdVersion,omitempty"`
	Revision    int64     `json:"revision"`
	HashKV      uint32    `json:"hashKV"`
	TotalKeys   int       `json:"totalKeys"`
	Size        int64     `json:"size"`
	SHA256      string    `json:"sha256"`
	TakenAt     time.Time `json:"takenAt"`
	Members     []Member  `json:"members"`
	// Verified is when a scheduled backup was restored into a scratch
	// directory and its key space hashed as the cluster did (Verify);
	// only a verified backup counts as a good one.
	Verified *time.Time `json:"verified,omitempty"`
}

// Member is a member as it was when the snapshot was taken.
type Member struct {
	Name     string   `json:"name"`
	PeerURLs []string `json:"peerURLs"`
}

// SaveOptions say where Save writes.
type SaveOptions struct {
	// Out is the snapshot file; its metadata goes to Out.json.
	Out string
	// Force replaces an existing backup (once the new one checks out).
	Force bool
	// Plan records the files written and is the dry-run guard.
	Plan *workflow.Plan
	// Progress reports the snapshot's transfer.
	Progress Progress
}

// Progress says where long operations (a snapshot streamed to its file,
// a verification's restore) report while they run.
type Progress = progress.To

// sizeOf is the size of the first of paths that exists (a file written
// as NAME.part and renamed when done), 0 until one does.
func sizeOf(paths ...string) func() int64 {
	return func() int64 {
		for _, p := range paths {
			if fi, err := os.Stat(p); err == nil {
				return fi.Size()
			}
		}
		return 0
	}
}

// ErrDestination means a backup cannot be written where asked.
var ErrDestination = errors.New("backup destination refused")

// destination refuses what a backup must not replace: anything but a
// regular file (a device, a directory, a symbolic link), and without force
// an existing backup.
func destination(p string, force bool) error {
	fi, err := os.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("%w: %w", ErrDestination, err)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%w: %s is not a regular file (%s): a backup is written only to a file; fix: choose another --out", ErrDestination, p, fi.Mode().Type())
	case !force:
		return fmt.Errorf("%w: %s exists; fix: choose another --out, or pass --force to replace it (it is replaced only once the new snapshot checks out)", ErrDestination, p)
	}
	return nil
}

// Save saves a snapshot from a healthy member (the leader if it is
// healthy) to o.Out, with its checksum and the cluster's metadata in
// o.Out.json. It refuses, before asking the cluster, a destination that is
// not a regular file, or an existing one without o.Force. Writing both
// files goes through o.Plan: a dry run says which member it would take
// the snapshot from.
func Save(ctx context.Context, inv *inventory.Inventory, c cluster.Membership, cr cluster.Credentials, o SaveOptions, log logrus.FieldLogger) (Info, error) {
	out := o.Out
	if err := errors.Join(destination(out, o.Force), destination(out+".json", o.Force), destination(out+".part", true)); err != nil {
		return Info{}, err
	}
	plan := o.Plan
	cs := cluster.Status(ctx, inv, c)
	var from *cluster.EndpointRow
	for i := range cs.Rows {
		r := &cs.Rows[i]
		if r.Healthy && (from == nil || r.Leader) {
			from = r
		}
	}
	if from == nil {
		return Info{}, fmt.Errorf("%w: no healthy member to take a snapshot from: %s", ErrBackup, strings.Join(append(cs.Problems, cs.Warnings...), "; "))
	}
	role := "a healthy follower"
	if from.Leader {
		role = "the leader"
	}
	var info Info
	what := fmt.Sprintf("save a snapshot of cluster %s from %s (%s) to %s, with its checksum and metadata in %s.json", inv.Cluster.Name, from.Name, role, out, out)
	err := plan.Do("", what, func() error {
		var err error
		info, err = save(ctx, inv.Cluster.Name, inv.Cluster.Token, c, cr, from, out, o.Progress, log)
		return err
	})
	return info, err
}

func save(ctx context.Context, clusterName, token string, c cluster.Membership, cr cluster.Credentials, from *cluster.EndpointRow, out string, prog Progress, log logrus.FieldLogger) (Info, error) {
	log = log.WithFields(logrus.Fields{"member": from.Name, "file": out})
	// The client writes OUT.part, then renames it: a stale one goes
	// first, so that the write never follows what was left there.
	if err := os.Remove(out + ".part"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Info{}, err
	}
	stop := prog.Start("snapshot from "+from.Name, from.DBSize, sizeOf(out+".part", out))
	version, err := clientsnap.SaveWithVersion(ctx, zap.NewNop(), cr.Config([]string{from.Endpoint}), out)
	stop()
	if err != nil {
		return Info{}, fmt.Errorf("%w: saving a snapshot from %s: %w", ErrBackup, from.Name, err)
	}
	st, err := snapshot.NewV3(zap.NewNop()).Status(out)
	if err != nil {
		return Info{}, fmt.Errorf("%w: the snapshot does not check out: %w", ErrBackup, err)
	}
	hash, err := c.HashKV(ctx, from.Endpoint, st.Revision)
	if err != nil {
		return Info{}, fmt.Errorf("%w: hashing the key space at revision %d: %w", ErrBackup, st.Revision, err)
	}
	sum, size, err := fileSHA256(out)
	if err != nil {
		return Info{}, err
	}
	info := Info{
		Cluster: clusterName, Token: token, Member: from.Name, Endpoint: from.Endpoint,
		ServerVersion: from.Version, StorageVersion: version, Revision: st.Revision, HashKV: hash, TotalKeys: st.TotalKey,
		Size: size, SHA256: sum, TakenAt: time.Now().UTC(),
	}
	if members, err := c.Members(ctx); err == nil {
		for _, m := range members {
			info.Members = append(info.Members, Member{Name: m.Name, PeerURLs: m.PeerURLs})
		}
	}
	meta, _ := json.MarshalIndent(info, "", "  ")
	if _, err := atomicfile.Write(out+".json", append(meta, '\n'), atomicfile.Options{Mode: 0o600, UID: -1, GID: -1}); err != nil {
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

// ReadInfo reads FILE.json and checks FILE against its checksum.
func ReadInfo(file string) (Info, error) {
	var info Info
	b, err := os.ReadFile(file + ".json")
	if err != nil {
		return info, fmt.Errorf("%w: %s.json (written by etcd-installer backup) is missing: %w", ErrBackup, file, err)
	}
	if err := json.Unmarshal(b, &info); err != nil {
		return info, fmt.Errorf("%w: %s.json: %w", ErrBackup, file, err)
	}
	if info.StorageVersion == "" {
		info.StorageVersion, info.EtcdVersion = info.EtcdVersion, ""
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

// Verify checks a snapshot completely, on a scratch copy under scratch
// (a new directory, removed afterwards): etcdutl restores it with its own
// integrity check (the hash etcd appends to every snapshot), and the
// restored key space must hash at the backup's revision to what the
// cluster said when the backup was taken. A file damaged inside whose
// checksum file was updated to match fails here, before anything stops.
func Verify(file string, info Info, scratch string, prog Progress) error {
	dir, err := os.MkdirTemp(scratch, ".verify-")
	if err != nil {
		// A read-only backup store: the temporary directory will do.
		if dir, err = os.MkdirTemp("", "etcd-verify-"); err != nil {
			return err
		}
	}
	defer os.RemoveAll(dir)
	data := filepath.Join(dir, "data")
	stop := prog.Start("verify (restore into a scratch dir)", info.Size, sizeOf(filepath.Join(data, "member", "snap", "db")))
	defer stop()
	err = snapshot.NewV3(zap.NewNop()).Restore(snapshot.RestoreConfig{
		SnapshotPath: file, Name: "verify", OutputDataDir: data,
		PeerURLs: []string{"http://127.0.0.1:2380"}, InitialCluster: "verify=http://127.0.0.1:2380", InitialClusterToken: "verify",
	})
	if err != nil {
		return fmt.Errorf("%w: %s does not restore (etcdutl's integrity check): %w", ErrBackup, file, err)
	}
	h, err := hashKV(filepath.Join(data, "member", "snap", "db"), info.Revision)
	if err != nil {
		return fmt.Errorf("%w: hashing %s restored: %w", ErrBackup, file, err)
	}
	if h != info.HashKV {
		return fmt.Errorf("%w: %s restored hashes the key space at revision %d to %d, but the cluster hashed it to %d when the backup was taken: the file is damaged",
			ErrBackup, file, info.Revision, h, info.HashKV)
	}
	return nil
}

// hashKV hashes the key space of a backend file at rev, as etcdutl
// hashkv and the HashKV RPC do.
func hashKV(db string, rev int64) (uint32, error) {
	b := backend.NewDefaultBackend(zap.NewNop(), db)
	defer b.Close()
	// Leases do not count in the hash: a lessor that keeps none will do.
	st := mvcc.NewStore(zap.NewNop(), b, &etcdutl.SimpleLessor{}, mvcc.StoreConfig{})
	defer st.Close()
	h, _, err := mvcc.NewHashStorage(zap.NewNop(), st).HashByRev(rev)
	return h.Hash, err
}
