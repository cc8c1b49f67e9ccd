package provision

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// DataDirInfo is what a member's data dir holds.
type DataDirInfo struct {
	Dir string `json:"dir"`
	// Initialized: the dir has a member/ subdirectory (etcd has run there).
	Initialized bool `json:"initialized"`
	// Locked: a running etcd holds the database; Members is unknown.
	Locked bool `json:"locked"`
	// Members are the cluster members recorded in the backend.
	Members []Member `json:"members"`
}

// ErrForeignDataDir means a data dir belongs to another cluster or member.
var ErrForeignDataDir = errors.New("data dir belongs to another cluster")

// InspectDataDir reads a data dir without changing it: the members bucket
// of member/snap/db, opened read-only with a short lock timeout so that a
// running etcd is detected rather than waited for.
func InspectDataDir(f FS, dir string) (DataDirInfo, error) {
	// A remote host's backend can only be opened on that host.
	if r, ok := f.(interface {
		InspectDataDir(string) (DataDirInfo, error)
	}); ok {
		return r.InspectDataDir(dir)
	}
	info := DataDirInfo{Dir: dir}
	if _, err := f.Stat(path.Join(dir, "member")); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return info, nil
		}
		return info, err
	}
	info.Initialized = true
	db := f.Path(path.Join(dir, "member", "snap", "db"))
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

// CheckDataDir reports whether an initialized data dir belongs to the
// member named name with peer URL peerURL. It never changes the dir.
func CheckDataDir(info DataDirInfo, name, peerURL string) error {
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
				ErrForeignDataDir, info.Dir, name, strings.Join(m.PeerURLs, ","), peerURL, info.Dir, info.Dir, time.Now().Format("20060102"))
		}
	}
	return fmt.Errorf("%w: %s holds a cluster of %s, without member %s: "+
		"etcd would start that cluster, not the inventory's (a single node started before the inventory was written?); "+
		"fix: move the dir aside, it is kept: mv %s %s.old-%s",
		ErrForeignDataDir, info.Dir, strings.Join(names, " "), name, info.Dir, info.Dir, time.Now().Format("20060102"))
}
