package node

import (
	"context"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcd-appliance/appliance/internal/discovery"
	"github.com/etcd-appliance/appliance/internal/dnstest"
	"github.com/etcd-appliance/appliance/internal/etcdtest"
)

func mustURLs(t *testing.T, ss ...string) []url.URL {
	var us []url.URL
	for _, s := range ss {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		us = append(us, *u)
	}
	return us
}

// The wait checks what etcd will look up, as etcd matches it: by the
// address a target resolves to, not by its spelling.
func TestSRVWaiting(t *testing.T) {
	// local=: the server answers for these domains, as an authoritative
	// one does ("no such name" rather than a refusal).
	const records = `
local=/e.test/none.test/plain.test/
srv-host=_etcd-server-ssl._tcp.e.test,n0.e.test,2380,0,0
srv-host=_etcd-server-ssl._tcp.e.test,n1.e.test,2380,0,0
srv-host=_etcd-server._tcp.plain.test,n0.e.test,2380,0,0
host-record=n0.e.test,127.0.0.10
host-record=N1.e.test,127.0.0.11
host-record=alias.e.test,127.0.0.11
host-record=n2.e.test,127.0.0.12
`
	res := dnstest.Dnsmasq(t, []byte(records))
	cases := []struct {
		name, domain, service, apurl string
		want                         string // "" = nothing to wait for
	}{
		{"listed", "e.test", "", "https://n0.e.test:2380", ""},
		{"listed by another name of its address", "e.test", "", "https://alias.e.test:2380", ""},
		{"listed by address", "e.test", "", "https://127.0.0.11:2380", ""},
		{"not listed", "e.test", "", "https://n2.e.test:2380",
			"waiting for DNS SRV records: _etcd-server-ssl._tcp.e.test lists n0.e.test:2380, n1.e.test:2380 but not this member m (https://n2.e.test:2380); publish the records"},
		{"other port", "e.test", "", "https://n0.e.test:2390", "but not this member m (https://n0.e.test:2390)"},
		{"no records", "none.test", "", "https://n0.e.test:2380",
			"waiting for DNS SRV records: _etcd-server-ssl._tcp.none.test does not resolve (no such name); publish the records `etcd-installer render` writes"},
		{"service name", "e.test", "dc1", "https://n0.e.test:2380", "_etcd-server-ssl-dc1._tcp.e.test does not resolve"},
		{"plain text looks up the plain name", "plain.test", "", "http://n0.e.test:2380", ""},
		{"TLS does not take the plain name", "plain.test", "", "https://n0.e.test:2380", "_etcd-server-ssl._tcp.plain.test lists n0.e.test:2380 but not this member m"},
		{"every advertised URL must be listed", "e.test", "", "https://n0.e.test:2380,https://n2.e.test:2380", "but not this member m (https://n2.e.test:2380)"},
		{"own name unknown", "e.test", "", "https://n9.e.test:2380",
			"waiting for DNS: n9.e.test:2380, this member's advertised peer address, does not resolve (no such name)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			got := srvWaiting(ctx, res, "m", tc.domain, tc.service, mustURLs(t, strings.Split(tc.apurl, ",")...))
			if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// srvMember is the validated configuration of a new member n0 of a
// dns-srv cluster of domain e.test, advertising peerURL, on loopback ports.
func srvMember(t *testing.T, peerURL string, env []string) *Config {
	t.Helper()
	ports := etcdtest.FreePorts(t, 2)
	c, err := Parse([]string{"--name", "n0", "--data-dir", filepath.Join(t.TempDir(), "n0"),
		"--discovery-srv", "e.test", "--initial-advertise-peer-urls", peerURL,
		"--listen-peer-urls", "http://127.0.0.1:" + itoa(ports[0]),
		"--listen-client-urls", "http://127.0.0.1:" + itoa(ports[1]), "--advertise-client-urls", "http://127.0.0.1:" + itoa(ports[1]),
		"--log-level", "error"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

type statusRecorder struct {
	mu  sync.Mutex
	all []string
}

func (s *statusRecorder) Notify(state string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.all = append(s.all, state)
	return nil
}

func (s *statusRecorder) find(prefix string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.all {
		if strings.HasPrefix(st, prefix) {
			return st
		}
	}
	return ""
}

// A new member whose SRV records are missing waits, saying so, where etcd
// would fail at once and be restarted by systemd every few seconds; asked
// to stop, it stops cleanly.
func TestWaitsForSRVRecords(t *testing.T) {
	res := dnstest.Dnsmasq(t, []byte("local=/e.test/\nhost-record=n0.e.test,127.0.0.10\n"))
	c := srvMember(t, "http://n0.e.test:2380", nil)
	rec := &statusRecorder{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Run(ctx, c, RunOptions{Notifier: rec, Tick: 50 * time.Millisecond, DNS: res}) }()
	const want = "STATUS=waiting for DNS SRV records: _etcd-server._tcp.e.test does not resolve (no such name); publish the records"
	if !etcdtest.Eventually(10*time.Second, 20*time.Millisecond, func() bool { return rec.find(want) != "" }) {
		t.Fatalf("no STATUS %q in %q", want, rec.all)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("stopped while waiting: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the stop")
	}
	if rec.find("STOPPING=1\nSTATUS=stopping: interrupted while waiting for DNS SRV records: ") == "" {
		t.Errorf("no STOPPING and stopping STATUS: %q", rec.all)
	}
}

// v3 discovery through a real discovery service: a member started before
// the size key is set waits for it (etcd would fail at once); once it is
// set the member bootstraps; a member that comes after the token's places
// are taken is refused with the cause and the configuration exit code,
// which systemd does not restart.
func TestDiscoveryBootstrap(t *testing.T) {
	svc := etcdtest.NewCluster(t, 1)
	svc.Start()
	svc.WaitReady(30 * time.Second)
	cli := etcdtest.Client(t, svc.Endpoints())
	const token = "tok-disc-1"

	member := func(name string) (*etcdtest.Member, *etcdtest.NotifySocket) {
		ports := etcdtest.FreePorts(t, 2)
		peer, client := "http://127.0.0.1:"+itoa(ports[0]), "http://127.0.0.1:"+itoa(ports[1])
		m := etcdtest.NewMember(t, name, []string{"--name", name, "--data-dir", filepath.Join(t.TempDir(), name),
			"--discovery-endpoints", strings.Join(svc.Endpoints(), ","), "--discovery-token", token,
			"--initial-advertise-peer-urls", peer, "--listen-peer-urls", peer,
			"--listen-client-urls", client, "--advertise-client-urls", client, "--log-outputs", "stderr"}, nil)
		m.ClientURL, m.PeerURL = client, peer
		sock := etcdtest.NewNotifySocket(t, nil)
		m.Env = append(m.Env, sock.Env())
		return m, sock
	}
	m0, sock0 := member("d0")
	m0.Start()
	if !sock0.WaitFor(15*time.Second, hasPrefix("STATUS=waiting for the discovery service at "+svc.Members[0].ClientURL+
		": this cluster's size key is not set; run the rendered _cluster/discovery.sh once")) {
		t.Fatalf("no STATUS naming the missing size key: %q", sock0.Statuses())
	}
	for _, s := range sock0.Statuses() {
		if strings.Contains(s, token) {
			t.Errorf("STATUS names the token: %q", s)
		}
	}
	if !m0.Running() {
		t.Fatal("the member exited instead of waiting")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, discovery.SizeKey(token), "2"); err != nil {
		t.Fatal(err)
	}
	// Registered, it waits for the second, and says so.
	if !sock0.WaitFor(15*time.Second, hasPrefix("STATUS=bootstrapping through the discovery service at "+svc.Members[0].ClientURL+
		": 1 of 2 members registered; the others must be started too")) {
		t.Fatalf("no STATUS counting the registered members: %q", sock0.Statuses())
	}
	m1, _ := member("d1")
	m1.Start()
	m0.WaitReady(30 * time.Second)
	m1.WaitReady(30 * time.Second)
	st, err := discovery.Read(ctx, cli, token)
	if err != nil || st.Size != 2 || st.Registered != 2 || !st.Full() {
		t.Fatalf("discovery state %+v, %v: want 2 of 2", st, err)
	}
	// doctor finds a member's registration where etcd made it.
	key, err := discovery.MemberKey(token, "d0", []string{m0.PeerURL})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := cli.Get(ctx, key); err != nil || resp.Count != 1 {
		t.Errorf("d0 is not registered at %s: %v", key, err)
	}

	m2, sock2 := member("d2")
	m2.Start()
	code, exited := m2.Wait(30 * time.Second)
	if !exited || code != ExitConfig {
		t.Fatalf("a member after the token is full: exited=%v code=%d, want %d\n%s", exited, code, ExitConfig, m2.Log())
	}
	const want = "STATUS=refused by the discovery service: the cluster is full: all 2 places of this cluster's token at "
	if !sock2.WaitFor(time.Second, hasPrefix(want)) {
		t.Errorf("no STATUS %q: %q", want, sock2.Statuses())
	}
	if !strings.Contains(m2.Log(), "move the data dir etcd began aside (mv ") || !strings.Contains(m2.Log(), "etcd-installer member add") {
		t.Errorf("the error does not say what to do instead:\n%s", m2.Log())
	}
	if strings.Contains(m2.Log(), token) {
		t.Errorf("the refused member's output names the token")
	}
}

// Only a member that has not joined its cluster waits: one restarting on
// its data, or joining a running cluster through v3 discovery (which etcd
// does not use then), starts at once.
func TestBootstrapWaitOnlyForNewMembers(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		wal  bool
		want bool
	}{
		{"dns-srv, new", []string{"--discovery-srv", "e.test"}, false, true},
		{"dns-srv, joining", []string{"--discovery-srv", "e.test", "--initial-cluster-state", "existing"}, false, true},
		{"dns-srv, restart", []string{"--discovery-srv", "e.test"}, true, false},
		{"discovery, new", []string{"--discovery-endpoints", "http://127.0.0.1:1", "--discovery-token", "t"}, false, true},
		{"discovery, joining", []string{"--discovery-endpoints", "http://127.0.0.1:1", "--discovery-token", "t", "--initial-cluster-state", "existing"}, false, false},
		{"discovery, restart", []string{"--discovery-endpoints", "http://127.0.0.1:1", "--discovery-token", "t"}, true, false},
		{"static", nil, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "m")
			if tc.wal {
				os.MkdirAll(filepath.Join(dir, "member", "wal"), 0o700)
				os.WriteFile(filepath.Join(dir, "member", "wal", "0000000000000000-0000000000000000.wal"), []byte("x"), 0o600)
			}
			c, err := Parse(append([]string{"--name", "m", "--data-dir", dir, "--initial-advertise-peer-urls", "http://127.0.0.1:2380"}, tc.args...), nil)
			if err != nil {
				t.Fatal(err)
			}
			r := &runner{c: c}
			r.kind = kindOf(c.Etcd)
			if got := r.bootstrapWait() != nil; got != tc.want {
				t.Errorf("waits: %v, want %v", got, tc.want)
			}
		})
	}
}

// Under systemd the wait counts towards the start timeout: a member whose
// records never come gives up, saying what it waited for.
func TestBootstrapWaitGivesUp(t *testing.T) {
	res := dnstest.Dnsmasq(t, []byte("local=/e.test/\n"))
	c := srvMember(t, "http://127.0.0.1:2380", []string{"ETCD_START_TIMEOUT=1s"})
	rec := &statusRecorder{}
	done := make(chan error, 1)
	go func() {
		done <- Run(context.Background(), c, RunOptions{Notifier: rec, Tick: 50 * time.Millisecond, DNS: res, UnderSystemd: true})
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrStartTimeout) {
			t.Fatalf("got %v, want the start timeout", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not give up")
	}
	if rec.find("STATUS=gave up after 1s (ETCD_START_TIMEOUT): waiting for DNS SRV records: _etcd-server._tcp.e.test does not resolve") == "" {
		t.Errorf("no STATUS naming what it gave up on: %q", rec.all)
	}
}

// A member whose data dir is gone while its cluster still has it (a new
// disk): etcd refuses it ("has already been bootstrapped"), and systemd
// would restart it every 5 s forever; it exits 81, naming the fix.
func TestLostDataExitCode(t *testing.T) {
	c := etcdtest.NewCluster(t, 3)
	c.Start()
	c.WaitReady(30 * time.Second)
	m := c.Members[2]
	m.Kill()
	if err := os.RemoveAll(m.DataDir); err != nil {
		t.Fatal(err)
	}
	sock := etcdtest.NewNotifySocket(t, nil)
	m.Env = append(m.Env, sock.Env())
	m.Start()
	code, exited := m.Wait(60 * time.Second)
	if !exited || code != ExitLostData {
		t.Fatalf("exited=%v code=%d, want %d\n%s", exited, code, ExitLostData, m.Log())
	}
	const want = "STATUS=member lost its data: the cluster already has member m2, but its data dir "
	if !sock.WaitFor(time.Second, hasPrefix(want)) {
		t.Errorf("no STATUS %q: %q", want, sock.Statuses())
	}
	if !strings.Contains(m.Log(), "etcd-installer member replace INVENTORY m2") {
		t.Errorf("the error does not name the fix:\n%s", m.Log())
	}
}
