package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/etcd-appliance/appliance/internal/etcdtest"
)

// readyProbe records, at the moment READY=1 arrives, whether the member's
// /readyz already answers 200.
type readyProbe struct {
	url        string
	readyCount atomic.Int32
	readyzOK   atomic.Bool
}

func (p *readyProbe) hook(n etcdtest.Notification) {
	for _, line := range strings.Split(n.State, "\n") {
		if line == "READY=1" {
			p.readyCount.Add(1)
			p.readyzOK.Store(etcdtest.Ready(p.url))
		}
	}
}

func notified(t *testing.T, m *etcdtest.Member) (*etcdtest.NotifySocket, *readyProbe) {
	t.Helper()
	p := &readyProbe{url: m.ClientURL}
	s := etcdtest.NewNotifySocket(t, p.hook)
	m.Env = append(m.Env, s.Env())
	return s, p
}

func hasPrefix(prefix string) func(string) bool {
	return func(l string) bool { return strings.HasPrefix(l, prefix) }
}

func TestNotifyLifecycle(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	m := c.Members[0]
	sock, probe := notified(t, m)
	m.Start()
	if !sock.WaitFor(20*time.Second, func(l string) bool { return l == "READY=1" }) {
		t.Fatalf("no READY=1; statuses: %q", sock.Statuses())
	}
	if !probe.readyzOK.Load() {
		t.Error("READY=1 arrived while /readyz did not answer 200")
	}
	st := sock.Statuses()
	order := []string{"starting m0: opening backend", "waiting for quorum", "serving: m0"}
	i := 0
	for _, s := range st {
		if i < len(order) && strings.HasPrefix(s, order[i]) {
			i++
		}
	}
	if i != len(order) {
		t.Errorf("STATUS sequence %q lacks %q in order", st, order)
	}
	if !sock.WaitFor(time.Second, hasPrefix("EXTEND_TIMEOUT_USEC=")) {
		t.Error("no EXTEND_TIMEOUT_USEC during start-up")
	}

	cli := etcdtest.Client(t, c.Endpoints())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}

	m.Signal(syscall.SIGTERM)
	code, exited := m.Wait(20 * time.Second)
	if !exited || code != ExitOK {
		t.Fatalf("after SIGTERM: exited=%v code=%d, want exit 0", exited, code)
	}
	if sock.Count("STOPPING=1") != 1 {
		t.Errorf("STOPPING=1 sent %d times", sock.Count("STOPPING=1"))
	}
	if !sock.WaitFor(time.Second, hasPrefix("STATUS=stopping")) {
		t.Error("no stopping STATUS")
	}
	if probe.readyCount.Load() != 1 {
		t.Errorf("READY=1 sent %d times", probe.readyCount.Load())
	}
}

