package migrate_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-appliance/appliance/datadir/datadirtest"
	"github.com/etcd-appliance/appliance/host"
	"github.com/etcd-appliance/appliance/host/hosttest"
	"github.com/etcd-appliance/appliance/internal/envfile"
	"github.com/etcd-appliance/appliance/internal/etcdtest"
	"github.com/etcd-appliance/appliance/layout"
	"github.com/etcd-appliance/appliance/workflow"
	"github.com/etcd-appliance/appliance/workflow/localcluster/localclustertest"
	"github.com/etcd-appliance/appliance/workflow/migrate"
)

// place puts a data dir of an older release at path under root.
func place(t *testing.T, release, root, path string, keys int) {
	t.Helper()
	dir := etcdtest.ReleaseDataDir(t, release, t.TempDir(), keys)
	dst := filepath.Join(root, path)
	os.MkdirAll(filepath.Dir(dst), 0o755)
	if err := os.Rename(dir, dst); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, root, p, content string) {
	t.Helper()
	full := filepath.Join(root, p)
	os.MkdirAll(filepath.Dir(full), 0o755)
	if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func hashes(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(dir, p)
			out[rel] = sha256.Sum256(b)
		}
		return nil
	})
	return out
}

// serve starts this repository's etcd with the migrated /etc/etcd/etcd.conf
// (its data dir under root) and returns how many k* keys it serves.
func serve(t *testing.T, root string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, layout.EtcdConf))
	if err != nil {
		t.Fatal(err)
	}
	entries, err := envfile.Parse("etcd.conf", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var env []string
	client := ""
	for _, e := range entries {
		v := e.Value
		switch e.Key {
		case "ETCD_DATA_DIR":
			v = filepath.Join(root, v)
		case "ETCD_ADVERTISE_CLIENT_URLS":
			client = v
		}
		env = append(env, e.Key+"="+v)
	}
	m := etcdtest.NewMember(t, "migrated", nil, env)
	m.ClientURL = client
	m.Start()
	m.WaitReady(time.Minute)
	cli := etcdtest.Client(t, []string{client})
	r, err := cli.Get(context.Background(), "k", clientPrefix())
	if err != nil {
		t.Fatal(err)
	}
	return len(r.Kvs)
}

// ports are free client and peer ports, as the old etcd's settings.
func ports(t *testing.T) string {
	p := etcdtest.FreePorts(t, 2)
	return fmt.Sprintf("ETCD_LISTEN_CLIENT_URLS=http://127.0.0.1:%d\nETCD_ADVERTISE_CLIENT_URLS=http://127.0.0.1:%d\n"+
		"ETCD_LISTEN_PEER_URLS=http://127.0.0.1:%d\nETCD_INITIAL_ADVERTISE_PEER_URLS=http://127.0.0.1:%d\n", p[0], p[0], p[1], p[1])
}

// Debian's etcd-server 3.4.23 left /etc/default/etcd and its data: a dry
// run changes nothing; migrate carries the settings over (a legacy one
// translated), restores every key into /var/lib/etcd/default for etcd 3.7,
// and keeps the old dir byte for byte under a dated name.
func TestMigrateDebian34(t *testing.T) {
	root := t.TempDir()
	place(t, etcdtest.DebianPackage, root, migrate.DebianDataDir, 40)
	write(t, root, migrate.DebianDefaults, "## Debian's defaults file, as an operator edited it\n"+ports(t)+"ETCD_DEBUG=\"true\"\n#ETCD_NAME=ignored\n")
	before := hashes(t, filepath.Join(root, migrate.DebianDataDir))
	f := host.LocalFS{Root: root, IgnoreOwner: true}

	snap := hosttest.Snapshot(t, root)
	dry := workflow.NewPlan(true, localclustertest.Log(t))
	res, err := migrate.Run(context.Background(), f, "myhost", migrate.Options{Plan: dry}, localclustertest.Log(t))
	if err != nil {
		t.Fatal(err)
	}
	if d := hosttest.SameSnapshot(snap, hosttest.Snapshot(t, root)); d != "" {
		t.Fatalf("the dry run changed files:\n%s", d)
	}
	if res.Source.Style != "debian" || res.Source.Name != "m0" || !strings.Contains(res.Diff, "+ETCD_LOG_LEVEL=debug") {
		t.Errorf("dry run: %+v\n%s", res.Source, res.Diff)
	}

	res, err = migrate.Run(context.Background(), f, "myhost", migrate.Options{}, localclustertest.Log(t))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Restored || res.Keys != 40 || res.Kept == "" {
		t.Fatalf("result: %+v", res)
	}
	if after := hashes(t, filepath.Join(root, res.Kept)); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Error("the kept old data dir is not byte for byte the old one")
	}
	// Run again: nothing to do, nothing changed.
	snap = hosttest.Snapshot(t, root)
	if _, err := migrate.Run(context.Background(), f, "myhost", migrate.Options{}, localclustertest.Log(t)); !errors.Is(err, migrate.ErrNothing) {
		t.Errorf("a second run: %v", err)
	}
	if d := hosttest.SameSnapshot(snap, hosttest.Snapshot(t, root)); d != "" {
		t.Errorf("a second run changed files:\n%s", d)
	}
	if n := serve(t, root); n != 40 {
		t.Errorf("etcd 3.7 serves %d of the 40 keys", n)
	}
}

