// Package datadir reads an etcd data dir without changing it: whether etcd
// has run there, whether a running etcd holds it, and which cluster members
// its backend records. It opens the backend read-only and imports nothing
// of the installer, so that the server can use it too.
package datadir

import (
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
		if errors.Is(err, fs.ErrNotExist) {
			return info, nil
		}
		return info, err
	}
	info.Initialized = true
	db := filepath.Join(path, "member", "snap", "db")
	b, err := bolt.Open(db, 0o400, &bolt.Options{ReadOnly: true, Timeout: 300 * time.Millisecond})
	if errors.Is(err, berrors.ErrTimeout) {
		info.Locked = true
		return info, nil
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			// A WAL without a backend: etcd died during its first start.
			return info, nil
		}
		return info, fmt.Errorf("reading %s: %w", db, err)
	}
	defer b.Close()
	err = b.View(func(tx *bolt.Tx) error {
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
