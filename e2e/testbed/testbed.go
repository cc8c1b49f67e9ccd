// Package testbed boots real systemd hosts in containers on this machine
// for the system test, and breaks them on request: power cuts, links down,
// silent partitions. Each host is a systemd-nspawn container on an overlay of a
// cached debootstrap image, in a network namespace of its own, on a bridge
// in a separate "switch" namespace (see ../shared/TESTBED.md).
//
// Traffic goes only between the test hosts: every client runs inside a
// host (Node.Exec), never in this machine's namespace, where the test
// addresses would be routed out of the machine. As a safety net the test
// subnet is unreachable from the host's namespace while a testbed exists.
package testbed

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/etcd-appliance/appliance/internal/shquote"
)

// BasePackages are installed into the host image.
var BasePackages = []string{
	"systemd", "systemd-sysv", "dbus", "iproute2", "iputils-ping", "procps", "netbase",
	"openssh-server", "openssh-client", "rpm", "rpmlint",
	// dnf: the repository suite installs with it, as EL hosts do.
	"dnf",
	// dnsmasq: the bootstrap suite's DNS server, serving the rendered SRV
	// records as the guides' recipe does (not started: see EnsureBase).
	"dnsmasq",
	// prometheus: Debian's, on the control host, scraping the members
	// with the rendered configuration and evaluating the rendered alert
	// rules (not started: see EnsureBase).
	"prometheus",
	// prometheus-alertmanager: Debian's, on the control host, receiving
	// the alerts that Prometheus fires and notifying a webhook, as an
	// operator's pager would be (not started: see EnsureBase).
	"prometheus-alertmanager",
	// debootstrap does not resolve virtual packages: rpmlint's
	// python3-zstandard needs the python3-cffi-backend-api-* that this
	// package provides.
	"python3-cffi-backend",
}

// disabledUnits are installed in the image but not started at boot.
var disabledUnits = []string{"dnsmasq.service", "prometheus.service", "prometheus-alertmanager.service"}

const (
	// Subnet is the test network; hosts are Subnet.N.
	Subnet    = "10.77.0"
	switchNS  = "etcd-e2e-net"
	bridge    = "br0"
	suite     = "bookworm"
	mirrorURL = "http://deb.debian.org/debian"
)

// Testbed is a set of container hosts on one test network.
type Testbed struct {
	Dir   string // work directory: base, overlays, consoles
	Cache string // where the base image tarball is kept
	Keep  bool   // KEEP=1: leave everything for debugging
	Log   func(format string, args ...any)
	// Binds are host directories shown read-only in every host, as
	// "HOST:CONTAINER".
	Binds []string

	base  string
	mu    sync.Mutex
	nodes map[string]*Node
	net   bool
}

// Node is one container host.
type Node struct {
	Name              string
	IP                string
	tb                *Testbed
	root, upper, work string
	nspawn            *exec.Cmd
	done              chan struct{}
	console           *os.File
}

