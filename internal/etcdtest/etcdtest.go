// Package etcdtest starts real etcd members, built from this repository,
// as separate processes on loopback ports, and listens on a real
// sd_notify socket. Integration tests across the repository share it.
package etcdtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// BinDir returns the directory holding the etcd multi-call binary and its
// etcdctl/etcdutl links: $APPLIANCE_BIN_DIR when set (make test sets it),
// otherwise a build of ./cmd/etcd with the Makefile's flags, done once per
// test process.
func BinDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("APPLIANCE_BIN_DIR"); d != "" {
		if _, err := os.Stat(filepath.Join(d, "etcd")); err != nil {
			t.Fatalf("APPLIANCE_BIN_DIR=%s has no etcd binary (run make build): %v", d, err)
		}
		return d
	}
	buildOnce.Do(func() {
		buildDir, buildErr = build()
	})
	if buildErr != nil {
		t.Fatalf("building etcd: %v", buildErr)
	}
	return buildDir
}

func build() (string, error) {
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	dir, err := os.MkdirTemp("", "etcd-appliance-bin-")
	if err != nil {
		return "", err
	}
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags", "-s -w", "-o", filepath.Join(dir, "etcd"), "./cmd/etcd")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%w: %s", err, out)
	}
	for _, l := range []string{"etcdctl", "etcdutl", "etcd-installer"} {
		if err := os.Symlink("etcd", filepath.Join(dir, l)); err != nil {
			return "", err
		}
	}
	return dir, nil
}

var (
	upstreamOnce sync.Once
	upstreamPath string
	upstreamErr  error
)

// UpstreamBinary returns upstream etcd's own main built from the same
// module version (a Go tool dependency in go.mod): $UPSTREAM_ETCD when set
// (make bench sets it), otherwise built once per test process.
func UpstreamBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("UPSTREAM_ETCD"); p != "" {
		return p
	}
	upstreamOnce.Do(func() {
		dir, err := os.MkdirTemp("", "etcd-upstream-")
		if err != nil {
			upstreamErr = err
			return
		}
		upstreamPath = filepath.Join(dir, "etcd")
		cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags", "-s -w", "-o", upstreamPath, "go.etcd.io/etcd/server/v3")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			upstreamErr = fmt.Errorf("%w: %s", err, out)
		}
	})
	if upstreamErr != nil {
		t.Fatalf("building upstream etcd: %v", upstreamErr)
	}
	return upstreamPath
}

// UseBinary makes every member run bin instead of this repository's etcd.
func (c *Cluster) UseBinary(bin string) {
	for _, m := range c.Members {
		m.bin = bin
	}
}

// FreePorts returns n distinct TCP ports that were free on 127.0.0.1.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// Member is one etcd process.
type Member struct {
	Name      string
	ClientURL string
	PeerURL   string
	DataDir   string
	// Args and Env are what the process is started with; Env is added to
	// a minimal environment (PATH, HOME), never the test's own.
	Args []string
	Env  []string

	bin  string
	t    testing.TB
	mu   sync.Mutex
	log  bytes.Buffer
	cmd  *exec.Cmd
	done chan struct{}
	code int
}

// Write collects the process output; it is safe for concurrent use.
func (m *Member) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.log.Write(p)
}

// Log returns everything the process wrote so far.
func (m *Member) Log() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.log.String()
}

// Cluster is a set of members on loopback.
type Cluster struct {
	Members []*Member
	Token   string
}

// NewCluster prepares (does not start) an n-member cluster with flags as
// etcd's own Procfile writes them.
func NewCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	return NewClusterIn(t, n, t.TempDir())
}

// NewClusterIn is NewCluster with the data dirs under dir.
func NewClusterIn(t testing.TB, n int, dir string) *Cluster {
	t.Helper()
	bin := filepath.Join(BinDir(t), "etcd")
	ports := FreePorts(t, 2*n)
	c := &Cluster{Token: fmt.Sprintf("etcdtest-%d", time.Now().UnixNano())}
	var initial []string
	for i := range n {
		m := &Member{
			Name:      fmt.Sprintf("m%d", i),
			ClientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[2*i]),
			PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1]),
			bin:       bin,
			t:         t,
		}
		m.DataDir = filepath.Join(dir, m.Name+".etcd")
		initial = append(initial, m.Name+"="+m.PeerURL)
		c.Members = append(c.Members, m)
	}
	for _, m := range c.Members {
		m.Args = []string{
			"--name", m.Name, "--data-dir", m.DataDir,
			"--listen-client-urls", m.ClientURL, "--advertise-client-urls", m.ClientURL,
			"--listen-peer-urls", m.PeerURL, "--initial-advertise-peer-urls", m.PeerURL,
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-token", c.Token, "--initial-cluster-state", "new",
			"--log-outputs", "stderr",
		}
	}
	return c
}

