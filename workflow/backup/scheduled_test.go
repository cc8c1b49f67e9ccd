package backup_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/etcd-appliance/appliance/cluster"
	"github.com/etcd-appliance/appliance/host"
	"github.com/etcd-appliance/appliance/internal/backupstatus"
	"github.com/etcd-appliance/appliance/internal/etcdtest"
	"github.com/etcd-appliance/appliance/workflow/backup"
	"github.com/etcd-appliance/appliance/workflow/localcluster/localclustertest"
)

func TestRetain(t *testing.T) {
	day := func(d, h int) time.Time { return time.Date(2026, 11, d, h, 0, 0, 0, time.UTC) }
	taken := map[string]time.Time{
		"a": day(20, 1), "b": day(20, 23), // b is day 20's newest
		"c": day(21, 5), "d": day(22, 1), "e": day(22, 2), "f": day(22, 3),
	}
	for _, tc := range []struct {
		last, daily int
		drop        string
	}{
		{last: 2, daily: 0, drop: "a b c d"},
		{last: 2, daily: 2, drop: "a b d"},  // f (22nd), c (21st)
		{last: 1, daily: 3, drop: "a d e"},  // f, c, b
		{last: 10, daily: 0, drop: ""},      // all kept
		{last: 1, daily: 30, drop: "a d e"}, // only three days have one
	} {
		got := strings.Join(backup.Retain(taken, tc.last, tc.daily), " ")
		if got != tc.drop {
			t.Errorf("keep_last %d, keep_daily %d: drop %q, want %q", tc.last, tc.daily, got, tc.drop)
		}
	}
}

