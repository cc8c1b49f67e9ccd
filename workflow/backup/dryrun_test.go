package backup_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcd-appliance/appliance/cluster"
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
	if _, err := backup.Save(ctx, lc.Inv, c, cluster.Credentials{}, file, dry, localclustertest.Log(t)); err != nil {
		t.Fatal(err)
	}
	if got := localclustertest.Actions(dry, ""); !strings.HasPrefix(got, "save a snapshot of cluster it from m") || !strings.Contains(got, "(the leader) to "+file) {
		t.Errorf("backup plan: %s", got)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("a dry run wrote %s: %v", file, err)
	}
	if _, err := backup.Save(ctx, lc.Inv, c, cluster.Credentials{}, file, nil, localclustertest.Log(t)); err != nil {
		t.Fatal(err)
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