func TestReadyWaitsForQuorum(t *testing.T) {
	c := etcdtest.NewCluster(t, 3)
	var socks []*etcdtest.NotifySocket
	var probes []*readyProbe
	for _, m := range c.Members {
		s, p := notified(t, m)
		socks = append(socks, s)
		probes = append(probes, p)
	}
	c.Members[0].Start()
	if !socks[0].WaitFor(20*time.Second, hasPrefix("STATUS=waiting for quorum: 2 of 3 members needed; 0/2 peers reachable, waiting for m1, m2")) {
		t.Fatalf("no waiting STATUS naming the peers: %q", socks[0].Statuses())
	}
	// Without peers there is no quorum: READY must not come. This bounded
	// wait is the assertion, not a readiness stand-in.
	if socks[0].WaitFor(3*time.Second, func(l string) bool { return l == "READY=1" }) {
		t.Fatal("READY=1 without quorum")
	}
	if !socks[0].WaitFor(time.Second, func(l string) bool {
		return strings.HasPrefix(l, "STATUS=waiting for quorum") && strings.HasSuffix(l, "(a new cluster: its other members must be started too)")
	}) {
		t.Errorf("the first start of a new cluster does not say its other members must start: %q", socks[0].Statuses())
	}
	c.Members[1].Start()
	c.Members[2].Start()
	for i, s := range socks {
		if !s.WaitFor(30*time.Second, func(l string) bool { return l == "READY=1" }) {
			t.Fatalf("m%d: no READY=1; statuses %q", i, s.Statuses())
		}
		if !probes[i].readyzOK.Load() {
			t.Errorf("m%d: READY=1 before /readyz answered 200", i)
		}
	}

	// Stopping: only the leader hands over leadership. Then a member
	// restarting with its data waits to rejoin, not for a new cluster.
	leader, follower := -1, -1
	etcdtest.Eventually(20*time.Second, 50*time.Millisecond, func() bool {
		leader, follower = -1, -1
		for i, s := range socks {
			st := s.Statuses()
			switch last := st[len(st)-1]; {
			case strings.Contains(last, ") leader, term"):
				leader = i
			case strings.Contains(last, ") follower of "):
				follower = i
			}
		}
		return leader >= 0 && follower >= 0
	})
	if leader < 0 || follower < 0 {
		t.Fatalf("no leader and follower in the STATUS lines: %q %q %q", socks[0].Statuses(), socks[1].Statuses(), socks[2].Statuses())
	}
	stop := func(i int) []string {
		t.Helper()
		c.Members[i].Signal(syscall.SIGTERM)
		if _, exited := c.Members[i].Wait(20 * time.Second); !exited {
			t.Fatalf("m%d did not stop", i)
		}
		var stopping []string
		for _, st := range socks[i].Statuses() {
			if strings.HasPrefix(st, "stopping") {
				stopping = append(stopping, st)
			}
		}
		return stopping
	}
	if st := stop(follower); len(st) == 0 || strings.Contains(strings.Join(st, " "), "leadership") {
		t.Errorf("follower m%d stopping: %q, want a stopping STATUS without leadership", follower, st)
	}
	if st := stop(leader); len(st) == 0 || !strings.Contains(st[0], "hands over leadership") {
		t.Errorf("leader m%d stopping: %q, want it to hand over leadership", leader, st)
	}
	before := len(socks[follower].Statuses())
	c.Members[follower].Start()
	if !socks[follower].WaitFor(30*time.Second, func(l string) bool {
		return strings.HasPrefix(l, "STATUS=waiting for quorum") && strings.HasSuffix(l, "(started on its existing data: the members it waits for must be running)")
	}) {
		t.Errorf("m%d restarting with its data: %q, want it to say it rejoins", follower, socks[follower].Statuses())
	}
	if after := socks[follower].Statuses()[before:]; strings.Contains(strings.Join(after, "\n"), "(a new cluster") {
		t.Errorf("a restart calls the cluster new: %q", after)
	}
}

func TestWatchdog(t *testing.T) {
	c := etcdtest.NewCluster(t, 3)
	m := c.Members[0]
	sock, _ := notified(t, m)
	m.Env = append(m.Env, "WATCHDOG_USEC=900000")
	c.Start()
	c.WaitReady(30 * time.Second)
	pings := func() int { return sock.Count("WATCHDOG=1") }

	if !etcdtest.Eventually(5*time.Second, 50*time.Millisecond, func() bool { return pings() >= 3 }) {
		t.Fatalf("watchdog pings: %d after 5s, want >= 3 (every 300ms)", pings())
	}

	m.Signal(syscall.SIGSTOP)
	frozen := pings()
	// Frozen for 2 s (more than two watchdog periods): no ping may arrive.
	if etcdtest.Eventually(2*time.Second, 50*time.Millisecond, func() bool { return pings() > frozen+1 }) {
		t.Errorf("watchdog pings continued while the process was stopped: %d -> %d", frozen, pings())
	}
	m.Signal(syscall.SIGCONT)
	resumed := pings()
	if !etcdtest.Eventually(5*time.Second, 50*time.Millisecond, func() bool { return pings() >= resumed+3 }) {
		t.Fatalf("watchdog did not resume after SIGCONT")
	}

	// Quorum loss must not stop the pings.
	c.Members[1].Kill()
	c.Members[2].Kill()
	if !sock.WaitFor(30*time.Second, hasPrefix("STATUS=serving? m0")) {
		t.Fatalf("no quorum-lost STATUS: %q", sock.Statuses())
	}
	before := pings()
	if !etcdtest.Eventually(5*time.Second, 50*time.Millisecond, func() bool { return pings() >= before+5 }) {
		t.Errorf("watchdog stopped after quorum loss: %d -> %d in 5s", before, pings())
	}
}

