package datadir

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/server/v3/etcdserver/api/snap"
	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
)

// Unapplied are writes the WAL holds as committed that the backend has
// not applied: an etcd stopped before applying them (killed, a power cut,
// or a stop with writes in flight) replays them at its next start. Who
// reads the backend alone (a restore of it as a snapshot) loses them.
type Unapplied struct {
	// Writes counts the committed key-space, lease and auth writes after
	// the backend's consistent index.
	Writes int
	// Applied is the backend's consistent index, Committed the WAL's
	// commit index.
	Applied, Committed uint64
}

// ReadUnapplied reads the WAL of the data dir at path (walDir, when the
// WAL lives apart; "" for path/member/wal) and the backend's consistent
// index, both read-only, and counts the committed writes the backend
// misses. Entries the old etcd could not have acknowledged (past the
// commit index) do not count; nor do requests that do not touch the key
// space (etcd 3.4's v2 membership requests, cluster versions).
func ReadUnapplied(path, walDir string) (Unapplied, error) {
	var u Unapplied
	if walDir == "" {
		walDir = filepath.Join(path, "member", "wal")
	}
	ci, err := consistentIndex(filepath.Join(path, "member", "snap", "db"))
	if err != nil {
		return u, err
	}
	u.Applied = ci
	lg := zap.NewNop()
	walSnaps, err := wal.ValidSnapshotEntries(lg, walDir)
	if err != nil {
		return u, fmt.Errorf("reading the WAL in %s: %w", walDir, err)
	}
	from := &walpb.Snapshot{}
	s, err := snap.New(lg, filepath.Join(path, "member", "snap")).LoadNewestAvailable(walSnaps)
	switch {
	case err == nil:
		from = &walpb.Snapshot{Index: s.Metadata.Index, Term: s.Metadata.Term, ConfState: s.Metadata.ConfState}
	case !errors.Is(err, snap.ErrNoSnapshot):
		return u, fmt.Errorf("reading the snapshots in %s: %w", filepath.Join(path, "member", "snap"), err)
	}
	w, err := wal.OpenForRead(lg, walDir, from)
	if err != nil {
		return u, fmt.Errorf("opening the WAL in %s: %w", walDir, err)
	}
	defer w.Close()
	// Read-only, a torn last record (a write cut by a crash) ends the log.
	_, state, ents, err := w.ReadAll()
	if err != nil {
		return u, fmt.Errorf("reading the WAL in %s: %w", walDir, err)
	}
	u.Committed = state.GetCommit()
	for _, e := range ents {
		if e.GetIndex() <= ci || e.GetIndex() > u.Committed || len(e.GetData()) == 0 {
			continue
		}
		var r pb.InternalRaftRequest
		// etcd 3.4 writes its v2 requests as another message, which does
		// not parse as this one: etcd 3.4 tells them apart the same way.
		if proto.Unmarshal(e.GetData(), &r) != nil {
			continue
		}
		if writes(&r) {
			u.Writes++
		}
	}
	return u, nil
}

func writes(r *pb.InternalRaftRequest) bool {
	return r.GetPut() != nil || r.GetDeleteRange() != nil || r.GetTxn() != nil || r.GetCompaction() != nil ||
		r.GetLeaseGrant() != nil || r.GetLeaseRevoke() != nil || r.GetLeaseCheckpoint() != nil ||
		r.GetAuthEnable() != nil || r.GetAuthDisable() != nil || r.GetAuthUserAdd() != nil || r.GetAuthUserDelete() != nil ||
		r.GetAuthUserChangePassword() != nil || r.GetAuthUserGrantRole() != nil || r.GetAuthUserRevokeRole() != nil ||
		r.GetAuthRoleAdd() != nil || r.GetAuthRoleDelete() != nil || r.GetAuthRoleGrantPermission() != nil || r.GetAuthRoleRevokePermission() != nil
}

// consistentIndex is the index of the last entry the backend applied.
func consistentIndex(db string) (uint64, error) {
	b, err := bolt.Open(db, 0o400, &bolt.Options{ReadOnly: true, Timeout: 300 * time.Millisecond})
	if err != nil {
		return 0, fmt.Errorf("reading %s: %w", db, err)
	}
	defer b.Close()
	var ci uint64
	err = b.View(func(tx *bolt.Tx) error {
		if m := tx.Bucket([]byte("meta")); m != nil {
			if v := m.Get([]byte("consistent_index")); len(v) == 8 {
				ci = binary.BigEndian.Uint64(v)
			}
		}
		return nil
	})
	return ci, err
}
