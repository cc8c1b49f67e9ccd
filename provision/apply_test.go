package provision

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	bolt "go.etcd.io/bbolt"

	"github.com/etcd-appliance/appliance/installer"
)

const threeHosts = `version = 1
[cluster]
name = "t"
tls = "off"
[[member]]
name = "etcd0"
address = "10.0.0.10"
[[member]]
name = "etcd1"
address = "10.0.0.11"
[[member]]
name = "etcd2"
address = "10.0.0.12"
`

func inventory(t *testing.T, text string) *installer.Inventory {
	t.Helper()
	inv, err := installer.Parse("t.toml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func quietLog() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

func target(t *testing.T, inv *installer.Inventory, name string, f FS, s Services) Target {
	t.Helper()
	h, ok := inv.Host(name)
	if !ok {
		t.Fatalf("no host %s", name)
	}
	return Target{Host: h, FS: f, Services: s}
}

func TestApplyFreshHostThenIdempotent(t *testing.T) {
	inv := inventory(t, threeHosts)
	fsys, svc := newMemFS(), &fakeServices{}
	tg := target(t, inv, "etcd0", fsys, svc)
	res, err := Apply(context.Background(), inv, tg, ApplyOptions{}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Files) != 2 || !res.Enabled || !res.Started || res.Restarted || res.Reloaded {
		t.Errorf("first apply: %+v", res)
	}
	if got := svc.Calls(); got != "enable etcd.service start etcd.service" {
		t.Errorf("calls %q", got)
	}
	conf, _ := fsys.ReadFile(installer.EtcdConfPath)
	if !strings.Contains(string(conf), "ETCD_NAME=etcd0\n") || fsys.files[installer.EtcdConfPath].mode != 0o640 ||
		fsys.files[installer.EtcdConfPath].group != "etcd" {
		t.Errorf("etcd.conf: %+v", fsys.files[installer.EtcdConfPath])
	}

	// Second run: nothing to do, nothing restarted, and it says so.
	svc.calls = nil
	res, err = Apply(context.Background(), inv, tg, ApplyOptions{}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if res.Changed() || res.Summary() != "no changes" || svc.Calls() != "" {
		t.Errorf("second apply changed something: %+v, calls %q", res, svc.Calls())
	}
}

func TestApplyDryRunTouchesNothing(t *testing.T) {
	inv := inventory(t, threeHosts)
	fsys, svc := newMemFS(), &fakeServices{}
	res, err := Apply(context.Background(), inv, target(t, inv, "etcd1", fsys, svc), ApplyOptions{DryRun: true}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if len(fsys.files) != 0 || svc.Calls() != "" {
		t.Errorf("dry run wrote %d files, calls %q", len(fsys.files), svc.Calls())
	}
	if !res.Started || len(res.Files) != 2 {
		t.Errorf("dry run should report the plan: %+v", res)
	}
}

func TestApplyDataDirOutsideReloads(t *testing.T) {
	inv := inventory(t, strings.Replace(threeHosts, `name = "t"`, "name = \"t\"\ndata_dir = \"/srv/etcd\"", 1))
	fsys, svc := newMemFS(), &fakeServices{}
	res, err := Apply(context.Background(), inv, target(t, inv, "etcd0", fsys, svc), ApplyOptions{}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if !res.Reloaded || !strings.HasPrefix(svc.Calls(), "daemon-reload") || !fsys.dirs["/srv/etcd"] {
		t.Errorf("drop-in needs daemon-reload and a data dir: %+v calls %q dirs %v", res, svc.Calls(), fsys.dirs)
	}
}

func changedConfig(t *testing.T, inv *installer.Inventory, fsys *memFS, svc *fakeServices, name string) Target {
	t.Helper()
	tg := target(t, inv, name, fsys, svc)
	if _, err := Apply(context.Background(), inv, tg, ApplyOptions{}, quietLog()); err != nil {
		t.Fatal(err)
	}
	fsys.files[installer.EtcdConfPath] = memFile{[]byte("old\n"), 0o640, "root", "etcd"}
	svc.calls = nil
	return tg
}

func members(inv *installer.Inventory) []Member {
	var ms []Member
	for i := range inv.Members {
		m := &inv.Members[i]
		ms = append(ms, Member{ID: uint64(i + 1), Name: m.Name, PeerURLs: []string{inv.PeerURL(m)}, ClientURLs: []string{inv.ClientURL(m)}})
	}
	return ms
}

func TestApplyRestartsChangedMemberWhenSafe(t *testing.T) {
	inv := inventory(t, threeHosts)
	fsys, svc := newMemFS(), &fakeServices{}
	tg := changedConfig(t, inv, fsys, svc, "etcd0")
	fm := &fakeMembership{members: members(inv)}
	res, err := Apply(context.Background(), inv, tg, ApplyOptions{Dial: func([]string) (Membership, error) { return fm, nil }}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if !res.Restarted || svc.Calls() != "restart etcd.service" {
		t.Errorf("want one restart: %+v calls %q", res, svc.Calls())
	}
}

func TestApplyRefusesUnsafeRestart(t *testing.T) {
	inv := inventory(t, threeHosts)
	fsys, svc := newMemFS(), &fakeServices{}
	tg := changedConfig(t, inv, fsys, svc, "etcd0")
	fm := &fakeMembership{members: members(inv), unhealthy: map[string]bool{"http://10.0.0.12:2379": true}}
	dial := func([]string) (Membership, error) { return fm, nil }
	_, err := Apply(context.Background(), inv, tg, ApplyOptions{Dial: dial}, quietLog())
	if !errors.Is(err, ErrUnsafeRestart) {
		t.Fatalf("got %v, want ErrUnsafeRestart", err)
	}
	for _, want := range []string{"1 of 3 voting members would be healthy", "quorum is 2", "unhealthy: etcd2", "--force-restart"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message lacks %q: %v", want, err)
		}
	}
	if strings.Contains(svc.Calls(), "restart") {
		t.Error("restarted anyway")
	}
	// Nothing was written: the next apply still sees the change.
	if b, _ := fsys.ReadFile(installer.EtcdConfPath); string(b) != "old\n" {
		t.Errorf("refused apply wrote the new configuration: %q", b)
	}
	res, err := Apply(context.Background(), inv, tg, ApplyOptions{Dial: dial, ForceRestart: true}, quietLog())
	if err != nil || !res.Restarted {
		t.Errorf("--force-restart: %+v %v", res, err)
	}

	fm.err = errors.New("no leader")
	tg = changedConfig(t, inv, fsys, svc, "etcd0")
	if _, err := Apply(context.Background(), inv, tg, ApplyOptions{Dial: dial}, quietLog()); !errors.Is(err, ErrUnsafeRestart) ||
		!strings.Contains(err.Error(), "does not answer") {
		t.Errorf("unanswering cluster: %v", err)
	}
}

// A unit running with a configuration older than its file (a crash
// between write and restart) is restarted even though the file is
// unchanged now.
func TestApplyRestartsStaleUnit(t *testing.T) {
	inv := inventory(t, threeHosts)
	root := t.TempDir()
	fsys := LocalFS{Root: root, IgnoreOwner: true}
	svc := &fakeServices{}
	tg := target(t, inv, "etcd0", fsys, svc)
	if _, err := Apply(context.Background(), inv, tg, ApplyOptions{}, quietLog()); err != nil {
		t.Fatal(err)
	}
	svc.calls = nil
	svc.states = []UnitState{{Active: "active", Since: time.Now().Add(-time.Hour)}}
	fm := &fakeMembership{members: members(inv)}
	res, err := Apply(context.Background(), inv, tg, ApplyOptions{Dial: func([]string) (Membership, error) { return fm, nil }}, quietLog())
	if err != nil || !res.Restarted || len(res.Files) != 0 {
		t.Errorf("stale unit not restarted: %+v %v calls %q", res, err, svc.Calls())
	}
}

func TestApplyTLSFilesMissing(t *testing.T) {
	inv := inventory(t, strings.Replace(threeHosts, `tls = "off"`, `tls = "on"`, 1))
	fsys, svc := newMemFS(), &fakeServices{}
	_, err := Apply(context.Background(), inv, target(t, inv, "etcd0", fsys, svc), ApplyOptions{}, quietLog())
	if err == nil || !strings.Contains(err.Error(), "/etc/etcd/pki/ca.crt") || !strings.Contains(err.Error(), "etcd-installer certs t.toml") {
		t.Errorf("got %v", err)
	}
	if len(fsys.files) != 0 {
		t.Error("files written before the preflight failed")
	}
}

// writeMembersDB creates a data dir whose backend records the members.
func writeMembersDB(t *testing.T, root, dir string, ms map[string]string) {
	t.Helper()
	snap := filepath.Join(root, dir, "member", "snap")
	if err := os.MkdirAll(snap, 0o700); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(filepath.Join(snap, "db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	i := 0
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("members"))
		if err != nil {
			return err
		}
		for name, url := range ms {
			i++
			v := `{"id":` + string(rune('0'+i)) + `,"peerURLs":["` + url + `"],"name":"` + name + `"}`
			if err := b.Put([]byte{byte(i)}, []byte(v)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestApplyRefusesForeignDataDir(t *testing.T) {
	inv := inventory(t, threeHosts)
	root := t.TempDir()
	writeMembersDB(t, root, "/var/lib/etcd/etcd0", map[string]string{"default": "http://localhost:2380"})
	fsys := LocalFS{Root: root, IgnoreOwner: true}
	svc := &fakeServices{}
	_, err := Apply(context.Background(), inv, target(t, inv, "etcd0", fsys, svc), ApplyOptions{}, quietLog())
	if !errors.Is(err, ErrForeignDataDir) {
		t.Fatalf("got %v", err)
	}
	for _, want := range []string{"default=http://localhost:2380", "without member etcd0", "mv /var/lib/etcd/etcd0 /var/lib/etcd/etcd0.old-"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message lacks %q: %v", want, err)
		}
	}
	if svc.Calls() != "" {
		t.Errorf("calls %q", svc.Calls())
	}
	if _, err := os.Stat(filepath.Join(root, "/var/lib/etcd/etcd0/member/snap/db")); err != nil {
		t.Errorf("data dir touched: %v", err)
	}

	// Its own data dir passes.
	root2 := t.TempDir()
	writeMembersDB(t, root2, "/var/lib/etcd/etcd0", map[string]string{"etcd0": "http://10.0.0.10:2380", "etcd1": "http://10.0.0.11:2380"})
	if _, err := Apply(context.Background(), inv, target(t, inv, "etcd0", LocalFS{Root: root2, IgnoreOwner: true}, &fakeServices{}), ApplyOptions{}, quietLog()); err != nil {
		t.Errorf("own data dir refused: %v", err)
	}
}

func TestWaitReady(t *testing.T) {
	inv := inventory(t, threeHosts)
	svc := &fakeServices{states: []UnitState{
		{Active: "activating", Status: "waiting for quorum: 2 of 3 members needed"},
		{Active: "activating", Status: "waiting for quorum: 2 of 3 members needed"},
		{Active: "active", Status: "serving: etcd0 leader"},
	}}
	tg := target(t, inv, "etcd0", newMemFS(), svc)
	if _, err := WaitReady(context.Background(), tg, 10*time.Second, quietLog()); err != nil {
		t.Fatal(err)
	}
	svc = &fakeServices{states: []UnitState{{Active: "failed", Result: "exit-code", ExitStatus: 78, Status: "configuration error: ETCD_NAEM"}}, logs: "journal lines"}
	_, err := WaitReady(context.Background(), target(t, inv, "etcd0", newMemFS(), svc), 10*time.Second, quietLog())
	if !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "exit status 78") || !strings.Contains(err.Error(), "journal lines") {
		t.Errorf("failed unit: %v", err)
	}
	svc = &fakeServices{states: []UnitState{{Active: "activating", Status: "waiting for quorum"}}}
	_, err = WaitReady(context.Background(), target(t, inv, "etcd0", newMemFS(), svc), 500*time.Millisecond, quietLog())
	if !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "not ready after 500ms") {
		t.Errorf("timeout: %v", err)
	}
}

// A rolling restart stops at the first member that does not come back:
// the members after it keep their running configuration and files.
func TestApplyAllStopsRollingAtFailure(t *testing.T) {
	inv := inventory(t, threeHosts)
	fm := &fakeMembership{members: members(inv)}
	var targets []Target
	var fss []*memFS
	var svcs []*fakeServices
	for _, name := range []string{"etcd0", "etcd1", "etcd2"} {
		fsys, svc := newMemFS(), &fakeServices{}
		targets = append(targets, changedConfig(t, inv, fsys, svc, name))
		fss, svcs = append(fss, fsys), append(svcs, svc)
	}
	// etcd0 plans and restarts while active, then fails to come back.
	svcs[0].states = []UnitState{{Active: "active"}, {Active: "active"}, {Active: "failed", Result: "exit-code", ExitStatus: 1}}
	out := ApplyAll(context.Background(), inv, targets, ApplyAllOptions{
		ApplyOptions: ApplyOptions{Dial: func([]string) (Membership, error) { return fm, nil }}, Wait: time.Second}, quietLog())
	if !errors.Is(out[0].Err, ErrNotReady) || !out[0].Rolling || out[0].Stage != "ready" || svcs[0].Calls() != "restart etcd.service" {
		t.Errorf("etcd0: %+v calls %q", out[0], svcs[0].Calls())
	}
	for i := 1; i < 3; i++ {
		if !errors.Is(out[i].Err, ErrRollingStopped) || !strings.Contains(out[i].Err.Error(), "etcd0") || svcs[i].Calls() != "" {
			t.Errorf("%s: %+v calls %q", out[i].Name, out[i], svcs[i].Calls())
		}
		if b, _ := fss[i].ReadFile(installer.EtcdConfPath); string(b) != "old\n" {
			t.Errorf("%s: configuration written after the roll stopped: %q", out[i].Name, b)
		}
	}
}