func TestRemovedMember(t *testing.T) {
	c := etcdtest.NewCluster(t, 3)
	m := c.Members[2]
	sock, _ := notified(t, m)
	c.Start()
	c.WaitReady(30 * time.Second)

	cli := etcdtest.Client(t, c.Endpoints(c.Members[0], c.Members[1]))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var id uint64
	for _, mm := range list.Members {
		if mm.Name == m.Name {
			id = mm.ID
		}
	}
	// etcd refuses reconfiguration until the remaining members have been
	// connected for a while (ErrUnhealthy): retry on exactly that.
	var rerr error
	etcdtest.Eventually(20*time.Second, 200*time.Millisecond, func() bool {
		_, rerr = cli.MemberRemove(ctx, id)
		return !errors.Is(rerr, rpctypes.ErrUnhealthy)
	})
	if rerr != nil {
		t.Fatal(rerr)
	}
	code, exited := m.Wait(30 * time.Second)
	if !exited || code != ExitRemoved {
		t.Fatalf("removed member: exited=%v code=%d, want %d", exited, code, ExitRemoved)
	}
	if !sock.WaitFor(time.Second, hasPrefix("STATUS=removed: the cluster removed member m2")) {
		t.Errorf("no removed STATUS: %q", sock.Statuses())
	}

	// Restarted on the same data dir, the peers tell it it was removed.
	m2 := etcdtest.NewMember(t, "m2-again", m.Args, nil)
	sock2 := etcdtest.NewNotifySocket(t, nil)
	m2.Env = []string{sock2.Env()}
	m2.Start()
	code, exited = m2.Wait(60 * time.Second)
	if !exited || code != ExitRemoved {
		t.Fatalf("restarted removed member: exited=%v code=%d, want %d\n%s", exited, code, ExitRemoved, m2.Log())
	}
}

func TestStartTimeout(t *testing.T) {
	c := etcdtest.NewCluster(t, 3)
	m := c.Members[0]
	sock, _ := notified(t, m)
	m.Env = append(m.Env, "ETCD_START_TIMEOUT=3s")
	start := time.Now()
	m.Start()
	code, exited := m.Wait(30 * time.Second)
	if !exited || code != ExitFailure {
		t.Fatalf("exited=%v code=%d, want exit %d after the start timeout", exited, code, ExitFailure)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("gave up after %s, want about 3s", took)
	}
	st := sock.Statuses()
	if len(st) == 0 || !strings.HasPrefix(st[len(st)-1], "gave up after 3s (ETCD_START_TIMEOUT): waiting for quorum") {
		t.Errorf("last STATUS %q, want a 'gave up' naming the wait", st)
	}
	if n := len(filter(sock.Assignments(), hasPrefix("EXTEND_TIMEOUT_USEC="))); n < 2 {
		t.Errorf("EXTEND_TIMEOUT_USEC sent %d times in 3s, want >= 2", n)
	}
}

func filter(ss []string, f func(string) bool) []string {
	var out []string
	for _, s := range ss {
		if f(s) {
			out = append(out, s)
		}
	}
	return out
}

