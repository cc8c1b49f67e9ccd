package apply

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

	"github.com/etcd-appliance/appliance/cluster"
	"github.com/etcd-appliance/appliance/cluster/clustertest"
	"github.com/etcd-appliance/appliance/datadir"
	"github.com/etcd-appliance/appliance/datadir/datadirtest"
	"github.com/etcd-appliance/appliance/host"
	"github.com/etcd-appliance/appliance/host/hosttest"
	"github.com/etcd-appliance/appliance/inventory"
	"github.com/etcd-appliance/appliance/inventory/inventorytest"
	"github.com/etcd-appliance/appliance/layout"
	"github.com/etcd-appliance/appliance/workflow"
)

var threeHosts = inventorytest.Three(`tls = "off"`)

func parse(t *testing.T, text string) *inventory.Inventory { return inventorytest.Parse(t, text) }

func quietLog() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

func target(t *testing.T, inv *inventory.Inventory, name string, f host.FS, s host.Services) workflow.Target {
	t.Helper()
	h, ok := inv.Host(name)
	if !ok {
		t.Fatalf("no host %s", name)
	}
	return workflow.Target{Host: h, FS: f, Services: s}
}

func TestApplyFreshHostThenIdempotent(t *testing.T) {
	inv := parse(t, threeHosts)
	fsys, svc := hosttest.NewMemFS(), &hosttest.Services{}
	tg := target(t, inv, "etcd0", fsys, svc)
	res, err := Host(context.Background(), inv, tg, Options{}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Files) != 2 || !res.Enabled || !res.Started || res.Restarted || res.Reloaded {
		t.Errorf("first apply: %+v", res)
	}
	if got := svc.Calls(); got != "enable etcd.service start etcd.service" {
		t.Errorf("calls %q", got)
	}
	conf, _ := fsys.ReadFile(layout.EtcdConf)
	if mode, _, group, _ := fsys.Meta(layout.EtcdConf); !strings.Contains(string(conf), "ETCD_NAME=etcd0\n") || mode != 0o640 || group != "etcd" {
		t.Errorf("etcd.conf: mode %04o group %s", mode, group)
	}

	// Second run: nothing to do, nothing restarted, and it says so.
	svc.Reset()
	res, err = Host(context.Background(), inv, tg, Options{}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if res.Changed() || res.Summary() != "no changes" || svc.Calls() != "" {
		t.Errorf("second apply changed something: %+v, calls %q", res, svc.Calls())
	}
}

func TestApplyDryRunTouchesNothing(t *testing.T) {
	inv := parse(t, threeHosts)
	fsys, svc := hosttest.NewMemFS(), &hosttest.Services{}
	plan := workflow.NewPlan(true, quietLog())
	res, err := Host(context.Background(), inv, target(t, inv, "etcd1", fsys, svc), Options{Plan: plan}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if fsys.Len() != 0 || svc.Calls() != "" {
		t.Errorf("dry run wrote %d files, calls %q", fsys.Len(), svc.Calls())
	}
	var what []string
	for _, a := range plan.For("etcd1") {
		what = append(what, a.What)
	}
	if got := strings.Join(what, "; "); got != "write /etc/etcd/etcd.conf (new); write /etc/etcd/etcdctl.env (new); enable etcd.service; start etcd.service" {
		t.Errorf("plan: %s", got)
	}
	if !res.Started || len(res.Files) != 2 {
		t.Errorf("dry run should report the plan: %+v", res)
	}
}

func TestApplyDataDirOutsideReloads(t *testing.T) {
	inv := parse(t, strings.Replace(threeHosts, `name = "t"`, "name = \"t\"\ndata_dir = \"/srv/etcd\"", 1))
	fsys, svc := hosttest.NewMemFS(), &hosttest.Services{}
	res, err := Host(context.Background(), inv, target(t, inv, "etcd0", fsys, svc), Options{}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if !res.Reloaded || !strings.HasPrefix(svc.Calls(), "daemon-reload") || !fsys.HasDir("/srv/etcd") {
		t.Errorf("drop-in needs daemon-reload and a data dir: %+v calls %q", res, svc.Calls())
	}
}

func changedConfig(t *testing.T, inv *inventory.Inventory, fsys *hosttest.MemFS, svc *hosttest.Services, name string) workflow.Target {
	t.Helper()
	tg := target(t, inv, name, fsys, svc)
	if _, err := Host(context.Background(), inv, tg, Options{}, quietLog()); err != nil {
		t.Fatal(err)
	}
	fsys.Put(layout.EtcdConf, []byte("old\n"), 0o640, "root", "etcd")
	svc.Reset()
	return tg
}

func members(inv *inventory.Inventory) []cluster.Member {
	var ms []cluster.Member
	for i := range inv.Members {
		m := &inv.Members[i]
		ms = append(ms, cluster.Member{ID: uint64(i + 1), Name: m.Name, PeerURLs: []string{inv.PeerURL(m)}, ClientURLs: []string{inv.ClientURL(m)}})
	}
	return ms
}

func TestApplyRestartsChangedMemberWhenSafe(t *testing.T) {
	inv := parse(t, threeHosts)
	fsys, svc := hosttest.NewMemFS(), &hosttest.Services{}
	tg := changedConfig(t, inv, fsys, svc, "etcd0")
	fm := &clustertest.Membership{List: members(inv)}
	res, err := Host(context.Background(), inv, tg, Options{Dial: func([]string) (cluster.Membership, error) { return fm, nil }}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if !res.Restarted || svc.Calls() != "restart etcd.service" {
		t.Errorf("want one restart: %+v calls %q", res, svc.Calls())
	}
}

func TestApplyRefusesUnsafeRestart(t *testing.T) {
	inv := parse(t, threeHosts)
	fsys, svc := hosttest.NewMemFS(), &hosttest.Services{}
	tg := changedConfig(t, inv, fsys, svc, "etcd0")
	fm := &clustertest.Membership{List: members(inv), Unhealthy: map[string]bool{"http://10.0.0.12:2379": true}}
	dial := func([]string) (cluster.Membership, error) { return fm, nil }
	_, err := Host(context.Background(), inv, tg, Options{Dial: dial}, quietLog())
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
	if b, _ := fsys.ReadFile(layout.EtcdConf); string(b) != "old\n" {
		t.Errorf("refused apply wrote the new configuration: %q", b)
	}
	res, err := Host(context.Background(), inv, tg, Options{Dial: dial, ForceRestart: true}, quietLog())
	if err != nil || !res.Restarted {
		t.Errorf("--force-restart: %+v %v", res, err)
	}

	fm.Err = errors.New("no leader")
	tg = changedConfig(t, inv, fsys, svc, "etcd0")
	if _, err := Host(context.Background(), inv, tg, Options{Dial: dial}, quietLog()); !errors.Is(err, ErrUnsafeRestart) ||
		!strings.Contains(err.Error(), "does not answer") {
		t.Errorf("unanswering cluster: %v", err)
	}
}

// A unit running with a configuration older than its file (a crash
// between write and restart) is restarted even though the file is
// unchanged now.
func TestApplyRestartsStaleUnit(t *testing.T) {
	inv := parse(t, threeHosts)
	root := t.TempDir()
	fsys := host.LocalFS{Root: root, IgnoreOwner: true}
	svc := &hosttest.Services{}
	tg := target(t, inv, "etcd0", fsys, svc)
	if _, err := Host(context.Background(), inv, tg, Options{}, quietLog()); err != nil {
		t.Fatal(err)
	}
	svc.Reset()
	svc.States = []host.UnitState{{Active: "active", Since: time.Now().Add(-time.Hour)}}
	fm := &clustertest.Membership{List: members(inv)}
	res, err := Host(context.Background(), inv, tg, Options{Dial: func([]string) (cluster.Membership, error) { return fm, nil }}, quietLog())
	if err != nil || !res.Restarted || len(res.Files) != 0 {
		t.Errorf("stale unit not restarted: %+v %v calls %q", res, err, svc.Calls())
	}
}

func TestApplyTLSFilesMissing(t *testing.T) {
	inv := parse(t, strings.Replace(threeHosts, `tls = "off"`, `tls = "on"`, 1))
	fsys, svc := hosttest.NewMemFS(), &hosttest.Services{}
	_, err := Host(context.Background(), inv, target(t, inv, "etcd0", fsys, svc), Options{}, quietLog())
	if err == nil || !strings.Contains(err.Error(), "/etc/etcd/pki/ca.crt") || !strings.Contains(err.Error(), "etcd-installer certs t.toml") {
		t.Errorf("got %v", err)
	}
	if fsys.Len() != 0 {
		t.Error("files written before the preflight failed")
	}
}

func TestApplyRefusesForeignDataDir(t *testing.T) {
	inv := parse(t, threeHosts)
	root := t.TempDir()
	datadirtest.WriteMembersDB(t, root, "/var/lib/etcd/etcd0", map[string]string{"default": "http://localhost:2380"})
	fsys := host.LocalFS{Root: root, IgnoreOwner: true}
	svc := &hosttest.Services{}
	_, err := Host(context.Background(), inv, target(t, inv, "etcd0", fsys, svc), Options{}, quietLog())
	if !errors.Is(err, datadir.ErrForeign) {
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
	datadirtest.WriteMembersDB(t, root2, "/var/lib/etcd/etcd0", map[string]string{"etcd0": "http://10.0.0.10:2380", "etcd1": "http://10.0.0.11:2380"})
	if _, err := Host(context.Background(), inv, target(t, inv, "etcd0", host.LocalFS{Root: root2, IgnoreOwner: true}, &hosttest.Services{}), Options{}, quietLog()); err != nil {
		t.Errorf("own data dir refused: %v", err)
	}
}

func TestWaitReady(t *testing.T) {
	inv := parse(t, threeHosts)
	svc := &hosttest.Services{States: []host.UnitState{
		{Active: "activating", Status: "waiting for quorum: 2 of 3 members needed"},
		{Active: "activating", Status: "waiting for quorum: 2 of 3 members needed"},
		{Active: "active", Status: "serving: etcd0 leader"},
	}}
	tg := target(t, inv, "etcd0", hosttest.NewMemFS(), svc)
	if _, err := workflow.WaitReady(context.Background(), tg, 10*time.Second, quietLog()); err != nil {
		t.Fatal(err)
	}
	svc = &hosttest.Services{States: []host.UnitState{{Active: "failed", Result: "exit-code", ExitStatus: 78, Status: "configuration error: ETCD_NAEM"}}, LogsText: "journal lines"}
	_, err := workflow.WaitReady(context.Background(), target(t, inv, "etcd0", hosttest.NewMemFS(), svc), 10*time.Second, quietLog())
	if !errors.Is(err, workflow.ErrNotReady) || !strings.Contains(err.Error(), "exit status 78") || !strings.Contains(err.Error(), "journal lines") {
		t.Errorf("failed unit: %v", err)
	}
	svc = &hosttest.Services{States: []host.UnitState{{Active: "activating", Status: "waiting for quorum"}}}
	_, err = workflow.WaitReady(context.Background(), target(t, inv, "etcd0", hosttest.NewMemFS(), svc), 500*time.Millisecond, quietLog())
	if !errors.Is(err, workflow.ErrNotReady) || !strings.Contains(err.Error(), "not ready after 500ms") {
		t.Errorf("timeout: %v", err)
	}
}

// A rolling restart stops at the first member that does not come back:
// the members after it keep their running configuration and files.
func TestApplyAllStopsRollingAtFailure(t *testing.T) {
	inv := parse(t, threeHosts)
	fm := &clustertest.Membership{List: members(inv)}
	var targets []workflow.Target
	var fss []*hosttest.MemFS
	var svcs []*hosttest.Services
	for _, name := range []string{"etcd0", "etcd1", "etcd2"} {
		fsys, svc := hosttest.NewMemFS(), &hosttest.Services{}
		targets = append(targets, changedConfig(t, inv, fsys, svc, name))
		fss, svcs = append(fss, fsys), append(svcs, svc)
	}
	// etcd0 plans and restarts while active, then fails to come back.
	svcs[0].States = []host.UnitState{{Active: "active"}, {Active: "active"}, {Active: "failed", Result: "exit-code", ExitStatus: 1}}
	out := All(context.Background(), inv, targets, AllOptions{
		Options: Options{Dial: func([]string) (cluster.Membership, error) { return fm, nil }}, Wait: time.Second}, quietLog())
	if !errors.Is(out[0].Err, workflow.ErrNotReady) || !out[0].Rolling || out[0].Stage != "ready" || svcs[0].Calls() != "restart etcd.service" {
		t.Errorf("etcd0: %+v calls %q", out[0], svcs[0].Calls())
	}
	for i := 1; i < 3; i++ {
		if !errors.Is(out[i].Err, ErrRollingStopped) || !strings.Contains(out[i].Err.Error(), "etcd0") || svcs[i].Calls() != "" {
			t.Errorf("%s: %+v calls %q", out[i].Name, out[i], svcs[i].Calls())
		}
		if b, _ := fss[i].ReadFile(layout.EtcdConf); string(b) != "old\n" {
			t.Errorf("%s: configuration written after the roll stopped: %q", out[i].Name, b)
		}
	}
}

// A running, initialized member whose etcd.conf changed in what etcd
// ignores once it has data (a comment, the initial cluster after member
// add) gets the file without a restart, and the next apply does not
// restart it as "older than its files" either.
func TestApplyIgnorableChangeNeverRestarts(t *testing.T) {
	inv := parse(t, threeHosts)
	root := t.TempDir()
	datadirtest.WriteMembersDB(t, root, "/var/lib/etcd/etcd0", map[string]string{"etcd0": "http://10.0.0.10:2380", "etcd1": "http://10.0.0.11:2380", "etcd2": "http://10.0.0.12:2380"})
	fsys := host.LocalFS{Root: root, IgnoreOwner: true}
	svc := &hosttest.Services{}
	tg := target(t, inv, "etcd0", fsys, svc)
	if _, err := Host(context.Background(), inv, tg, Options{}, quietLog()); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(root, layout.EtcdConf)
	b, _ := os.ReadFile(conf)
	os.WriteFile(conf, []byte(strings.Replace(string(b), "from the inventory of cluster", "from the inventory prod.toml, cluster", 1)), 0o640)
	// Written (by an older etcd-installer) before the unit started.
	os.Chtimes(conf, time.Time{}, time.Now().Add(-2*time.Hour))
	fm := &clustertest.Membership{List: members(inv)}
	dial := func([]string) (cluster.Membership, error) { return fm, nil }
	// The unit started an hour ago, before both applies.
	started := host.UnitState{Active: "active", Enabled: "enabled", Since: time.Now().Add(-time.Hour)}
	for run := 1; run <= 2; run++ {
		svc.Reset()
		svc.States = []host.UnitState{started}
		res, err := Host(context.Background(), inv, tg, Options{Dial: dial}, quietLog())
		if err != nil {
			t.Fatal(err)
		}
		if res.Restarted || strings.Contains(svc.Calls(), "restart") {
			t.Errorf("apply %d restarted the member for a change etcd ignores: %+v calls %q", run, res, svc.Calls())
		}
		if wrote := len(res.Files); (run == 1) != (wrote == 1) {
			t.Errorf("apply %d wrote %d files", run, wrote)
		}
	}
}

// A dry run's summary speaks of what would happen (round 1 printed "dry
// run, would have: wrote ...; restarted the unit").
func TestDryRunSummary(t *testing.T) {
	inv := parse(t, threeHosts)
	fsys, svc := hosttest.NewMemFS(), &hosttest.Services{}
	res, err := Host(context.Background(), inv, target(t, inv, "etcd0", fsys, svc), Options{Plan: workflow.NewPlan(true, nil)}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	want := "would write /etc/etcd/etcd.conf, /etc/etcd/etcdctl.env; would enable the unit; would start the unit"
	if got := res.Plans(); got != want {
		t.Errorf("Plans() = %q, want %q", got, want)
	}
	if fsys.Len() != 0 || svc.Calls() != "" {
		t.Errorf("the dry run changed something: %d files, calls %q", fsys.Len(), svc.Calls())
	}
}

// runningFor applies once to a fresh root, then makes the unit look
// running since an hour ago with every file written before that.
func runningFor(t *testing.T, inv *inventory.Inventory, name string, initialized bool) (workflow.Target, *hosttest.Services, string, host.UnitState) {
	t.Helper()
	root := t.TempDir()
	if h, _ := inv.Host(name); initialized && h.Member != nil {
		datadirtest.WriteMembersDB(t, root, inv.DataDir(h.Member), map[string]string{"etcd0": "http://10.0.0.10:2380", "etcd1": "http://10.0.0.11:2380", "etcd2": "http://10.0.0.12:2380"})
	}
	svc := &hosttest.Services{}
	tg := target(t, inv, name, host.LocalFS{Root: root, IgnoreOwner: true}, svc)
	if _, err := Host(context.Background(), inv, tg, Options{}, quietLog()); err != nil {
		t.Fatal(err)
	}
	filepath.WalkDir(root+"/etc", func(p string, _ os.DirEntry, _ error) error {
		os.Chtimes(p, time.Time{}, time.Now().Add(-2*time.Hour))
		return nil
	})
	return tg, svc, root, host.UnitState{Active: "active", Enabled: "enabled", Since: time.Now().Add(-time.Hour).Truncate(time.Second)}
}

func applyRunning(t *testing.T, inv *inventory.Inventory, tg workflow.Target, svc *hosttest.Services, st host.UnitState, o Options) Result {
	t.Helper()
	svc.Reset()
	svc.States = []host.UnitState{st}
	fm := &clustertest.Membership{List: members(inv)}
	o.Dial = func([]string) (cluster.Membership, error) { return fm, nil }
	res, err := Host(context.Background(), inv, tg, o, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// A real change written with --no-start to a running member stays newer
// than the unit, so the next apply restarts it (it must not be dated back
// like a change etcd ignores).
func TestApplyNoStartChangeRestartsLater(t *testing.T) {
	inv := parse(t, threeHosts)
	tg, svc, _, st := runningFor(t, inv, "etcd0", true)
	changed := *inv
	changed.Cluster.SnapshotCount = 20000
	if res := applyRunning(t, &changed, tg, svc, st, Options{NoStart: true}); res.Restarted || len(res.Files) != 1 {
		t.Fatalf("--no-start: %+v calls %q", res, svc.Calls())
	}
	if res := applyRunning(t, &changed, tg, svc, st, Options{}); !res.Restarted {
		t.Errorf("the member never picks up the change written with --no-start: %+v calls %q", res, svc.Calls())
	}
}

// Upgrading to a release whose headers differ (the old ones named the
// inventory file) rewrites a proxy's env file and a data-dir drop-in
// without restarting anything, now and on the next apply.
func TestApplyHeaderChangeRestartsNothing(t *testing.T) {
	inv := parse(t, strings.Replace(threeHosts, `tls = "off"`, "tls = \"off\"\ndata_dir = \"/srv/etcd\"", 1)+
		"[[proxy]]\nname = \"gw\"\naddress = \"10.0.0.20\"\n")
	for _, name := range []string{"gw", "etcd0"} {
		tg, svc, root, st := runningFor(t, inv, name, false)
		n := 0
		filepath.WalkDir(root+"/etc", func(p string, d os.DirEntry, _ error) error {
			if b, err := os.ReadFile(p); err == nil && !d.IsDir() && strings.Contains(string(b), "of cluster t.") {
				os.WriteFile(p, []byte(strings.Replace(string(b), "of cluster t.", "t.toml.", 1)), 0o640)
				os.Chtimes(p, time.Time{}, time.Now().Add(-2*time.Hour))
				n++
			}
			return nil
		})
		if n == 0 {
			t.Fatalf("%s: no rendered header found", name)
		}
		for run := 1; run <= 2; run++ {
			if res := applyRunning(t, inv, tg, svc, st, Options{}); res.Restarted || strings.Contains(svc.Calls(), "restart") {
				t.Errorf("%s, apply %d: a header change restarted the unit: %+v calls %q", name, run, res, svc.Calls())
			}
		}
	}
}

// systemd reports the start in whole seconds; a file written later in
// that second is not newer than the unit.
func TestApplySinceHasWholeSeconds(t *testing.T) {
	inv := parse(t, threeHosts)
	tg, svc, root, _ := runningFor(t, inv, "etcd0", true)
	start := time.Unix(1700000000, 0)
	os.Chtimes(filepath.Join(root, layout.EtcdConf), time.Time{}, start.Add(300*time.Millisecond))
	st := host.UnitState{Active: "active", Enabled: "enabled", Since: start}
	if res := applyRunning(t, inv, tg, svc, st, Options{}); res.Restarted {
		t.Errorf("restarted for a file written in the second the unit started: %+v", res)
	}
}

// A [backup] schedule enables and starts the timer once; removing it from
// the inventory stops and disables it; the member is never restarted for
// either.
func TestApplyBackupTimer(t *testing.T) {
	with := parse(t, threeHosts+"\n[backup]\nschedule = \"*-*-* 02:30:00\"\n")
	fsys, svc := hosttest.NewMemFS(), &hosttest.Services{}
	if _, err := Host(context.Background(), with, target(t, with, "etcd0", fsys, svc), Options{}, quietLog()); err != nil {
		t.Fatal(err)
	}
	if got := svc.Calls(); got != "daemon-reload enable etcd.service enable etcd-backup.timer restart etcd-backup.timer start etcd.service" {
		t.Errorf("calls %q", got)
	}
	if b, _ := fsys.ReadFile(layout.BackupTimerDropIn); !strings.Contains(string(b), "\nOnCalendar=\nOnCalendar=*-*-* 02:30:00\n") {
		t.Errorf("the timer's schedule: %s", b)
	}
	svc.Reset()
	if _, err := Host(context.Background(), with, target(t, with, "etcd0", fsys, svc), Options{}, quietLog()); err != nil || svc.Calls() != "" {
		t.Errorf("second apply: %v, calls %q", err, svc.Calls())
	}
	without := parse(t, threeHosts)
	svc.Reset()
	res, err := Host(context.Background(), without, target(t, without, "etcd0", fsys, svc), Options{}, quietLog())
	if err != nil || svc.Calls() != "stop etcd-backup.timer disable etcd-backup.timer" || res.Restarted {
		t.Errorf("schedule removed: %+v, %v, calls %q", res, err, svc.Calls())
	}
}

// [maintenance] works the same: enabled once, re-armed when the schedule
// changes, stopped when it goes; the member is never restarted.
func TestApplyMaintenanceTimer(t *testing.T) {
	with := parse(t, threeHosts+"\n[maintenance]\nschedule = \"Sun 03:00\"\n")
	fsys, svc := hosttest.NewMemFS(), &hosttest.Services{}
	if _, err := Host(context.Background(), with, target(t, with, "etcd0", fsys, svc), Options{}, quietLog()); err != nil {
		t.Fatal(err)
	}
	if got := svc.Calls(); got != "daemon-reload enable etcd.service enable etcd-maintenance.timer restart etcd-maintenance.timer start etcd.service" {
		t.Errorf("calls %q", got)
	}
	if b, _ := fsys.ReadFile(layout.MaintenanceConf); !strings.Contains(string(b), "\nMAINTENANCE_FREE_PERCENT=50\nMAINTENANCE_MIN_FREE=104857600\n") {
		t.Errorf("the service's settings: %s", b)
	}
	svc.Reset()
	if _, err := Host(context.Background(), with, target(t, with, "etcd0", fsys, svc), Options{}, quietLog()); err != nil || svc.Calls() != "" {
		t.Errorf("second apply: %v, calls %q", err, svc.Calls())
	}
	daily := parse(t, threeHosts+"\n[maintenance]\nschedule = \"daily\"\n")
	svc.Reset()
	res, err := Host(context.Background(), daily, target(t, daily, "etcd0", fsys, svc), Options{}, quietLog())
	if err != nil || svc.Calls() != "daemon-reload enable etcd-maintenance.timer restart etcd-maintenance.timer" || res.Restarted {
		t.Errorf("schedule changed: %+v, %v, calls %q", res, err, svc.Calls())
	}
	without := parse(t, threeHosts)
	svc.Reset()
	res, err = Host(context.Background(), without, target(t, without, "etcd0", fsys, svc), Options{}, quietLog())
	if err != nil || svc.Calls() != "stop etcd-maintenance.timer disable etcd-maintenance.timer" || res.Restarted {
		t.Errorf("schedule removed: %+v, %v, calls %q", res, err, svc.Calls())
	}
}

// With copy_to, apply gives each member the copy host's keys and an SSH
// key of its own, made once; without the copy host's keys it refuses
// before writing anything.
func TestApplyBackupCopy(t *testing.T) {
	inv := parse(t, threeHosts+"\n[backup]\nschedule = \"daily\"\ncopy_to = \"backup@10.0.0.99\"\ncopy_dir = \"/srv/copies\"\n")
	fsys, svc := hosttest.NewMemFS(), &hosttest.Services{}
	_, err := Host(context.Background(), inv, target(t, inv, "etcd0", fsys, svc), Options{}, quietLog())
	if err == nil || !strings.Contains(err.Error(), "ssh-keyscan") {
		t.Fatalf("without the copy host's keys: %v", err)
	}
	if _, err := fsys.Stat(layout.EtcdConf); err == nil || svc.Calls() != "" {
		t.Fatalf("files written or units touched before the refusal: %q", svc.Calls())
	}
	kh := []byte("10.0.0.99 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTheTest\n")
	if _, err := Host(context.Background(), inv, target(t, inv, "etcd0", fsys, svc), Options{BackupKnownHosts: kh}, quietLog()); err != nil {
		t.Fatal(err)
	}
	if b, _ := fsys.ReadFile(layout.BackupKnownHosts); string(b) != string(kh) {
		t.Errorf("known_hosts %q", b)
	}
	key, _ := fsys.ReadFile(layout.BackupSSHKey)
	fi, err := fsys.Stat(layout.BackupSSHKey)
	if err != nil || fi.Mode().Perm() != 0o600 || !strings.Contains(string(key), "OPENSSH PRIVATE KEY") {
		t.Fatalf("key: %v %v", fi, err)
	}
	if b, _ := fsys.ReadFile(layout.BackupConf); !strings.Contains(string(b), "\nBACKUP_COPY_TO=backup@10.0.0.99\nBACKUP_COPY_DIR=/srv/copies\n") {
		t.Errorf("backup.conf: %s", b)
	}
	if _, err := Host(context.Background(), inv, target(t, inv, "etcd0", fsys, svc), Options{BackupKnownHosts: kh}, quietLog()); err != nil {
		t.Fatal(err)
	}
	if again, _ := fsys.ReadFile(layout.BackupSSHKey); string(again) != string(key) {
		t.Error("a second apply replaced the member's SSH key (the copy host authorizes the first)")
	}
}

// A backup dir of the inventory's own is created for the unit's sandbox,
// which opens it (the package creates only the default one).
func TestApplyCreatesTheBackupDir(t *testing.T) {
	inv := parse(t, threeHosts+"\n[backup]\nschedule = \"daily\"\ndir = \"/srv/etcd-backup\"\n")
	fsys, svc := hosttest.NewMemFS(), &hosttest.Services{}
	if _, err := Host(context.Background(), inv, target(t, inv, "etcd0", fsys, svc), Options{}, quietLog()); err != nil {
		t.Fatal(err)
	}
	fi, err := fsys.Stat("/srv/etcd-backup")
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Fatalf("backup dir: %v, %v", fi, err)
	}
	if b, _ := fsys.ReadFile(layout.BackupServiceDropIn); !strings.Contains(string(b), "\nReadWritePaths=/srv/etcd-backup\n") {
		t.Errorf("the sandbox drop-in: %s", b)
	}
}
