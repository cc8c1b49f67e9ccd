package backup_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/etcd-appliance/appliance/cluster"
	"github.com/etcd-appliance/appliance/cluster/clustertest"
	"github.com/etcd-appliance/appliance/inventory/inventorytest"
	"github.com/etcd-appliance/appliance/workflow"
	"github.com/etcd-appliance/appliance/workflow/backup"
	"github.com/etcd-appliance/appliance/workflow/localcluster/localclustertest"
)

// A dry run of backup writes no file; a dry run of restore stops no
// member, moves no data dir and loses no key: it only says, per host,
// what it would do.
func TestBackupRestoreDryRunChangesNothing(t *testing.T) {
	lc := localclustertest.Started(t, localclustertest.Inventory(t, 3, ""))
	ctx := context.Background()
	c, err := lc.Dial(lc.Inv.ClientURLs())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	kv := c.(*cluster.Client).KV()
	if _, err := kv.Put(ctx, "before", "x"); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "backup.db")
	dry := workflow.NewPlan(true, localclustertest.Log(t))
	if _, err := backup.Save(ctx, lc.Inv, c, cluster.Credentials{}, backup.SaveOptions{Out: file, Plan: dry}, localclustertest.Log(t)); err != nil {
		t.Fatal(err)
	}
	if got := localclustertest.Actions(dry, ""); !strings.HasPrefix(got, "save a snapshot of cluster it from m") || !strings.Contains(got, "(the leader) to "+file) {
		t.Errorf("backup plan: %s", got)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("a dry run wrote %s: %v", file, err)
	}
	if _, err := backup.Save(ctx, lc.Inv, c, cluster.Credentials{}, backup.SaveOptions{Out: file}, localclustertest.Log(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := backup.Save(ctx, lc.Inv, c, cluster.Credentials{}, backup.SaveOptions{Out: file}, localclustertest.Log(t)); !errors.Is(err, backup.ErrDestination) {
		t.Errorf("a second backup to the same file without --force: %v", err)
	}
	if _, err := backup.Save(ctx, lc.Inv, c, cluster.Credentials{}, backup.SaveOptions{Out: file, Force: true}, localclustertest.Log(t)); err != nil {
		t.Errorf("--force: %v", err)
	}
	if _, err := kv.Put(ctx, "after", "kept by a dry run"); err != nil {
		t.Fatal(err)
	}

	state := func() map[string]string {
		out := map[string]string{}
		for _, tg := range lc.Targets {
			st, err := tg.Services.State(ctx, tg.Unit())
			if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(lc.Inv.DataDir(tg.Host.Member))
			if err != nil {
				t.Fatal(err)
			}
			out[tg.Host.Name] = st.Active + " " + st.Since.String() + " " + fi.ModTime().String()
		}
		entries, _ := os.ReadDir(lc.Inv.Cluster.DataDir)
		for _, e := range entries {
			out["dir "+e.Name()] = e.Type().String()
		}
		return out
	}
	before := state()
	dry = workflow.NewPlan(true, localclustertest.Log(t))
	if err := backup.Restore(ctx, lc.Inv, file, lc.Targets, backup.RestoreOptions{Dial: lc.Dial, Wait: time.Minute, Plan: dry}, localclustertest.Log(t)); err != nil {
		t.Fatal(err)
	}
	for _, tg := range lc.Targets {
		got := localclustertest.Actions(dry, tg.Host.Name)
		for _, want := range []string{"stop etcd.service; move ", ".pre-restore-", "restore the snapshot (revision ", "as member " + tg.Host.Name + " with etcdutl; start etcd.service"} {
			if !strings.Contains(got, want) {
				t.Errorf("restore plan for %s lacks %q: %s", tg.Host.Name, want, got)
			}
		}
	}
	after := state()
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s: %s, before the dry run %s", k, after[k], v)
		}
	}
	if len(after) != len(before) {
		t.Errorf("the data parent changed: %v, before %v", after, before)
	}
	if r, err := kv.Get(ctx, "after"); err != nil || r.Count != 1 {
		t.Errorf("a key written after the backup: %v %v", r, err)
	}
}

// backup --out writes only a regular file, and replaces an existing one
// only with --force: a device node, a directory, a FIFO or a symbolic
// link (which would redirect the write) is refused before the cluster is
// asked, and each is left as it was.
func TestSaveRefusesDestinations(t *testing.T) {
	inv := inventorytest.Parse(t, inventorytest.Three(`tls = "off"`))
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(dir, "victim")
	os.WriteFile(victim, []byte("not a backup"), 0o644)
	link := filepath.Join(dir, "link.db")
	os.Symlink(victim, link)
	existing := filepath.Join(dir, "old.db")
	os.WriteFile(existing, []byte("an older backup"), 0o600)
	jsonOnly := filepath.Join(dir, "meta.db")
	os.Symlink(victim, jsonOnly+".json")
	fake := &clustertest.Membership{}
	for _, c := range []struct {
		out, want string
		force     bool
	}{
		{fifo, "is not a regular file", true},
		{dir, "is not a regular file", true},
		{link, "is not a regular file", true},
		{jsonOnly, "meta.db.json is not a regular file", true},
		{existing, "pass --force to replace it", false},
	} {
		_, err := backup.Save(context.Background(), inv, fake, cluster.Credentials{}, backup.SaveOptions{Out: c.out, Force: c.force}, localclustertest.Log(t))
		if !errors.Is(err, backup.ErrDestination) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("--out %s: %v, want %q", c.out, err, c.want)
		}
	}
	if b, _ := os.ReadFile(victim); string(b) != "not a backup" {
		t.Errorf("the link's target changed: %q", b)
	}
	if b, _ := os.ReadFile(existing); string(b) != "an older backup" {
		t.Errorf("an existing backup was replaced without --force: %q", b)
	}
}
