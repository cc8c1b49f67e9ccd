package migrate_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/etcd-appliance/appliance/datadir"
	"github.com/etcd-appliance/appliance/host"
	"github.com/etcd-appliance/appliance/host/hosttest"
	"github.com/etcd-appliance/appliance/internal/etcdtest"
	"github.com/etcd-appliance/appliance/layout"
	"github.com/etcd-appliance/appliance/workflow"
	"github.com/etcd-appliance/appliance/workflow/localcluster/localclustertest"
	"github.com/etcd-appliance/appliance/workflow/migrate"
)

func migrateIn(t *testing.T, root string) (migrate.Result, error) {
	t.Helper()
	return migrate.Run(context.Background(), host.LocalFS{Root: root, IgnoreOwner: true}, "myhost", migrate.Options{}, localclustertest.Log(t))
}

// refusedUnchanged runs migrate, wants err to match target, and nothing
// under root changed.
func refusedUnchanged(t *testing.T, root string, target error, words ...string) {
	t.Helper()
	snap := hosttest.Snapshot(t, root)
	_, err := migrateIn(t, root)
	if !errors.Is(err, target) {
		t.Fatalf("want %v, got %v", target, err)
	}
	for _, w := range append(words, "Nothing was changed") {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("the error lacks %q: %v", w, err)
		}
	}
	if d := hosttest.SameSnapshot(snap, hosttest.Snapshot(t, root)); d != "" {
		t.Errorf("refused, yet changed:\n%s", d)
	}
}

// The old etcd still runs (its backend locked): refused, not taken for
// data that needs nothing.
func TestMigrateRefusesARunningEtcd(t *testing.T) {
	root := t.TempDir()
	place(t, etcdtest.DebianPackage, root, migrate.DebianDataDir, 10)
	write(t, root, migrate.DebianDefaults, ports(t))
	b, err := bolt.Open(filepath.Join(root, migrate.DebianDataDir, "member/snap/db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	refusedUnchanged(t, root, migrate.ErrRunning, "systemctl stop etcd")
}

// A WAL kept apart (ETCD_WAL_DIR) would stay behind and be replayed onto
// the restored backend: refused with the way to put it back.
func TestMigrateRefusesAWALApart(t *testing.T) {
	root := t.TempDir()
	place(t, etcdtest.DebianPackage, root, migrate.DebianDataDir, 10)
	wal := "/srv/etcd-wal"
	os.MkdirAll(filepath.Join(root, "/srv"), 0o755)
	if err := os.Rename(filepath.Join(root, migrate.DebianDataDir, "member/wal"), filepath.Join(root, wal)); err != nil {
		t.Fatal(err)
	}
	write(t, root, migrate.DebianDefaults, ports(t)+"ETCD_WAL_DIR="+wal+"\n")
	refusedUnchanged(t, root, migrate.ErrLayout, "mv "+wal+" "+migrate.DebianDataDir+"/member/wal")
}

// A drop-in that names the data dir, and a data dir that is a link:
// refused with the fix.
func TestMigrateRefusesLayoutsItCannotSwap(t *testing.T) {
	root := t.TempDir()
	place(t, etcdtest.DebianPackage, root, migrate.DebianDataDir, 3)
	write(t, root, migrate.DebianDefaults, ports(t))
	write(t, root, migrate.DropInDir+"/dir.conf", "[Service]\nEnvironment=ETCD_DATA_DIR=/srv/etcd\n")
	refusedUnchanged(t, root, migrate.ErrLayout, migrate.DropInDir+"/dir.conf")

	root = t.TempDir()
	place(t, etcdtest.DebianPackage, root, "/srv/etcd-data", 3)
	os.MkdirAll(filepath.Join(root, "/var/lib/etcd"), 0o700)
	// Relative, so that it resolves inside the test's root.
	if err := os.Symlink("../../../srv/etcd-data", filepath.Join(root, migrate.DebianDataDir)); err != nil {
		t.Fatal(err)
	}
	write(t, root, migrate.DebianDefaults, ports(t))
	refusedUnchanged(t, root, migrate.ErrLayout, "symbolic link", "set ETCD_DATA_DIR to ../../../srv/etcd-data")
}

// An etcd killed before its backend committed (batch interval of an hour)
// holds acknowledged writes in its WAL only: refused, never restored
// without them.
func TestMigrateRefusesUnappliedWrites(t *testing.T) {
	dir := etcdtest.KilledDataDir(t, t.TempDir(), 30)
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "/var/lib/etcd"), 0o700)
	if err := os.Rename(dir, filepath.Join(root, migrate.DebianDataDir)); err != nil {
		t.Fatal(err)
	}
	write(t, root, migrate.DebianDefaults, ports(t))
	refusedUnchanged(t, root, migrate.ErrUnapplied, "30 committed writes", "stop it cleanly")
}