// EL's etcd.conf, with its quoted values (as the seed guides write it),
// and data of etcd 3.5: carried over and restored; the distribution's
// file is kept.
func TestMigrateEL35(t *testing.T) {
	root := t.TempDir()
	place(t, etcdtest.Release35, root, migrate.ELDataDir, 25)
	conf := "#[Member]\nETCD_DATA_DIR=\"/var/lib/etcd/default.etcd\"\nETCD_NAME=\"m0\"\n#[Clustering]\n"
	for _, l := range strings.Split(strings.TrimSpace(ports(t)), "\n") {
		k, v, _ := strings.Cut(l, "=")
		conf += k + "=\"" + v + "\"\n"
	}
	write(t, root, layout.EtcdConf, conf)
	f := host.LocalFS{Root: root, IgnoreOwner: true}
	res, err := migrate.Run(context.Background(), f, "myhost", migrate.Options{}, localclustertest.Log(t))
	if err != nil {
		t.Fatal(err)
	}
	if res.Source.Style != "el" || !res.Restored || res.Keys != 25 {
		t.Fatalf("result: %+v", res)
	}
	if kept, _ := filepath.Glob(filepath.Join(root, layout.EtcdConf+".distribution-*")); len(kept) != 1 {
		t.Error("the distribution's etcd.conf was not kept")
	}
	if n := serve(t, root); n != 25 {
		t.Errorf("etcd 3.7 serves %d of the 25 keys", n)
	}
}

// Data of 3.6 needs no migration (3.7 opens it): only the settings move.
func TestMigrate36SettingsOnly(t *testing.T) {
	root := t.TempDir()
	place(t, etcdtest.Release36, root, migrate.DebianDataDir, 5)
	write(t, root, migrate.DebianDefaults, ports(t))
	before := hashes(t, filepath.Join(root, migrate.DebianDataDir))
	res, err := migrate.Run(context.Background(), host.LocalFS{Root: root, IgnoreOwner: true}, "myhost", migrate.Options{}, localclustertest.Log(t))
	if err != nil || res.Restored || !res.UpToDate {
		t.Fatalf("%+v %v", res, err)
	}
	if after := hashes(t, filepath.Join(root, migrate.DebianDataDir)); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Error("3.6 data was changed")
	}
	if n := serve(t, root); n != 5 {
		t.Errorf("etcd 3.7 serves %d of the 5 keys", n)
	}
}

