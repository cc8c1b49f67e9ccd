// Package datadir reads an etcd data dir without changing it: whether etcd
// has run there, whether a running etcd holds it, and which cluster members
// its backend records. It opens the backend read-only and imports nothing
// of the installer, so that the server can use it too.
package datadir

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

// Member is a cluster member as a backend records it. The field names are
// the JSON that `etcd-installer inspect-data-dir` prints on a remote host:
// keep them.
type Member struct {
	ID         uint64
	Name       string // empty for a member added but never started
	PeerURLs   []string
	ClientURLs []string
	Learner    bool
}

// Info is what a member's data dir holds.
type Info struct {
	Dir string `json:"dir"`
	// Initialized: the dir has a member/ subdirectory (etcd has run there).
	Initialized bool `json:"initialized"`
	// Locked: a running etcd holds the database; Members is unknown.
	Locked bool `json:"locked"`
	// Members are the cluster members recorded in the backend.
	Members []Member `json:"members"`
	// StorageVersion is the storage schema etcd 3.6 and later record in
	// the backend ("3.6.0"), "" when absent.
	StorageVersion string `json:"storageVersion,omitempty"`
	// ClusterVersion is the cluster version the backend records once the
	// cluster has decided it ("3.4.0"; every release since 3.4 keeps it),
	// "" when absent.
	ClusterVersion string `json:"clusterVersion,omitempty"`
	// V2 marks data of etcd 2.x: v2 snapshots and a WAL, no v3 backend.
	V2 bool `json:"v2,omitempty"`
	// Size is the backend's size in bytes.
	Size int64 `json:"size,omitempty"`
}

// Release is the release of etcd that last wrote the backend, "3.5", as
// far as the backend tells: its storage version when it has one, else its
// cluster version, else "". etcd writes the storage version only seconds
// after the cluster version is decided, and neither before, so a member of
// 3.7 stopped early has neither (and the fields 3.5 added, term and conf
// state, which is why they prove nothing): unknown is not old.
func (i Info) Release() string {
	for _, v := range []string{i.StorageVersion, i.ClusterVersion} {
		var ma, mi int
		if _, err := fmt.Sscanf(v, "%d.%d", &ma, &mi); err == nil {
			return fmt.Sprintf("%d.%d", ma, mi)
		}
	}
	return ""
}

// OlderThan reports whether the backend was last written by a release
// older than major.minor (3.4 and 3.5 data are older than 3.6); unknown
// is not older.
func (i Info) OlderThan(major, minor int) bool {
	var ma, mi int
	if _, err := fmt.Sscanf(i.Release(), "%d.%d", &ma, &mi); err != nil {
		return false
	}
	return ma < major || ma == major && mi < minor
}

// WrittenBy names the release that wrote the data, for messages.
func (i Info) WrittenBy() string {
	switch {
	case i.V2:
		return "etcd 2.x (v2 data only)"
	case i.Release() != "":
		return "etcd " + i.Release()
	}
	return "an etcd that had not yet recorded its version"
}

// ErrForeign means a data dir belongs to another cluster or member.
var ErrForeign = errors.New("data dir belongs to another cluster")

// Inspect reads the data dir at path on this machine without changing it:
// the members bucket of member/snap/db, opened read-only with a short lock
// timeout so that a running etcd is detected rather than waited for. The
// result names the dir as dir (the path on the host, which differs from
// path when a host's tree lives under another root).
func Inspect(dir, path string) (Info, error) {
	info := Info{Dir: dir}
	if _, err := os.Stat(filepath.Join(path, "member")); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			return info, err
		}
		// etcd 2.0 and 2.1 kept wal/ and snap/ at the top.
		if _, werr := os.Stat(filepath.Join(path, "wal")); werr == nil {
			info.Initialized, info.V2 = true, true
		}
		return info, nil
	}
	info.Initialized = true
	db := filepath.Join(path, "member", "snap", "db")
	fi, err := os.Stat(db)
	if errors.Is(err, fs.ErrNotExist) {
		// v2 snapshots without a backend: etcd 2.x. A WAL alone: etcd died
		// during its first start.
		snaps, _ := filepath.Glob(filepath.Join(path, "member", "snap", "*.snap"))
		info.V2 = len(snaps) > 0
		return info, nil
	}
	if err != nil {
		return info, err
	}
	info.Size = fi.Size()
	b, err := bolt.Open(db, 0o400, &bolt.Options{ReadOnly: true, Timeout: 300 * time.Millisecond})
	if errors.Is(err, berrors.ErrTimeout) {
		info.Locked = true
		return info, nil
	}
	if err != nil {
		return info, fmt.Errorf("reading %s: %w", db, err)
	}
	defer b.Close()
	err = b.View(func(tx *bolt.Tx) error {
		if meta := tx.Bucket([]byte("meta")); meta != nil {
			info.StorageVersion = string(meta.Get([]byte("storageVersion")))
		}
		if c := tx.Bucket([]byte("cluster")); c != nil {
			info.ClusterVersion = string(c.Get([]byte("clusterVersion")))
		}
		bk := tx.Bucket([]byte("members"))
		if bk == nil {
			return nil
		}
		return bk.ForEach(func(_, v []byte) error {
			var m struct {
				ID         uint64   `json:"id"`
				Name       string   `json:"name"`
				PeerURLs   []string `json:"peerURLs"`
				ClientURLs []string `json:"clientURLs"`
				IsLearner  bool     `json:"isLearner"`
			}
			if err := json.Unmarshal(v, &m); err != nil {
				return err
			}
			info.Members = append(info.Members, Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, Learner: m.IsLearner})
			return nil
		})
	})
	sort.Slice(info.Members, func(i, j int) bool { return info.Members[i].Name < info.Members[j].Name })
	return info, err
}

