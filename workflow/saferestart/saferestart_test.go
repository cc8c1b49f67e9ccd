package saferestart

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/etcd-appliance/appliance/cluster"
	"github.com/etcd-appliance/appliance/cluster/clustertest"
	"github.com/etcd-appliance/appliance/host"
	"github.com/etcd-appliance/appliance/workflow"
)

// unit is a fake service: active with a PID until restarted.
type unit struct {
	host.Services
	mu       sync.Mutex
	active   string
	pid      int
	restarts int
}

func (u *unit) State(context.Context, string) (host.UnitState, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return host.UnitState{Active: u.active, MainPID: u.pid}, nil
}

func (u *unit) Restart(context.Context, string) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.restarts++
	u.pid++
	return nil
}

func three(down ...string) *clustertest.Membership {
	f := &clustertest.Membership{Unhealthy: map[string]bool{}}
	for i, n := range []string{"m1", "m2", "m3"} {
		f.List = append(f.List, cluster.Member{ID: uint64(i + 1), Name: n, ClientURLs: []string{"http://" + n + ":2379"}})
	}
	for _, d := range down {
		f.Unhealthy["http://"+d+":2379"] = true
	}
	return f
}

type lockLog struct {
	taken, released int
	err, lost       error
	endpoints       []string
}

type fakeHeld struct {
	l *lockLog
}

func (h fakeHeld) Check(context.Context) error          { return h.l.lost }
func (h fakeHeld) Waiters(context.Context) (int, error) { return 0, nil }
func (h fakeHeld) Release(context.Context) error        { h.l.released++; return nil }

func (l *lockLog) lock(_ context.Context, eps []string, _ string, _ time.Duration, _ func(string)) (Held, error) {
	if l.err != nil {
		return nil, l.err
	}
	l.taken++
	l.endpoints = eps
	return fakeHeld{l}, nil
}

func opts(f *clustertest.Membership, l *lockLog, dry bool) Options {
	return Options{
		Unit: "etcd.service", Name: "m1", Endpoints: []string{"http://m1:2379"},
		Dial:     func([]string) (cluster.Membership, error) { return f, nil },
		Lock:     l.lock,
		LockWait: time.Second, ReadyWait: 5 * time.Second,
		Again: "etcd-installer safe-restart",
		Plan:  workflow.NewPlan(dry, logrus.New()),
	}
}

func TestRestartsWithTheLockWhenTheOthersKeepQuorum(t *testing.T) {
	u, l := &unit{active: "active", pid: 10}, &lockLog{}
	res, err := Run(context.Background(), u, opts(three(), l, false), logrus.New())
	if err != nil || !res.Restarted || u.restarts != 1 {
		t.Fatalf("%+v, %v, %d restarts", res, err, u.restarts)
	}
	if l.taken != 1 || l.released != 1 {
		t.Errorf("lock taken %d, released %d", l.taken, l.released)
	}
	if strings.Contains(strings.Join(l.endpoints, ","), "m1") {
		t.Errorf("the lock's lease must live on the members that stay up, not %v", l.endpoints)
	}
}

func TestRefusedWhenTheOthersWouldLoseQuorum(t *testing.T) {
	u, l := &unit{active: "active", pid: 10}, &lockLog{}
	_, err := Run(context.Background(), u, opts(three("m3"), l, false), logrus.New())
	if !errors.Is(err, ErrNotRestarted) || u.restarts != 0 {
		t.Fatalf("restarting m1 with m3 down would cost quorum: %v, %d restarts", err, u.restarts)
	}
	for _, want := range []string{"1 of the 3 voting members would serve, and quorum is 2", "not serving: m3)",
		"the running etcd goes on serving", "run `etcd-installer safe-restart`"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal does not say %q: %v", want, err)
		}
	}
	if l.released != l.taken {
		t.Errorf("lock taken %d, released %d", l.taken, l.released)
	}
}

func TestRefusedWhenTheLockIsNotFree(t *testing.T) {
	u := &unit{active: "active", pid: 10}
	l := &lockLog{err: errors.Join(cluster.ErrLockTimeout, errors.New("held by member m2"))}
	_, err := Run(context.Background(), u, opts(three(), l, false), logrus.New())
	if !errors.Is(err, ErrNotRestarted) || u.restarts != 0 || !strings.Contains(err.Error(), "held by member m2") {
		t.Fatalf("%v, %d restarts", err, u.restarts)
	}
}

func TestRefusedWhenTheClusterDoesNotAnswer(t *testing.T) {
	f := three()
	f.Err = errors.New("context deadline exceeded")
	u := &unit{active: "active", pid: 10}
	_, err := Run(context.Background(), u, opts(f, &lockLog{}, false), logrus.New())
	if !errors.Is(err, ErrNotRestarted) || u.restarts != 0 || !strings.Contains(err.Error(), "does not answer") {
		t.Fatalf("%v, %d restarts", err, u.restarts)
	}
}

func TestRefusedForAMemberTheClusterDoesNotHave(t *testing.T) {
	u := &unit{active: "active", pid: 10}
	o := opts(three(), &lockLog{}, false)
	o.Name = "m9"
	_, err := Run(context.Background(), u, o, logrus.New())
	if !errors.Is(err, ErrNotRestarted) || u.restarts != 0 || !strings.Contains(err.Error(), "no member named m9 (members: m1, m2, m3)") {
		t.Fatalf("%v, %d restarts", err, u.restarts)
	}
}