// NewMember prepares a process running the etcd binary with args and env.
func NewMember(t testing.TB, name string, args, env []string) *Member {
	t.Helper()
	return &Member{Name: name, Args: args, Env: env, bin: filepath.Join(BinDir(t), "etcd"), t: t}
}

// Start starts the process; it is killed when the test ends. A member
// whose process exited can be started again (same data dir, same flags).
func (m *Member) Start() {
	m.t.Helper()
	if m.Running() {
		m.t.Fatalf("%s is already running", m.Name)
	}
	first := m.cmd == nil
	cmd := exec.Command(m.bin, m.Args...)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "HOME=" + os.TempDir()}, m.Env...)
	cmd.Stdout = m
	cmd.Stderr = m
	if err := cmd.Start(); err != nil {
		m.t.Fatalf("starting %s: %v", m.Name, err)
	}
	m.cmd = cmd
	m.done = make(chan struct{})
	go func(done chan struct{}) {
		err := cmd.Wait()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			code = -1
		}
		m.mu.Lock()
		m.code = code
		m.mu.Unlock()
		close(done)
	}(m.done)
	if !first {
		return
	}
	m.t.Cleanup(func() {
		m.Kill()
		if m.t.Failed() {
			m.t.Logf("--- %s output (last 6000 bytes):\n%s", m.Name, tail(m.Log(), 6000))
		}
	})
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// PID returns the process ID of the running member.
func (m *Member) PID() int { return m.cmd.Process.Pid }

// Signal sends sig to the process.
func (m *Member) Signal(sig syscall.Signal) {
	if m.cmd != nil && m.cmd.Process != nil {
		_ = m.cmd.Process.Signal(sig)
	}
}

// Kill kills the process and waits for it.
func (m *Member) Kill() {
	if m.cmd == nil {
		return
	}
	select {
	case <-m.done:
		return
	default:
	}
	m.Signal(syscall.SIGKILL)
	<-m.done
}

// Wait waits up to d for the process to exit and returns its exit code.
func (m *Member) Wait(d time.Duration) (int, bool) {
	select {
	case <-m.done:
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.code, true
	case <-time.After(d):
		return 0, false
	}
}

// Running reports whether the process has not exited.
func (m *Member) Running() bool {
	if m.cmd == nil {
		return false
	}
	select {
	case <-m.done:
		return false
	default:
		return true
	}
}

// Ready reports whether the member's /readyz answers 200.
func Ready(clientURL string) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(clientURL + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// WaitReady polls /readyz until it answers 200 or d passes.
func (m *Member) WaitReady(d time.Duration) {
	m.t.Helper()
	if !Eventually(d, 50*time.Millisecond, func() bool {
		return Ready(m.ClientURL)
	}) {
		m.t.Fatalf("%s not ready after %s (running=%v)", m.Name, d, m.Running())
	}
}

// Eventually polls cond every interval until it is true or d passes.
func Eventually(d, interval time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(interval)
	}
}

// Start starts every member.
func (c *Cluster) Start() {
	for _, m := range c.Members {
		m.Start()
	}
}

// WaitReady waits for every running member to be ready.
func (c *Cluster) WaitReady(d time.Duration) {
	for _, m := range c.Members {
		if m.Running() {
			m.WaitReady(d)
		}
	}
}

// Endpoints returns the client URLs of the given members (all if none).
func (c *Cluster) Endpoints(ms ...*Member) []string {
	if len(ms) == 0 {
		ms = c.Members
	}
	var eps []string
	for _, m := range ms {
		eps = append(eps, m.ClientURL)
	}
	return eps
}

// Client returns a client of the given endpoints, closed at test end.
func Client(t testing.TB, endpoints []string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Leader returns the member that is leader, asking every running member.
func (c *Cluster) Leader(t testing.TB) *Member {
	t.Helper()
	var leader *Member
	ok := Eventually(15*time.Second, 100*time.Millisecond, func() bool {
		for _, m := range c.Members {
			if !m.Running() {
				continue
			}
			cli := Client(t, []string{m.ClientURL})
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			st, err := cli.Status(ctx, m.ClientURL)
			cancel()
			if err == nil && st.Leader != 0 && st.Leader == st.Header.MemberId {
				leader = m
				return true
			}
		}
		return false
	})
	if !ok {
		t.Fatal("no leader within 15s")
	}
	return leader
}

// Fill puts n keys PREFIX/0000... of size bytes each, one after the
// other, and returns the first error (a full backend's "database space
// exceeded" is one a test may want).
func Fill(cli *clientv3.Client, prefix string, n, size int) error {
	value := strings.Repeat("x", size)
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := cli.Put(ctx, fmt.Sprintf("%s/%04d", prefix, i), value)
		cancel()
		if err != nil {
			return err
		}
	}
	return nil
}