func run(ctx context.Context, argv ...string) error {
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// New prepares a testbed in dir; the base image comes from (or goes to) cache.
func New(dir, cache string, log func(string, ...any)) *Testbed {
	return &Testbed{Dir: dir, Cache: cache, Log: log, nodes: map[string]*Node{}}
}

// imageKey names the cached image after what is in it.
func imageKey() string {
	h := sha256.Sum256([]byte(suite + " " + strings.Join(BasePackages, ",") + " v2"))
	return suite + "-" + hex.EncodeToString(h[:6])
}

// EnsureBase unpacks the cached base image, creating it with debootstrap
// first when there is none (about 90 s; the tarball unpacks in seconds).
func (tb *Testbed) EnsureBase(ctx context.Context) error {
	tb.base = filepath.Join(tb.Dir, "base")
	if err := os.MkdirAll(tb.Cache, 0o755); err != nil {
		return err
	}
	tarball := filepath.Join(tb.Cache, imageKey()+".tar.zst")
	if _, err := os.Stat(tarball); err != nil {
		start := time.Now()
		tb.Log("building the base image with debootstrap (cached afterwards in %s)", tarball)
		tmp := filepath.Join(tb.Dir, "debootstrap")
		os.RemoveAll(tmp)
		if err := run(ctx, "debootstrap", "--variant=minbase", "--include="+strings.Join(BasePackages, ","), suite, tmp, mirrorURL); err != nil {
			return err
		}
		// Each host makes its own: the image must not carry host keys or
		// an identity.
		keys, _ := filepath.Glob(filepath.Join(tmp, "etc/ssh/ssh_host_*"))
		for _, k := range keys {
			os.Remove(k)
		}
		os.WriteFile(filepath.Join(tmp, "etc/machine-id"), nil, 0o444)
		// Installed, not enabled: the one host that serves DNS enables it,
		// as an operator does; Prometheus runs where a test starts it.
		for _, u := range disabledUnits {
			os.Remove(filepath.Join(tmp, "etc/systemd/system/multi-user.target.wants", u))
		}
		part := tarball + ".part"
		if err := run(ctx, "tar", "--zstd", "-C", tmp, "-cf", part, "."); err != nil {
			return err
		}
		if err := os.Rename(part, tarball); err != nil {
			return err
		}
		os.RemoveAll(tmp)
		tb.Log("base image built in %s", time.Since(start).Round(time.Second))
	}
	os.RemoveAll(tb.base)
	if err := os.MkdirAll(tb.base, 0o755); err != nil {
		return err
	}
	return run(ctx, "tar", "--zstd", "-C", tb.base, "-xf", tarball)
}

// network creates the switch namespace with its bridge, and makes the test
// subnet unreachable from this machine's own namespace.
func (tb *Testbed) network(ctx context.Context) error {
	if tb.net {
		return nil
	}
	exec.Command("ip", "netns", "del", switchNS).Run()
	for _, argv := range [][]string{
		{"ip", "netns", "add", switchNS},
		{"ip", "netns", "exec", switchNS, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"},
		{"ip", "-n", switchNS, "link", "add", bridge, "type", "bridge"},
		{"ip", "-n", switchNS, "link", "set", bridge, "up"},
	} {
		if err := run(ctx, argv...); err != nil {
			return err
		}
	}
	exec.Command("ip", "route", "del", "unreachable", Subnet+".0/24").Run()
	if err := run(ctx, "ip", "route", "add", "unreachable", Subnet+".0/24"); err != nil {
		return err
	}
	tb.net = true
	return nil
}

// AddNode creates and boots host name at Subnet.octet.
func (tb *Testbed) AddNode(ctx context.Context, name string, octet int) (*Node, error) {
	if err := tb.network(ctx); err != nil {
		return nil, err
	}
	n := &Node{Name: name, IP: fmt.Sprintf("%s.%d", Subnet, octet), tb: tb}
	d := filepath.Join(tb.Dir, "nodes", name)
	n.root, n.upper, n.work = filepath.Join(d, "root"), filepath.Join(d, "upper"), filepath.Join(d, "work")
	for _, p := range []string{n.root, n.upper, n.work} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			return nil, err
		}
	}
	if err := run(ctx, "mount", "-t", "overlay", "overlay", "-o",
		"lowerdir="+tb.base+",upperdir="+n.upper+",workdir="+n.work, n.root); err != nil {
		return nil, err
	}
	if err := n.prepare(ctx, octet); err != nil {
		return nil, err
	}
	tb.mu.Lock()
	tb.nodes[name] = n
	tb.mu.Unlock()
	if err := n.netns(ctx); err != nil {
		return nil, err
	}
	return n, n.Boot(ctx, true)
}