// notADir is a regular file: no directory can be made under it, not even
// by root.
func notADir(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigErrorExitCode(t *testing.T) {
	cases := []struct {
		args, env []string
		want      string
	}{
		{env: []string{"ETCD_NAEM=x"}, want: "ETCD_NAEM"},
		{args: []string{"--enable-v2"}, want: "v2 API was removed"},
		{env: []string{"ETCD_PROXY=on"}, want: "grpc-proxy"},
		// These failed inside etcd's start-up with exit status 1, so
		// systemd restarted the member every 5 s forever.
		{env: []string{"ETCD_INITIAL_CLUSTER=bad=not a url"}, want: "ETCD_INITIAL_CLUSTER"},
		{args: []string{"--data-dir=" + notADir(t) + "/data"}, want: "cannot create the data dir"},
	}
	for _, tc := range cases {
		m := etcdtest.NewMember(t, "bad", tc.args, tc.env)
		sock := etcdtest.NewNotifySocket(t, nil)
		m.Env = append(m.Env, sock.Env())
		m.Start()
		code, exited := m.Wait(10 * time.Second)
		if !exited || code != ExitConfig {
			t.Errorf("%q %q: exited=%v code=%d, want %d", tc.args, tc.env, exited, code, ExitConfig)
			continue
		}
		if !strings.Contains(m.Log(), tc.want) {
			t.Errorf("%q %q: output lacks %q:\n%s", tc.args, tc.env, tc.want, m.Log())
		}
		if !sock.WaitFor(time.Second, hasPrefix("STATUS=configuration error:")) {
			t.Errorf("%q %q: no configuration error STATUS", tc.args, tc.env)
		}
	}
}

func TestSecretsNotLogged(t *testing.T) {
	ports := etcdtest.FreePorts(t, 3)
	const token, password = "tok-3f9a1c", "pw-7d2e4b"
	m := etcdtest.NewMember(t, "secret", []string{
		"--name", "secret", "--data-dir", t.TempDir() + "/d",
		"--listen-client-urls", fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		"--advertise-client-urls", fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
		"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
		"--log-outputs", "stderr",
	}, []string{
		// Nothing listens there: discovery retries, logging its settings.
		fmt.Sprintf("ETCD_DISCOVERY_ENDPOINTS=http://127.0.0.1:%d", ports[2]),
		"ETCD_DISCOVERY_TOKEN=" + token,
		"ETCD_DISCOVERY_USER=alice:" + password,
	})
	m.Start()
	if !etcdtest.Eventually(20*time.Second, 50*time.Millisecond, func() bool {
		return strings.Contains(m.Log(), `"discovery-token":"[redacted]"`) && strings.Contains(m.Log(), "starting an etcd server")
	}) {
		t.Fatalf("etcd did not log its discovery settings:\n%s", m.Log())
	}
	m.Kill()
	for _, secret := range []string{token, password} {
		if strings.Contains(m.Log(), secret) {
			t.Errorf("secret %q appears in the log", secret)
		}
	}
}

func TestConfigStylesStart(t *testing.T) {
	t.Run("unit Environment=", func(t *testing.T) {
		p := etcdtest.FreePorts(t, 3)
		env := unitEnvironment(t, fill(t, "testdata/styles/unit.service", map[string]string{
			"NAME": "etcd0", "DATA": t.TempDir() + "/etcd0", "IP1": "127.0.0.1", "IP2": "127.0.0.2",
			"CLIENT": itoa(p[0]), "PEER1": itoa(p[1]), "PEER2": itoa(p[2]),
		}))
		m := etcdtest.NewMember(t, "etcd0", nil, env)
		m.ClientURL = fmt.Sprintf("http://127.0.0.1:%d", p[0])
		m.Start()
		m.WaitReady(20 * time.Second)
		putGet(t, []string{m.ClientURL})
	})
	t.Run("CentOS env file", func(t *testing.T) {
		p := etcdtest.FreePorts(t, 2)
		env := envFileEnvironment(t, fill(t, "testdata/styles/centos-etcd.conf", map[string]string{
			"NAME": "etcd0", "DATA": t.TempDir() + "/etcd0", "IP1": "127.0.0.1",
			"CLIENT": itoa(p[0]), "PEER1": itoa(p[1]),
		}))
		m := etcdtest.NewMember(t, "etcd0", nil, env)
		m.ClientURL = fmt.Sprintf("http://127.0.0.1:%d", p[0])
		m.Start()
		m.WaitReady(20 * time.Second)
		putGet(t, []string{m.ClientURL})
	})
	t.Run("Procfile flags", func(t *testing.T) {
		p := etcdtest.FreePorts(t, 6)
		cmds := procfileCommands(t, fill(t, "testdata/styles/Procfile", map[string]string{
			"C1": itoa(p[0]), "C2": itoa(p[1]), "C3": itoa(p[2]),
			"P1": itoa(p[3]), "P2": itoa(p[4]), "P3": itoa(p[5]), "DATA": t.TempDir(),
		}))
		var eps []string
		var ms []*etcdtest.Member
		for i, name := range []string{"etcd1", "etcd2", "etcd3"} {
			m := etcdtest.NewMember(t, name, cmds[name], nil)
			m.ClientURL = fmt.Sprintf("http://127.0.0.1:%d", p[i])
			m.Start()
			ms = append(ms, m)
			eps = append(eps, m.ClientURL)
		}
		for _, m := range ms {
			m.WaitReady(30 * time.Second)
			if !strings.Contains(m.Log(), "--log-output is the pre-3.7 spelling of --log-outputs") {
				t.Errorf("%s: no translation warning for --log-output", m.Name)
			}
		}
		putGet(t, eps)
	})
}

func putGet(t *testing.T, eps []string) {
	t.Helper()
	cli := etcdtest.Client(t, eps)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "style", "works"); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Get(ctx, "style")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "works" {
		t.Fatalf("get: %v %v", resp, err)
	}
}