// A run cut off between keeping the old dir and moving the new one in
// leaves no data dir: the next run finishes the swap when the restore is
// the checked one, and stops otherwise; it never writes a configuration
// pointing at nothing.
func TestMigrateFinishesAnInterruptedSwap(t *testing.T) {
	root := t.TempDir()
	place(t, etcdtest.DebianPackage, root, migrate.DebianDataDir, 12)
	write(t, root, migrate.DebianDefaults, ports(t))
	// The run, as far as its restore and check: a dry run plans the rest.
	if _, err := migrateIn(t, root); err != nil {
		t.Fatal(err)
	}
	// Undo its last rename and its config, as if cut off before them.
	os.Rename(filepath.Join(root, migrate.DebianDataDir), filepath.Join(root, migrate.DebianDataDir+".migrating"))
	os.Remove(filepath.Join(root, layout.EtcdConf))
	res, err := migrateIn(t, root)
	if err != nil || !res.Restored || !strings.Contains(res.Kept, ".etcd-3.4-") {
		t.Fatalf("the rerun: %+v %v", res, err)
	}
	if n := serve(t, root); n != 12 {
		t.Errorf("serves %d of 12 keys", n)
	}

	// Not the checked restore (unstamped): stop, and say where the data is.
	root = t.TempDir()
	place(t, etcdtest.DebianPackage, root, migrate.DebianDataDir+".etcd-3.4-20260101-000000", 3)
	place(t, etcdtest.DebianPackage, root, migrate.DebianDataDir+".migrating", 3)
	write(t, root, migrate.DebianDefaults, ports(t))
	snap := hosttest.Snapshot(t, root)
	if _, err := migrateIn(t, root); !errors.Is(err, migrate.ErrInterrupted) || !strings.Contains(err.Error(), ".etcd-3.4-20260101-000000") {
		t.Errorf("an unchecked leftover: %v", err)
	}
	if d := hosttest.SameSnapshot(snap, hosttest.Snapshot(t, root)); d != "" {
		t.Errorf("changed:\n%s", d)
	}
}

// Paths as operators write them: a trailing slash (Debian), a path
// relative to EL's working directory; the migrated configuration names
// the absolute path, and the restored member keeps its peer URL as its
// data records it, not a default. A data dir outside /var/lib/etcd gets
// the drop-in that opens it to the unit's sandbox.
func TestMigratePaths(t *testing.T) {
	root := t.TempDir()
	place(t, etcdtest.DebianPackage, root, migrate.DebianDataDir, 4)
	write(t, root, migrate.DebianDefaults, "ETCD_DATA_DIR=/var/lib/etcd/default/\n"+ports(t))
	res, err := migrateIn(t, root)
	if err != nil {
		t.Fatal(err)
	}
	conf, _ := os.ReadFile(filepath.Join(root, layout.EtcdConf))
	if !strings.Contains(string(conf), "ETCD_DATA_DIR=/var/lib/etcd/default\n") {
		t.Errorf("trailing slash:\n%s", conf)
	}
	if n := serve(t, root); n != 4 {
		t.Errorf("serves %d of 4 keys", n)
	}

	root = t.TempDir()
	place(t, etcdtest.Release35, root, migrate.ELDataDir, 4)
	peer := etcdtest.FreePorts(t, 1)[0]
	write(t, root, layout.EtcdConf, "ETCD_DATA_DIR=\"default.etcd\"\nETCD_NAME=\"m0\"\n"+
		fmt.Sprintf("ETCD_INITIAL_ADVERTISE_PEER_URLS=\"http://127.0.0.1:%d\"\n", peer)+"export OLD_SHELL_HABIT=1\n")
	before, err := datadir.Inspect(migrate.ELDataDir, filepath.Join(root, migrate.ELDataDir))
	if err != nil || len(before.Members) != 1 {
		t.Fatalf("%+v %v", before, err)
	}
	res, err = migrateIn(t, root)
	if err != nil || res.Source.DataDir != migrate.ELDataDir || !res.Restored {
		t.Fatalf("relative data dir: %+v %v", res, err)
	}
	if !strings.Contains(strings.Join(res.Warnings, "\n"), "OLD_SHELL_HABIT") {
		t.Errorf("the skipped line is not reported: %q", res.Warnings)
	}
	after, _ := datadir.Inspect(migrate.ELDataDir, filepath.Join(root, migrate.ELDataDir))
	if len(after.Members) != 1 || fmt.Sprint(after.Members[0].PeerURLs) != fmt.Sprint(before.Members[0].PeerURLs) {
		t.Errorf("peer URLs: %v, the data had %v", after.Members, before.Members)
	}

	root = t.TempDir()
	place(t, etcdtest.DebianPackage, root, "/srv/etcd", 2)
	write(t, root, migrate.DebianDefaults, "ETCD_DATA_DIR=/srv/etcd\n"+ports(t))
	res, err = migrateIn(t, root)
	if err != nil || !strings.Contains(res.StartCommand, "daemon-reload") {
		t.Fatalf("%+v %v", res, err)
	}
	dropIn, _ := os.ReadFile(filepath.Join(root, layout.DataDirDropIn))
	if !strings.Contains(string(dropIn), "ReadWritePaths=/srv/etcd\n") {
		t.Errorf("drop-in:\n%s", dropIn)
	}
}

// Secrets in the settings never reach the diff a dry run prints.
func TestMigrateDiffHidesSecrets(t *testing.T) {
	root := t.TempDir()
	write(t, root, layout.EtcdConf, "ETCD_NAME=\"m0\"\nETCD_DISCOVERY_PASSWORD=\"s3cret-pw\"\nETCD_DISCOVERY_USER=\"root:s3cret-up\"\n"+
		"ETCD_DISCOVERY_TOKEN=\"s3cret-tok\"\nETCD_DISCOVERY_ENDPOINTS=\"http://127.0.0.1:2379\"\n")
	res, err := migrate.Run(context.Background(), host.LocalFS{Root: root, IgnoreOwner: true}, "h",
		migrate.Options{Plan: workflow.NewPlan(true, localclustertest.Log(t))}, localclustertest.Log(t))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(res.Diff, "s3cret") || !strings.Contains(res.Diff, "ETCD_DISCOVERY_PASSWORD=(hidden)") {
		t.Errorf("diff:\n%s", res.Diff)
	}
}