// etcd 2.x data and a member of a larger cluster are refused with what to
// do instead, before anything changes.
func TestMigrateRefuses(t *testing.T) {
	root := t.TempDir()
	write(t, root, filepath.Join(migrate.DebianDataDir, "member/snap/0000000000000002-0000000000002711.snap"), "v2")
	write(t, root, filepath.Join(migrate.DebianDataDir, "member/wal/0000000000000000-0000000000000000.wal"), "wal")
	snap := hosttest.Snapshot(t, root)
	_, err := migrate.Run(context.Background(), host.LocalFS{Root: root, IgnoreOwner: true}, "h", migrate.Options{}, localclustertest.Log(t))
	if !errors.Is(err, migrate.ErrV2) || !strings.Contains(err.Error(), "etcdctl migrate") {
		t.Errorf("v2 data: %v", err)
	}
	if d := hosttest.SameSnapshot(snap, hosttest.Snapshot(t, root)); d != "" {
		t.Errorf("refused, yet changed:\n%s", d)
	}
	root = t.TempDir()
	datadirtest.WriteMembersDB(t, root, migrate.DebianDataDir, map[string]string{"a": "http://10.0.0.1:2380", "b": "http://10.0.0.2:2380"})
	_, err = migrate.Run(context.Background(), host.LocalFS{Root: root, IgnoreOwner: true}, "h", migrate.Options{}, localclustertest.Log(t))
	if !errors.Is(err, migrate.ErrCluster) || !strings.Contains(err.Error(), "2-member cluster") {
		t.Errorf("a cluster member: %v", err)
	}
	if _, err := migrate.Run(context.Background(), host.LocalFS{Root: t.TempDir(), IgnoreOwner: true}, "h", migrate.Options{}, localclustertest.Log(t)); !errors.Is(err, migrate.ErrNothing) {
		t.Errorf("nothing there: %v", err)
	}
}

func clientPrefix() clientv3.OpOption { return clientv3.WithPrefix() }

// What is not a distribution's etcd is left alone, so that the package's
// install script stays quiet on upgrades: the package's own single member
// on Debian's data dir, a host an inventory manages, a host migrated
// already. Data of an old release still counts under the package's
// default configuration.
func TestFindLeavesOwnHostsAlone(t *testing.T) {
	pkgConf, err := os.ReadFile("../../packaging/files/etcd.conf")
	if err != nil {
		t.Fatal(err)
	}
	one := map[string]string{"default": "http://127.0.0.1:2380"}
	for _, c := range []struct {
		name  string
		setup func(root string)
		found string // Source.Style, "" for ErrNothing
	}{
		{"the package's member on Debian's data dir", func(root string) {
			write(t, root, layout.EtcdConf, string(pkgConf))
			datadirtest.WriteVersionedDB(t, root, migrate.DebianDataDir, one, "3.7.0")
		}, ""},
		{"the package's member before its version was decided", func(root string) {
			write(t, root, layout.EtcdConf, string(pkgConf))
			datadirtest.WriteVersionedDB(t, root, migrate.DebianDataDir, one, "")
		}, ""},
		{"Debian's 3.4 data under the package's configuration", func(root string) {
			write(t, root, layout.EtcdConf, string(pkgConf))
			datadirtest.WriteVersionedDB(t, root, migrate.DebianDataDir, map[string]string{"host1": "http://localhost:2380"}, "3.4.0")
		}, "debian"},
		{"EL's 3.5 data under the package's configuration", func(root string) {
			write(t, root, layout.EtcdConf, string(pkgConf))
			datadirtest.WriteVersionedDB(t, root, migrate.ELDataDir, one, "3.5.0")
		}, "el"},
		{"an inventory manages the host", func(root string) {
			write(t, root, layout.EtcdConf, "# /etc/etcd/etcd.conf: member etcd0 of etcd cluster prod\nETCD_NAME=etcd0\n")
			write(t, root, migrate.DebianDefaults, "ETCD_NAME=x\n")
		}, ""},
		{"migrated already", func(root string) {
			write(t, root, layout.EtcdConf, "# /etc/etcd/etcd.conf: the settings of etcd.service, as ETCD_* variables.\n"+
				"# Migrated by `etcd-installer migrate` on 2026-11-30 from debian etcd (/etc/default/etcd).\nETCD_NAME=x\n")
			write(t, root, migrate.DebianDefaults, "ETCD_NAME=x\n")
			datadirtest.WriteVersionedDB(t, root, migrate.DebianDataDir+".etcd-3.4-20261130-120000", one, "3.4.0")
		}, ""},
		{"Debian's defaults beside the package's configuration", func(root string) {
			write(t, root, layout.EtcdConf, string(pkgConf))
			write(t, root, migrate.DebianDefaults, "# all commented, as shipped\n")
		}, "debian"},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			c.setup(root)
			src, err := migrate.Find(host.LocalFS{Root: root, IgnoreOwner: true}, "host1")
			if c.found == "" {
				if !errors.Is(err, migrate.ErrNothing) {
					t.Errorf("found %+v, %v", src, err)
				}
				return
			}
			if err != nil || src.Style != c.found {
				t.Errorf("found %q (%v), want %q", src.Style, err, c.found)
			}
		})
	}
}