// writer puts sequential keys until stopped and remembers which ones the
// cluster acknowledged.
type writer struct {
	cli   *clientv3.Client
	mu    sync.Mutex
	acked []string
	errs  []error
	n     int
}

func (w *writer) once() error {
	w.mu.Lock()
	w.n++
	key := fmt.Sprintf("w/%06d", w.n)
	w.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := w.cli.Put(ctx, key, key)
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.errs = append(w.errs, err)
		return err
	}
	w.acked = append(w.acked, key)
	return nil
}

func (w *writer) ackedCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

// clearUnavailable reports errors a client sees when the cluster has no
// quorum: each names the cause.
func clearUnavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, rpctypes.ErrTimeout) ||
		errors.Is(err, rpctypes.ErrNoLeader) || errors.Is(err, rpctypes.ErrTimeoutDueToLeaderFail) ||
		errors.Is(err, rpctypes.ErrTimeoutDueToConnectionLost) {
		return true
	}
	s, ok := status.FromError(err)
	return ok && (s.Code() == codes.Unavailable || s.Code() == codes.DeadlineExceeded)
}

func TestClusterFailover(t *testing.T) {
	c := etcdtest.NewCluster(t, 3)
	c.Start()
	c.WaitReady(30 * time.Second)
	w := &writer{cli: etcdtest.Client(t, c.Endpoints())}
	for range 20 {
		if err := w.once(); err != nil {
			t.Fatalf("healthy cluster: %v", err)
		}
	}

	leader := c.Leader(t)
	leader.Kill()
	before := w.ackedCount()
	if !etcdtest.Eventually(20*time.Second, 10*time.Millisecond, func() bool {
		_ = w.once()
		return w.ackedCount() >= before+20
	}) {
		t.Fatalf("writes did not continue after the leader was killed: %v", w.errs)
	}

	var second *etcdtest.Member
	for _, m := range c.Members {
		if m.Running() {
			second = m
			break
		}
	}
	second.Kill()
	failed := 0
	for range 3 {
		err := w.once()
		if err == nil {
			t.Fatal("a write succeeded with 1 of 3 members up")
		}
		if !clearUnavailable(err) {
			t.Errorf("write without quorum failed with an unclear error: %v", err)
		}
		failed++
	}

	// Restart both on their data dirs: the cluster recovers.
	leader.Start()
	second.Start()
	c.WaitReady(30 * time.Second)
	before = w.ackedCount()
	if !etcdtest.Eventually(20*time.Second, 10*time.Millisecond, func() bool {
		_ = w.once()
		return w.ackedCount() >= before+20
	}) {
		t.Fatalf("writes did not resume after recovery: %v", w.errs[len(w.errs)-1])
	}

	// Every acknowledged write is on every member. A linearizable read
	// through the member itself: it answers only once the member has
	// applied everything committed before the read (a serializable read
	// could be a follower's state a moment behind, and report the last
	// write as lost when it was only not applied yet).
	for _, m := range c.Members {
		cli := etcdtest.Client(t, []string{m.ClientURL})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := cli.Get(ctx, "w/", clientv3.WithPrefix())
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		have := map[string]bool{}
		for _, kv := range resp.Kvs {
			have[string(kv.Key)] = true
		}
		for _, k := range w.acked {
			if !have[k] {
				t.Errorf("%s: acknowledged key %s lost", m.Name, k)
			}
		}
	}
	t.Logf("acknowledged %d writes, %d failed without quorum", len(w.acked), failed)
}

