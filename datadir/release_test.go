package datadir_test

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/etcd-appliance/appliance/datadir"
	"github.com/etcd-appliance/appliance/internal/etcdtest"
)

// Which release last wrote a data dir, read without changing it, for
// every state a host's data dir can be in: written by each release, and
// by this one stopped before its cluster decided a version (which carries
// the fields 3.5 added and nothing else, so it must not read as 3.5).
func TestReleaseOfEachState(t *testing.T) {
	check := func(t *testing.T, dir, want string, older bool) {
		t.Helper()
		info, err := datadir.Inspect(dir, dir)
		if err != nil {
			t.Fatal(err)
		}
		if info.Release() != want || info.OlderThan(3, 6) != older {
			t.Errorf("release %q (storage %q, cluster %q), older than 3.6: %v; want %q, %v",
				info.Release(), info.StorageVersion, info.ClusterVersion, info.OlderThan(3, 6), want, older)
		}
	}
	for _, c := range []struct {
		release, want string
		older         bool
	}{
		{etcdtest.DebianPackage, "3.4", true},
		{etcdtest.Release35, "3.5", true},
		{etcdtest.Release36, "3.6", false},
	} {
		t.Run(c.release, func(t *testing.T) {
			check(t, etcdtest.ReleaseDataDir(t, c.release, t.TempDir(), 3), c.want, c.older)
		})
	}

	t.Run("this release, decided", func(t *testing.T) {
		c := etcdtest.NewCluster(t, 1)
		m := c.Members[0]
		m.Start()
		m.WaitReady(time.Minute)
		if !etcdtest.Eventually(30*time.Second, 50*time.Millisecond, func() bool { return etcdtest.ClusterVersion(m.ClientURL) != "" }) {
			t.Fatal("no cluster version in 30 s")
		}
		m.Signal(syscall.SIGTERM)
		m.Wait(30 * time.Second)
		check(t, m.DataDir, "3.7", false)
	})

	// One member of three started alone: bootstrapped (term and conf
	// state written), never a quorum, so never a cluster version.
	t.Run("this release, alone of three", func(t *testing.T) {
		c := etcdtest.NewCluster(t, 3)
		m := c.Members[0]
		m.Start()
		if !etcdtest.Eventually(30*time.Second, 50*time.Millisecond, func() bool {
			return strings.Count(m.Log(), `"msg":"added member"`) >= 3
		}) {
			t.Fatalf("the bootstrap's members were not applied in 30 s:\n%s", m.Log())
		}
		m.Signal(syscall.SIGTERM)
		m.Wait(30 * time.Second)
		info, _ := datadir.Inspect(m.DataDir, m.DataDir)
		if info.ClusterVersion != "" {
			t.Fatalf("a cluster version without a quorum: %+v", info)
		}
		check(t, m.DataDir, "", false)
	})
}

// A clean stop leaves nothing unapplied; an etcd killed before its backend
// committed leaves the acknowledged writes in the WAL only, and they are
// counted (etcd 3.4 with a backend batch interval of an hour, so that the
// backend cannot have committed them).
func TestReadUnapplied(t *testing.T) {
	for _, release := range []string{etcdtest.DebianPackage, etcdtest.Release35, etcdtest.Release36} {
		dir := etcdtest.ReleaseDataDir(t, release, t.TempDir(), 5)
		u, err := datadir.ReadUnapplied(dir, "")
		if err != nil || u.Writes != 0 {
			t.Errorf("%s, stopped cleanly: %+v %v", release, u, err)
		}
	}
	dir := etcdtest.KilledDataDir(t, t.TempDir(), 50)
	u, err := datadir.ReadUnapplied(dir, "")
	if err != nil || u.Writes != 50 || u.Committed <= u.Applied {
		t.Errorf("killed after 50 acknowledged puts: %+v %v", u, err)
	}
}