// Drop-ins written for the distribution's etcd.service apply to this
// package's unit too: one that runs another binary (ExecStart=) is moved
// aside, with the whole-unit copy in /etc; the others stay, with a
// warning. A dry run moves nothing.
func TestMigrateUnitFiles(t *testing.T) {
	root := t.TempDir()
	write(t, root, migrate.DebianDefaults, ports(t))
	place(t, etcdtest.Release36, root, migrate.DebianDataDir, 1)
	write(t, root, migrate.DropInDir+"/upstream.conf", "[Service]\nExecStart=\nExecStart=/usr/local/bin/etcd $DAEMON_ARGS\n")
	write(t, root, migrate.DropInDir+"/limits.conf", "[Service]\nLimitNOFILE=1000000\n# ExecStart=/not/this\n")
	write(t, root, migrate.UnitOverride, "[Service]\nExecStart=/usr/bin/etcd\n")
	f := host.LocalFS{Root: root, IgnoreOwner: true}
	snap := hosttest.Snapshot(t, root)
	if _, err := migrate.Run(context.Background(), f, "h", migrate.Options{Plan: workflow.NewPlan(true, localclustertest.Log(t))}, localclustertest.Log(t)); err != nil {
		t.Fatal(err)
	}
	if d := hosttest.SameSnapshot(snap, hosttest.Snapshot(t, root)); d != "" {
		t.Fatalf("the dry run changed files:\n%s", d)
	}
	res, err := migrate.Run(context.Background(), f, "h", migrate.Options{}, localclustertest.Log(t))
	if err != nil {
		t.Fatal(err)
	}
	if res.UnitsMoved != 2 || !strings.Contains(res.StartCommand, "daemon-reload") {
		t.Errorf("moved %d, next %q", res.UnitsMoved, res.StartCommand)
	}
	for p, want := range map[string]bool{migrate.DropInDir + "/upstream.conf": false, migrate.UnitOverride: false, migrate.DropInDir + "/limits.conf": true} {
		if _, err := os.Stat(filepath.Join(root, p)); (err == nil) != want {
			t.Errorf("%s present: %v, want %v", p, err == nil, want)
		}
	}
	if kept, _ := filepath.Glob(filepath.Join(root, migrate.DropInDir, "upstream.conf.distribution-*")); len(kept) != 1 {
		t.Error("the ExecStart drop-in was not kept aside")
	}
	if !strings.Contains(strings.Join(res.Warnings, "\n"), "limits.conf applies to this package's etcd.service too") {
		t.Errorf("warnings: %q", res.Warnings)
	}
}

// Replacing etcd-server leaves it in dpkg's state config-files, and its
// purge script deletes /var/lib/etcd: said whenever dpkg still knows it.
func TestPurgeHazard(t *testing.T) {
	stanza := func(pkg, status string) string {
		return "Package: " + pkg + "\nStatus: " + status + "\nPriority: optional\n"
	}
	for status, want := range map[string]bool{
		stanza("etcd-server", "deinstall ok config-files"): true,
		stanza("etcd-server", "install ok installed"):      true,
		stanza("etcd-server", "purge ok not-installed"):    false,
		stanza("etcd-client", "deinstall ok config-files"): false,
		"": false,
	} {
		root := t.TempDir()
		write(t, root, migrate.DpkgStatus, stanza("adduser", "install ok installed")+"\n"+status+"\n"+stanza("zlib1g", "install ok installed"))
		got := migrate.PurgeHazard(host.LocalFS{Root: root, IgnoreOwner: true})
		if (got != "") != want || want && !strings.Contains(got, "rm -rf /var/lib/etcd") {
			t.Errorf("%q: %q", status, got)
		}
	}
}