func TestGRPCProxy(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	c.Start()
	c.WaitReady(20 * time.Second)
	p := etcdtest.FreePorts(t, 1)
	addr := fmt.Sprintf("127.0.0.1:%d", p[0])
	proxy := etcdtest.NewMember(t, "proxy", []string{"grpc-proxy", "start",
		"--endpoints", c.Members[0].ClientURL, "--listen-addr", addr, "--data-dir", t.TempDir()}, nil)
	proxy.ClientURL = "http://" + addr
	sock := etcdtest.NewNotifySocket(t, nil)
	proxy.Env = append(proxy.Env, sock.Env())
	proxy.Start()
	// Upstream's READY once it serves; ours the STATUS of what is behind.
	if !sock.WaitFor(20*time.Second, func(l string) bool { return l == "READY=1" }) {
		t.Fatalf("no READY=1 from the proxy: %q\n%s", sock.Assignments(), proxy.Log())
	}
	want := "STATUS=serving on " + addr + "; members answer"
	if !sock.WaitFor(20*time.Second, func(l string) bool { return l == want }) {
		t.Fatalf("no %q: %q", want, sock.Statuses())
	}
	// The members gone, the STATUS says so and the proxy keeps serving.
	c.Members[0].Signal(syscall.SIGKILL)
	c.Members[0].Wait(10 * time.Second)
	if !sock.WaitFor(30*time.Second, hasPrefix("STATUS=serving on "+addr+"; members do not answer the proxy: ")) {
		t.Fatalf("no STATUS about the members being down: %q", sock.Statuses())
	}
	c.Members[0].Start()
	if !etcdtest.Eventually(20*time.Second, 50*time.Millisecond, func() bool {
		cli := etcdtest.Client(t, []string{addr})
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := cli.Put(ctx, "via", "proxy")
		return err == nil
	}) {
		t.Fatalf("no put through the grpc-proxy:\n%s", proxy.Log())
	}
	putGet(t, []string{addr})
}

// A member waiting for its peers must stop promptly on SIGTERM: etcd's own
// Close would wait for client servers that never started.
func TestStopWhileWaitingForQuorum(t *testing.T) {
	c := etcdtest.NewCluster(t, 3)
	m := c.Members[0]
	sock, _ := notified(t, m)
	m.Start()
	if !sock.WaitFor(20*time.Second, hasPrefix("STATUS=waiting for quorum")) {
		t.Fatalf("no waiting STATUS: %q", sock.Statuses())
	}
	start := time.Now()
	m.Signal(syscall.SIGTERM)
	code, exited := m.Wait(15 * time.Second)
	if !exited || code != ExitOK {
		t.Fatalf("exited=%v code=%d, want exit 0", exited, code)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("stopping took %s", took)
	}
	if sock.Count("STOPPING=1") != 1 {
		t.Error("no STOPPING=1")
	}
}

func TestGateway(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	c.Start()
	c.WaitReady(20 * time.Second)
	p := etcdtest.FreePorts(t, 1)
	addr := fmt.Sprintf("127.0.0.1:%d", p[0])
	gw := etcdtest.NewMember(t, "gateway", []string{"gateway", "start",
		"--endpoints", strings.TrimPrefix(c.Members[0].ClientURL, "http://"), "--listen-addr", addr}, nil)
	gw.Start()
	if !etcdtest.Eventually(20*time.Second, 50*time.Millisecond, func() bool {
		cli := etcdtest.Client(t, []string{addr})
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := cli.Put(ctx, "via", "gateway")
		return err == nil
	}) {
		t.Fatalf("no put through the gateway:\n%s", gw.Log())
	}
}