// Check reports whether an initialized data dir belongs to the member named
// name with peer URL peerURL. It never changes the dir.
func Check(info Info, name, peerURL string) error {
	if !info.Initialized || info.Locked || len(info.Members) == 0 {
		return nil
	}
	var names []string
	for _, m := range info.Members {
		label := m.Name
		if label == "" {
			label = fmt.Sprintf("%x (not started)", m.ID)
		}
		names = append(names, label+"="+strings.Join(m.PeerURLs, ","))
		if m.Name == name {
			for _, u := range m.PeerURLs {
				if u == peerURL {
					return nil
				}
			}
			return fmt.Errorf("%w: %s was written by member %s with peer URL %s, but the inventory gives %s; "+
				"fix: change the member's peer URL in the running cluster with `etcdctl member update`, or move the dir aside "+
				"(mv %s %s.old-%s) and re-add the member with `etcd-installer member add`",
				ErrForeign, info.Dir, name, strings.Join(m.PeerURLs, ","), peerURL, info.Dir, info.Dir, time.Now().Format("20060102"))
		}
	}
	return fmt.Errorf("%w: %s holds a cluster of %s, without member %s: "+
		"etcd would start that cluster, not the inventory's (a single node started before the inventory was written?); "+
		"fix: move the dir aside, it is kept: mv %s %s.old-%s",
		ErrForeign, info.Dir, strings.Join(names, " "), name, info.Dir, info.Dir, time.Now().Format("20060102"))
}

// KeySpace sums up a backend's key space, read-only.
type KeySpace struct {
	// Revision is the latest revision a key was written at.
	Revision int64
	// Entries are the revisions of keys kept (compaction drops old ones).
	Entries int
	// Live are the keys that exist at Revision (not deleted).
	Live int
	// Digest is a SHA-256 over every entry, key and value, in order: two
	// backends with the same key space have the same digest.
	Digest string
}

// ReadKeySpace reads the key space of the backend at path (a data dir's
// member/snap/db) without changing it.
func ReadKeySpace(path string) (KeySpace, error) {
	var ks KeySpace
	b, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true, Timeout: 300 * time.Millisecond})
	if err != nil {
		return ks, fmt.Errorf("reading %s: %w", path, err)
	}
	defer b.Close()
	h := sha256.New()
	live := map[string]bool{}
	err = b.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte("key"))
		if bk == nil {
			return nil
		}
		return bk.ForEach(func(k, v []byte) error {
			ks.Entries++
			h.Write(k)
			h.Write(v)
			// A revision key is 8 bytes of main revision, '_', 8 bytes of
			// sub revision, and 't' when the entry deletes the key.
			if len(k) >= 8 {
				if rev := int64(binary.BigEndian.Uint64(k[:8])); rev > ks.Revision {
					ks.Revision = rev
				}
			}
			var kv mvccpb.KeyValue
			if err := proto.Unmarshal(v, &kv); err != nil {
				return fmt.Errorf("revision %x: %w", k, err)
			}
			live[string(kv.Key)] = len(k) != 18 || k[17] != 't'
			return nil
		})
	})
	for _, alive := range live {
		if alive {
			ks.Live++
		}
	}
	ks.Digest = hex.EncodeToString(h.Sum(nil))
	return ks, err
}