func TestNothingToRestart(t *testing.T) {
	u, l := &unit{active: "inactive"}, &lockLog{}
	res, err := Run(context.Background(), u, opts(three(), l, false), logrus.New())
	if err != nil || res.Restarted || u.restarts != 0 || l.taken != 0 || !strings.Contains(res.Skipped, "inactive") {
		t.Fatalf("a stopped unit stays stopped (try-restart): %+v, %v", res, err)
	}
}

func TestASingleMemberRestartsWithoutTheLock(t *testing.T) {
	f := &clustertest.Membership{List: []cluster.Member{{ID: 1, Name: "m1", ClientURLs: []string{"http://m1:2379"}}}}
	u, l := &unit{active: "active", pid: 10}, &lockLog{}
	res, err := Run(context.Background(), u, opts(f, l, false), logrus.New())
	if err != nil || !res.Restarted || l.taken != 0 {
		t.Fatalf("%+v, %v, lock taken %d", res, err, l.taken)
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	u, l := &unit{active: "active", pid: 10}, &lockLog{}
	o := opts(three(), l, true)
	res, err := Run(context.Background(), u, o, logrus.New())
	if err != nil || res.Restarted || u.restarts != 0 || l.taken != 0 {
		t.Fatalf("%+v, %v, %d restarts, lock taken %d", res, err, u.restarts, l.taken)
	}
	if a := o.Plan.Actions(); len(a) != 1 || !strings.HasPrefix(a[0].What, "restart etcd.service") {
		t.Errorf("the dry run should show the restart: %+v", a)
	}
	// The quorum check runs in a dry run too.
	if _, err := Run(context.Background(), u, opts(three("m2"), l, true), logrus.New()); !errors.Is(err, ErrNotRestarted) {
		t.Errorf("dry run with quorum at risk: %v", err)
	}
}

func TestSettings(t *testing.T) {
	dir := t.TempDir()
	f := host.LocalFS{Root: dir, IgnoreOwner: true}
	write := func(p, s string) {
		if _, err := f.WriteFile(p, []byte(s), 0o644, "", ""); err != nil {
			t.Fatal(err)
		}
	}
	write("/etc/etcd/etcd.conf", "ETCD_NAME=default\nETCD_ADVERTISE_CLIENT_URLS=https://10.0.0.1:2379\nETCD_TRUSTED_CA_FILE=/p/ca.crt\n")
	write("/etc/etcd/node/etcd.conf", "ETCD_NAME=etcd1\n")
	s, err := ReadSettings(f, []string{"/etc/etcd/etcd.conf", "/etc/etcd/node/etcd.conf"})
	if err != nil || s.Name != "etcd1" || strings.Join(s.Endpoints, ",") != "https://10.0.0.1:2379" || s.CA != "/p/ca.crt" {
		t.Fatalf("without etcdctl.env, the member's own URLs: %+v, %v", s, err)
	}
	write("/etc/etcd/etcdctl.env", "ETCDCTL_ENDPOINTS=https://a:2379,https://b:2379\nETCDCTL_CACERT=/etc/etcd/pki/ca.crt\nETCDCTL_CERT=/c\nETCDCTL_KEY=/k\n")
	s, err = ReadSettings(f, []string{"/etc/etcd/node/etcd.conf"})
	if err != nil || s.Name != "etcd1" || len(s.Endpoints) != 2 || s.CA != "/etc/etcd/pki/ca.crt" || s.Key != "/k" {
		t.Fatalf("with etcdctl.env: %+v, %v", s, err)
	}
	write("/etc/etcd/etcdctl.env", "ETCDCTL_ENDPOINTS='unclosed\n")
	if _, err := ReadSettings(f, nil); err == nil || !strings.Contains(err.Error(), "etcdctl.env") {
		t.Fatalf("a broken etcdctl.env must be named: %v", err)
	}
}

func TestEnvironmentFiles(t *testing.T) {
	out := "EnvironmentFiles=/etc/etcd/etcd.conf (ignore_errors=no)\nEnvironmentFiles=/etc/etcd/node/etcd.conf (ignore_errors=yes)\n"
	if got := strings.Join(parseEnvironmentFiles(out), " "); got != "/etc/etcd/etcd.conf /etc/etcd/node/etcd.conf" {
		t.Fatalf("got %q", got)
	}
	if got := parseEnvironmentFiles("EnvironmentFiles=\n"); len(got) != 0 {
		t.Fatalf("a unit without environment files: %q", got)
	}
}

// A lock lost before the restart (its lease expired while the quorum was
// checked) stops it: another member may be restarting.
func TestNotRestartedWhenTheLockIsLost(t *testing.T) {
	u, l := &unit{active: "active", pid: 10}, &lockLog{lost: cluster.ErrLockLost}
	_, err := Run(context.Background(), u, opts(three(), l, false), logrus.New())
	if !errors.Is(err, ErrNotRestarted) || !strings.Contains(err.Error(), cluster.ErrLockLost.Error()) || u.restarts != 0 {
		t.Fatalf("%v, %d restarts", err, u.restarts)
	}
}