// TestScheduledBackups runs what etcd-backup.service runs on every member
// of a real cluster: only the leader takes a backup, it is verified and
// recorded, the retention keeps the newest; a backup damaged before its
// verification is kept aside, fails the run and never counts.
func TestScheduledBackups(t *testing.T) {
	lc := localclustertest.Started(t, localclustertest.Inventory(t, 3, ""))
	ctx := context.Background()
	c, err := cluster.Dial(lc.Inv.ClientURLs(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 200 {
		if _, err := c.KV().Put(ctx, "k"+string(rune('a'+i%26))+string(rune('a'+i/26)), strings.Repeat("v", 100)); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	status := filepath.Join(dir, "status.json")
	opts := func(name string, at time.Time) backup.ScheduledOptions {
		return backup.ScheduledOptions{Cluster: "local", Token: "local", Dir: filepath.Join(dir, "backups"), KeepLast: 2, KeepDaily: 1,
			Name: name, Endpoints: lc.Inv.ClientURLs(), UID: -1, GID: -1, Status: status, Now: func() time.Time { return at }}
	}
	at := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	var prog etcdtest.Buffer
	withProgress := func(o backup.ScheduledOptions) backup.ScheduledOptions {
		o.Progress = backup.Progress{W: &prog, Every: time.Millisecond}
		return o
	}
	run := func(at time.Time) (taken []backup.ScheduledResult) {
		for _, m := range lc.Inv.Members {
			res, err := backup.Scheduled(ctx, withProgress(opts(m.Name, at)), localclustertest.Log(t))
			if err != nil {
				t.Fatalf("%s: %v", m.Name, err)
			}
			if res.Skipped == "" {
				taken = append(taken, res)
			} else if !strings.Contains(res.Skipped, "is not the leader") {
				t.Errorf("%s skipped for another reason: %s", m.Name, res.Skipped)
			}
		}
		return taken
	}
	// Long operations report as they go (here every millisecond, so that
	// a small backup reports at all): timestamped lines for the journal.
	taken := run(at)
	if len(taken) != 1 {
		t.Fatalf("%d members took a backup at once, want the leader alone", len(taken))
	}
	res := taken[0]
	t.Logf("the leader's backup: revision %d, %d keys, %d bytes, saved in %s, verified in %s", res.Info.Revision, res.Info.TotalKeys, res.Info.Size, res.Took, res.Verify)
	if res.Info.Verified == nil || res.Info.TotalKeys < 200 {
		t.Fatalf("backup %+v", res.Info)
	}
	if out := prog.String(); !regexp.MustCompile(`Z snapshot from `+res.Info.Member+`: [0-9.]+ KiB of [0-9.]+ KiB \(100%\), .*, ended in `).MatchString(out) ||
		!strings.Contains(out, "Z verify (restore into a scratch dir): ") {
		t.Errorf("no progress reported:\n%s", out)
	}
	st, err := backupstatus.Read(status)
	if err != nil || st.File != res.File || st.Revision != res.Info.Revision {
		t.Fatalf("status %+v, %v", st, err)
	}
	// Another cluster's backup in the same dir (a shared mount), and what
	// a killed run left: the first is never the retention's to delete,
	// the second is cleaned up.
	bdir := filepath.Join(dir, "backups")
	other := filepath.Join(bdir, "other-20261101T000000Z.db")
	meta, _ := os.ReadFile(res.File + ".json")
	for p, b := range map[string][]byte{
		other: []byte("x"), other + ".json": []byte(strings.Replace(string(meta), `"cluster": "local"`, `"cluster": "other"`, 1)),
		filepath.Join(bdir, "local-20261130T095900Z.db.part"): []byte("partial"),
		filepath.Join(bdir, ".verify-123", "data"):            []byte("scratch"),
	} {
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for k := 1; k <= 2; k++ {
		run(at.Add(time.Duration(k) * time.Minute))
	}
	list, err := backup.List(host.LocalFS{Root: "/"}, bdir)
	if err != nil {
		t.Fatal(err)
	}
	var ours []string
	for _, l := range list {
		if l.Err != nil {
			t.Errorf("%s: %v", l.File, l.Err)
		}
		ours = append(ours, filepath.Base(l.File))
	}
	if strings.Join(ours, " ") != "local-20261130T100100Z.db local-20261130T100200Z.db other-20261101T000000Z.db" {
		t.Fatalf("after three backups with keep_last 2, keep_daily 1 (and another cluster's): %v", ours)
	}
	for _, left := range []string{"local-20261130T095900Z.db.part", ".verify-123"} {
		if _, err := os.Stat(filepath.Join(bdir, left)); err == nil {
			t.Errorf("%s left by an interrupted run is still there", left)
		}
	}

	// A backup damaged before verification (a bad disk, a bug planted):
	// the run fails, the file is kept aside, the last good one stands.
	o := opts(res.Info.Member, at.Add(time.Hour))
	o.Tamper(func(file string) {
		f, err := os.OpenFile(file, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteAt([]byte("damage damage damage"), 8192); err != nil {
			t.Fatal(err)
		}
	})
	_, err = backup.Scheduled(ctx, o, localclustertest.Log(t))
	if !errors.Is(err, backup.ErrVerify) {
		t.Fatalf("a damaged backup verified: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "backups", "failed", "local-20261130T110000Z.db")); err != nil {
		t.Errorf("the damaged backup is not kept aside: %v", err)
	}
	after, _ := backupstatus.Read(status)
	if after.File != filepath.Join(dir, "backups", "local-20261130T100200Z.db") {
		t.Errorf("the last good backup became %s", after.File)
	}
	if list, _ := backup.List(host.LocalFS{Root: "/"}, filepath.Join(dir, "backups")); len(list) != 3 {
		t.Errorf("the damaged backup counts: %+v", list)
	}
}

type memDir map[string][]byte

func (m memDir) ReadDir(string) ([]fs.DirEntry, error) { return nil, nil }
func (m memDir) ReadFile(p string) ([]byte, error) {
	if b, ok := m[p]; ok {
		return b, nil
	}
	return nil, fs.ErrNotExist
}

func TestFetchByName(t *testing.T) {
	from := map[string]backup.DirReader{
		"a": memDir{},
		"b": memDir{"/b/x-20261130T210000Z.db": []byte("snap"), "/b/x-20261130T210000Z.db.json": []byte("{}")},
	}
	to := t.TempDir()
	file, on, err := backup.Fetch("x-20261130T210000Z.db", "/b", from, []string{"a", "b"}, to)
	if err != nil || on != "b" || file != filepath.Join(to, "x-20261130T210000Z.db") {
		t.Fatalf("%s from %s: %v", file, on, err)
	}
	if b, _ := os.ReadFile(file); string(b) != "snap" {
		t.Errorf("copied %q", b)
	}
	for _, bad := range []string{"../etc/shadow", "x.db/../../y.db", ".hidden.db", "x.json", "/b/x-20261130T210000Z.db"} {
		if _, _, err := backup.Fetch(bad, "/b", from, []string{"a", "b"}, to); !errors.Is(err, backup.ErrNoSuchBackup) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if _, _, err := backup.Fetch("x-20261201T000000Z.db", "/b", from, []string{"a", "b"}, to); !errors.Is(err, backup.ErrNoSuchBackup) || !strings.Contains(err.Error(), "on a, b") {
		t.Errorf("missing: %v", err)
	}
}
