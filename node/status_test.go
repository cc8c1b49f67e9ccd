package node

import (
	"os"
	"path/filepath"
	"testing"

	"go.etcd.io/etcd/server/v3/embed"
)

// What a start is decides what its STATUS says it waits for: only a new
// cluster's member waits for others to be started (round 1 said so
// during rolling restarts and member add too).
func TestKindOf(t *testing.T) {
	dir := t.TempDir()
	ec := embed.NewConfig()
	ec.Dir = dir
	if k := kindOf(ec); k != startNew {
		t.Errorf("empty data dir, state new: %v", k)
	}
	ec.ClusterState = embed.ClusterStateFlagExisting
	if k := kindOf(ec); k != startJoin {
		t.Errorf("empty data dir, state existing (member add): %v", k)
	}
	wal := filepath.Join(dir, "member", "wal")
	os.MkdirAll(wal, 0o700)
	os.WriteFile(filepath.Join(wal, "0000000000000000-0000000000000000.wal"), nil, 0o600)
	for _, state := range []string{embed.ClusterStateFlagNew, embed.ClusterStateFlagExisting} {
		ec.ClusterState = state
		if k := kindOf(ec); k != startRestart {
			t.Errorf("data dir with a WAL, state %s: %v", state, k)
		}
	}
	ec.WalDir = t.TempDir()
	if k := kindOf(ec); k != startJoin {
		t.Errorf("a separate, empty WAL dir: %v", k)
	}
}