// prepare gives the host its identity: hostname, /etc/hosts (minbase has
// none, and Go's resolver then asks DNS for "localhost"), machine-id, SSH
// host key, and a policy-rc.d that keeps packages from starting services.
func (n *Node) prepare(ctx context.Context, octet int) error {
	var hosts strings.Builder
	hosts.WriteString("127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n")
	for i := 10; i < 20; i++ {
		fmt.Fprintf(&hosts, "%s.%d node%d\n", Subnet, i, i)
	}
	fmt.Fprintf(&hosts, "%s %s\n", n.IP, n.Name)
	mid := sha256.Sum256([]byte(n.Name + time.Now().String()))
	files := map[string]string{
		"etc/hostname":         n.Name + "\n",
		"etc/hosts":            hosts.String(),
		"etc/resolv.conf":      "",
		"etc/machine-id":       hex.EncodeToString(mid[:16]) + "\n",
		"usr/sbin/policy-rc.d": "#!/bin/sh\n# Test hosts: packages must not start services on install.\nexit 101\n",
	}
	for p, content := range files {
		full := filepath.Join(n.root, p)
		os.Remove(full)
		mode := os.FileMode(0o644)
		if strings.HasSuffix(p, "policy-rc.d") {
			mode = 0o755
		}
		if err := os.WriteFile(full, []byte(content), mode); err != nil {
			return err
		}
	}
	// The host keys a distribution generates: rsa, ecdsa and ed25519.
	return run(ctx, "ssh-keygen", "-A", "-f", n.root)
}

// Root is the host's root directory as seen from this machine.
func (n *Node) Root() string { return n.root }

func (n *Node) veth() string { return "ve-" + n.Name }

func (n *Node) netns(ctx context.Context) error {
	exec.Command("ip", "netns", "del", n.Name).Run()
	for _, argv := range [][]string{
		{"ip", "netns", "add", n.Name},
		{"ip", "-n", switchNS, "link", "add", n.veth(), "type", "veth", "peer", "name", "eth0", "netns", n.Name},
		{"ip", "-n", switchNS, "link", "set", n.veth(), "master", bridge, "up"},
		{"ip", "-n", n.Name, "link", "set", "lo", "up"},
		{"ip", "-n", n.Name, "addr", "add", n.IP + "/24", "dev", "eth0"},
		{"ip", "-n", n.Name, "link", "set", "eth0", "up"},
	} {
		if err := run(ctx, argv...); err != nil {
			return err
		}
	}
	return nil
}

