package backup_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcd-appliance/appliance/cluster"
	"github.com/etcd-appliance/appliance/workflow"
	"github.com/etcd-appliance/appliance/workflow/backup"
	"github.com/etcd-appliance/appliance/workflow/localcluster/localclustertest"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestBackupWipeRestore(t *testing.T) {
	lc := localclustertest.New(t, localclustertest.Inventory(t, 3, ""))
	ctx := context.Background()
	if err := lc.Start(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	c, err := lc.Dial(lc.Inv.ClientURLs())
	if err != nil {
		t.Fatal(err)
	}
	cl := c.(*cluster.Client)
	for i := range 200 {
		if _, err := cl.KV().Put(ctx, fmt.Sprintf("before/%03d", i), "x"); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(t.TempDir(), "backup.db")
	info, err := backup.Save(ctx, lc.Inv, c, cluster.Credentials{}, backup.SaveOptions{Out: file, Plan: nil}, localclustertest.Log(t))
	if err != nil {
		t.Fatal(err)
	}
	if info.Revision < 200 || info.SHA256 == "" || len(info.Members) != 3 {
		t.Errorf("backup info: %+v", info)
	}
	// Which version is meant is named: the member's release, as status
	// shows it, and the storage version of the data (round 1 wrote the
	// latter as "etcdVersion", 3.7.0 beside status's 3.7.3).
	if cs := cluster.Status(ctx, lc.Inv, c); info.ServerVersion == "" || info.ServerVersion != cs.Rows[0].Version {
		t.Errorf("serverVersion %q, status says %q", info.ServerVersion, cs.Rows[0].Version)
	}
	if !strings.HasSuffix(info.StorageVersion, ".0") || info.EtcdVersion != "" {
		t.Errorf("storageVersion %q etcdVersion %q", info.StorageVersion, info.EtcdVersion)
	}
	if meta, _ := os.ReadFile(file + ".json"); strings.Contains(string(meta), "etcdVersion") {
		t.Errorf("metadata still says etcdVersion:\n%s", meta)
	}
	if _, err := cl.KV().Put(ctx, "after/1", "lost on restore"); err != nil {
		t.Fatal(err)
	}
	cl.Close()

	// Disaster: every member dies and its data is gone.
	for _, tg := range lc.Targets {
		lc.Processes(tg.Host.Name).Kill(tg.Unit())
		if err := os.RemoveAll(lc.Inv.DataDir(tg.Host.Member)); err != nil {
			t.Fatal(err)
		}
	}
	if err := backup.Restore(ctx, lc.Inv, file, lc.Targets, backup.RestoreOptions{Dial: lc.Dial, Wait: time.Minute}, localclustertest.Log(t)); err != nil {
		t.Fatal(err)
	}
	c2, err := cluster.Dial(lc.Inv.ClientURLs(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	resp, err := c2.KV().Get(ctx, "before/", clientPrefix())
	if err != nil || resp.Count != 200 {
		t.Fatalf("keys before the backup: %v %v", resp, err)
	}
	resp, err = c2.KV().Get(ctx, "after/", clientPrefix())
	if err != nil || resp.Count != 0 {
		t.Errorf("a key written after the backup survived: %v %v", resp, err)
	}

	// A restore that fails on one host after every member stopped puts
	// every member back on its own data: nothing restored, nothing lost.
	if _, err := c2.KV().Put(ctx, "after/2", "kept by a failed restore"); err != nil {
		t.Fatal(err)
	}
	broken := append([]workflow.Target(nil), lc.Targets...)
	broken[1].Etcdutl = filepath.Join(t.TempDir(), "no-etcdutl")
	err = backup.Restore(ctx, lc.Inv, file, broken, backup.RestoreOptions{Dial: lc.Dial, Wait: time.Minute}, localclustertest.Log(t))
	if err == nil || !strings.Contains(err.Error(), "nothing restored: every member was put back on its old data") {
		t.Fatalf("restore failing on m1: %v", err)
	}
	if err := lc.WaitReady(ctx, time.Minute); err != nil {
		t.Fatalf("members after a failed restore: %v", err)
	}
	if resp, err := c2.KV().Get(ctx, "after/2"); err != nil || resp.Count != 1 {
		t.Errorf("a key written before the failed restore: %v %v", resp, err)
	}
	for _, name := range []string{"m0", "m2"} {
		if m, _ := filepath.Glob(lc.Inv.DataDir(localclustertest.Member(t, lc.Inv, name)) + ".failed-restore-*"); len(m) != 1 {
			t.Errorf("%s: the partly restored data dir is not kept: %v", name, m)
		}
	}

	// A damaged backup is refused before anything is stopped: one whose
	// checksum file does not match, and one damaged inside whose checksum
	// file was updated to match (etcdutl's integrity check on a scratch
	// copy catches it).
	pids := func() map[string]int {
		out := map[string]int{}
		for _, tg := range lc.Targets {
			st, _ := tg.Services.State(ctx, tg.Unit())
			out[tg.Host.Name] = st.MainPID
		}
		return out
	}
	before := pids()
	good, _ := os.ReadFile(file)
	f, _ := os.OpenFile(file, os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte("x"))
	f.Close()
	if err := backup.Restore(ctx, lc.Inv, file, lc.Targets, backup.RestoreOptions{Dial: lc.Dial, Wait: time.Minute}, localclustertest.Log(t)); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("damaged snapshot: %v", err)
	}
	inside := append([]byte(nil), good...)
	inside[len(inside)/2] ^= 0xff
	os.WriteFile(file, inside, 0o600)
	sum := sha256.Sum256(inside)
	meta, _ := os.ReadFile(file + ".json")
	meta = bytes.Replace(meta, []byte(info.SHA256), []byte(hex.EncodeToString(sum[:])), 1)
	os.WriteFile(file+".json", meta, 0o600)
	if err := backup.Restore(ctx, lc.Inv, file, lc.Targets, backup.RestoreOptions{Dial: lc.Dial, Wait: time.Minute}, localclustertest.Log(t)); err == nil ||
		!strings.Contains(err.Error(), "nothing was stopped") {
		t.Errorf("a snapshot damaged inside, checksum updated: %v", err)
	}
	if after := pids(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("members restarted by a refused restore: %v, before %v", after, before)
	}
	if cs := localclustertest.Status(t, lc); !cs.Healthy {
		t.Errorf("cluster disturbed by a refused restore: %s", cs.Verdict())
	}
}

func clientPrefix() clientv3.OpOption { return clientv3.WithPrefix() }