// Boot starts the container with real systemd as its init. With settled,
// it waits until systemd says it is running (or degraded: some stock units
// fail in a container); otherwise only until systemd answers: a member
// waiting for quorum keeps the boot "starting", since multi-user.target
// waits for its Type=notify unit.
func (n *Node) Boot(ctx context.Context, settled bool) error {
	args := []string{"--register=no", "--keep-unit", "-q", "-M", n.Name, "-D", n.root,
		"--network-namespace-path=/run/netns/" + n.Name, "--link-journal=no", "--resolv-conf=off", "--timezone=off"}
	for _, b := range n.tb.Binds {
		args = append(args, "--bind-ro="+b)
	}
	args = append(args, "-b")
	console, err := os.OpenFile(filepath.Join(filepath.Dir(n.root), "console.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command("systemd-nspawn", args...)
	cmd.Stdout, cmd.Stderr = console, console
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		console.Close()
		return err
	}
	n.nspawn, n.console, n.done = cmd, console, make(chan struct{})
	go func(done chan struct{}) {
		cmd.Wait()
		console.Close()
		close(done)
	}(n.done)
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, _ := n.Exec(ctx, "systemctl", "is-system-running")
		state := strings.TrimSpace(out)
		if state == "running" || state == "degraded" || (!settled && state == "starting") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not boot in 60s (state %q); see %s", n.Name, state, console.Name())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// initPID is the host PID of the container's systemd.
func (n *Node) initPID() (int, error) {
	if n.nspawn == nil || n.nspawn.Process == nil {
		return 0, errors.New(n.Name + " is not running")
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", n.nspawn.Process.Pid, n.nspawn.Process.Pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, errors.New(n.Name + ": nspawn has no child yet")
	}
	return strconv.Atoi(f[0])
}

// Running reports whether the host is booted (not powered off).
func (n *Node) Running() bool {
	_, err := n.initPID()
	return err == nil
}

// Exec runs argv inside the host, in all its namespaces, and returns its
// combined output.
func (n *Node) Exec(ctx context.Context, argv ...string) (string, error) {
	pid, err := n.initPID()
	if err != nil {
		return "", err
	}
	full := append([]string{"nsenter", "-t", strconv.Itoa(pid), "-a", "env", "-i",
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8"}, argv...)
	out, err := exec.CommandContext(ctx, full[0], full[1:]...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %s: %w: %s", n.Name, strings.Join(argv, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// Sh runs a shell script inside the host (for test plumbing only).
func (n *Node) Sh(ctx context.Context, script string) (string, error) {
	return n.Exec(ctx, "/bin/sh", "-c", script)
}

// WriteFile writes a file into the host's root.
func (n *Node) WriteFile(p string, data []byte, mode os.FileMode) error {
	full := filepath.Join(n.root, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return err
	}
	return os.WriteFile(full, data, mode)
}

// ReadFile reads a file of the host's root.
func (n *Node) ReadFile(p string) ([]byte, error) { return os.ReadFile(filepath.Join(n.root, p)) }

// PowerOff cuts the host's power: its init is killed and its link goes
// down, so peers see timeouts rather than refusals.
func (n *Node) PowerOff() {
	exec.Command("ip", "-n", switchNS, "link", "set", n.veth(), "down").Run()
	if pid, err := n.initPID(); err == nil {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if n.done != nil {
		select {
		case <-n.done:
		case <-time.After(20 * time.Second):
			n.nspawn.Process.Kill()
			<-n.done
		}
	}
}

// PowerOn boots a powered-off host again, on the same disk.
func (n *Node) PowerOn(ctx context.Context) error {
	if err := run(ctx, "ip", "-n", switchNS, "link", "set", n.veth(), "up"); err != nil {
		return err
	}
	return n.Boot(ctx, false)
}

// Isolate takes the host's link down (a switch port failure).
func (n *Node) Isolate() error {
	return run(context.Background(), "ip", "-n", switchNS, "link", "set", n.veth(), "down")
}

// Reconnect brings the host's link up again.
func (n *Node) Reconnect() error {
	return run(context.Background(), "ip", "-n", switchNS, "link", "set", n.veth(), "up")
}

// DropBetween silently drops every frame between two hosts in the switch
// (nftables bridge family), leaving their other links working.
func (tb *Testbed) DropBetween(a, b *Node) error {
	ruleset := fmt.Sprintf(`table bridge etcd_e2e_partition {
	chain forward {
		type filter hook forward priority 0; policy accept;
		iifname %q oifname %q drop
		iifname %q oifname %q drop
	}
}
`, a.veth(), b.veth(), b.veth(), a.veth())
	cmd := exec.Command("ip", "netns", "exec", switchNS, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft: %w: %s", err, out)
	}
	return nil
}

// HealPartitions removes every DropBetween rule.
func (tb *Testbed) HealPartitions() error {
	return run(context.Background(), "ip", "netns", "exec", switchNS, "nft", "delete", "table", "bridge", "etcd_e2e_partition")
}

// Nodes returns the hosts, sorted by name.
func (tb *Testbed) Nodes() []*Node {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	var ns []*Node
	for _, n := range tb.nodes {
		ns = append(ns, n)
	}
	sort.Slice(ns, func(i, j int) bool { return ns[i].Name < ns[j].Name })
	return ns
}

// Teardown stops every host (SIGTERM, then SIGKILL after a bound),
// unmounts the overlays and deletes the namespaces. With Keep, it leaves
// everything and prints how to enter each host and the exact commands
// that tear it all down, the same steps Teardown takes.
func (tb *Testbed) Teardown() {
	nodes := tb.Nodes()
	if tb.Keep {
		for _, line := range tb.keepNotice(nodes) {
			tb.Log("%s", line)
		}
		return
	}
	tb.stop(nodes)
	for _, argv := range tb.cleanup() {
		exec.Command(argv[0], argv[1:]...).Run()
	}
}

// Release stops the hosts there are now, between suites: each host's
// systemd holds about 8 inotify instances, and the 128 a user may have
// (fs.inotify.max_user_instances) run out after 16 hosts; systemd in the
// next host then never finishes booting. With Keep it does nothing:
// Teardown's notice covers them.
func (tb *Testbed) Release() {
	if tb.Keep {
		return
	}
	nodes := tb.Nodes()
	tb.stop(nodes)
	tb.mu.Lock()
	for _, n := range nodes {
		delete(tb.nodes, n.Name)
	}
	tb.mu.Unlock()
}

// stop stops the hosts (SIGTERM, then SIGKILL after a bound) and removes
// what they leave: overlays, namespaces.
func (tb *Testbed) stop(nodes []*Node) {
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if n.nspawn != nil && n.done != nil {
				n.nspawn.Process.Signal(syscall.SIGTERM)
				select {
				case <-n.done:
				case <-time.After(stopWait):
					n.nspawn.Process.Kill()
					<-n.done
				}
			}
			for _, argv := range n.cleanup() {
				exec.Command(argv[0], argv[1:]...).Run()
			}
		}()
	}
	wg.Wait()
}

// stopWait bounds a host's shutdown before it is killed.
const stopWait = 15 * time.Second

// cleanup is what is left of a stopped host: its overlay mount, its
// network namespace, nspawn's propagation directory.
func (n *Node) cleanup() [][]string {
	return [][]string{
		{"umount", "-l", n.root},
		{"ip", "netns", "del", n.Name},
		{"rm", "-rf", "/run/systemd/nspawn/propagate/" + n.Name},
	}
}

// cleanup is what is left of the testbed once its hosts are gone.
func (tb *Testbed) cleanup() [][]string {
	return [][]string{
		{"ip", "netns", "del", switchNS},
		{"ip", "route", "del", "unreachable", Subnet + ".0/24"},
		{"rm", "-rf", tb.Dir},
	}
}

// keepNotice says, for KEEP=1, how to enter each host and, as commands
// to paste, how to tear everything down: each host stopped as Teardown
// stops it (SIGTERM, at most stopWait, then SIGKILL), then cleaned up.
func (tb *Testbed) keepNotice(nodes []*Node) []string {
	lines := []string{fmt.Sprintf("KEEP=1: %d hosts left running (work directory %s, switch namespace %s)", len(nodes), tb.Dir, switchNS)}
	var down []string
	for _, n := range nodes {
		if pid, err := n.initPID(); err == nil {
			lines = append(lines, fmt.Sprintf("  enter %s (%s): nsenter -t %d -a /bin/bash -l", n.Name, n.IP, pid))
		} else {
			lines = append(lines, fmt.Sprintf("  %s (%s) is not running: %v", n.Name, n.IP, err))
		}
		if n.nspawn != nil && n.nspawn.Process != nil {
			pid := strconv.Itoa(n.nspawn.Process.Pid)
			down = append(down, fmt.Sprintf("kill -TERM %s; timeout %d tail --pid=%s -f /dev/null; kill -KILL %s 2>/dev/null",
				pid, int(stopWait.Seconds()), pid, pid))
		}
		for _, argv := range n.cleanup() {
			down = append(down, shquote.Join(argv))
		}
	}
	for _, argv := range tb.cleanup() {
		down = append(down, shquote.Join(argv))
	}
	lines = append(lines, "  tear everything down (as root, in this order):")
	for _, d := range down {
		lines = append(lines, "    "+d)
	}
	return lines
}
