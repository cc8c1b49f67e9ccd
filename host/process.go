package host

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/etcd-appliance/appliance/internal/envfile"
	"github.com/etcd-appliance/appliance/layout"
	"github.com/etcd-appliance/appliance/units"
)

// Processes runs a host's units as child processes instead of systemd
// units, for `etcd-installer run` and for tests: the environment comes
// from the unit's env file (as EnvironmentFile= would), and each child
// gets a notify socket, so "active" means READY=1, as with Type=notify.
type Processes struct {
	// FS is where the env files are read from.
	FS FS
	// Etcd is the etcd binary.
	Etcd string
	// Dir holds each unit's notify socket; it must be short (socket paths
	// are limited to 108 bytes).
	Dir string
	// Output receives the children's output, line by line; nil discards.
	Output func(unit, line string)
	// Exited, when set, hears of every exit, once its output is read.
	Exited func(Exit)

	mu    sync.Mutex
	procs map[string]*process
}

// Exit is how a unit's process ended.
type Exit struct {
	Unit string
	// Code is the exit code (-1 when a signal ended it); Signal the
	// signal, if one did.
	Code   int
	Signal syscall.Signal
	// Requested: Stop or Restart ended it, not a crash or someone else.
	Requested bool
	Ran       time.Duration
	// Tail are its last lines of output.
	Tail []string
}

// Describe says how it ended: "exited with code 78", "killed by signal
// KILL".
func (e Exit) Describe() string {
	if e.Signal != 0 {
		return "killed by signal " + strings.TrimPrefix(unix.SignalName(e.Signal), "SIG")
	}
	return fmt.Sprintf("exited with code %d", e.Code)
}

// Clean reports whether the process ended as systemd's Restart=on-failure
// leaves alone: exit code 0, or one of the signals that ask a service to
// stop (TERM, INT, HUP, PIPE).
func (e Exit) Clean() bool {
	switch e.Signal {
	case 0:
		return e.Code == 0
	case syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGPIPE:
		return true
	}
	return false
}

// tailLines is how many lines of output an Exit keeps.
const tailLines = 20

type process struct {
	cmd     *exec.Cmd
	done    chan struct{}
	exit    int
	ready   bool
	status  string
	enabled bool
	stopped bool
	conn    *net.UnixConn
	since   time.Time
	tail    []string
}

func (p *Processes) get(unit string) *process {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.procs == nil {
		p.procs = map[string]*process{}
	}
	if p.procs[unit] == nil {
		p.procs[unit] = &process{}
	}
	return p.procs[unit]
}

// DaemonReload implements Services.
func (p *Processes) DaemonReload(context.Context) error { return nil }

// Enable implements Services.
func (p *Processes) Enable(_ context.Context, unit string) error {
	p.get(unit).enabled = true
	return nil
}

// Disable implements Services.
func (p *Processes) Disable(_ context.Context, unit string) error {
	p.get(unit).enabled = false
	return nil
}

// Start implements Services.
func (p *Processes) Start(_ context.Context, unit string) error {
	pr := p.get(unit)
	p.mu.Lock()
	defer p.mu.Unlock()
	if pr.cmd != nil && !isDone(pr.done) {
		return nil
	}
	var argv []string
	var envPath string
	switch unit {
	case units.BackupTimer, units.MaintenanceTimer:
		// Child processes have no timers: the timer is "started" and
		// says that nothing will fire (scheduled jobs need systemd).
		pr.ready, pr.stopped, pr.status = true, false, "etcd-installer run has no timers: no scheduled backups or maintenance here"
		return nil
	case units.Etcd:
		envPath = layout.EtcdConf
	case units.GRPCProxy:
		envPath = layout.ProxyConf
	default:
		return fmt.Errorf("no such unit %s", unit)
	}
	data, err := p.FS.ReadFile(envPath)
	if err != nil {
		return fmt.Errorf("starting %s: %w", unit, err)
	}
	entries, err := envfile.Parse(envPath, bytes.NewReader(data))
	if err != nil {
		return err
	}
	if unit == units.Etcd {
		// EnvironmentFile=-/run/etcd-maintenance/defragment.env: read
		// when present.
		if data, err := p.FS.ReadFile(layout.DefragmentEnv); err == nil {
			more, err := envfile.Parse(layout.DefragmentEnv, bytes.NewReader(data))
			if err != nil {
				return err
			}
			entries = append(entries, more...)
		}
	}
	// Hosts of a local cluster share this machine's file system: the paths
	// their files name (certificates) are under each host's root.
	var env []string
	for _, e := range entries {
		env = append(env, e.Key+"="+p.hostPath(e.Value))
	}
	if unit == units.GRPCProxy {
		argv = []string{"grpc-proxy", "start"}
		for _, f := range strings.Fields(envfile.Map(entries)[layout.ProxyFlagsVar]) {
			if k, v, ok := strings.Cut(f, "="); ok {
				f = k + "=" + p.hostPath(v)
			}
			argv = append(argv, f)
		}
		env = nil
	}
	sock := filepath.Join(p.Dir, strings.TrimSuffix(unit, ".service")+".sock")
	os.Remove(sock)
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("notify socket for %s: %w", unit, err)
	}
	cmd := exec.Command(p.Etcd, argv...)
	cmd.Env = append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "NOTIFY_SOCKET=" + sock}, env...)
	// The member's working directory, like the unit's WorkingDirectory=.
	cmd.Dir = p.FS.Path("/")
	// A process group of its own: Ctrl-C on a terminal signals the whole
	// foreground group, and the supervisor must stop members in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		conn.Close()
		return err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		conn.Close()
		return fmt.Errorf("starting %s: %w", unit, err)
	}
	np := &process{cmd: cmd, done: make(chan struct{}), enabled: pr.enabled, conn: conn, since: time.Now()}
	p.procs[unit] = np
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		p.copyOutput(unit, np, out)
	}()
	go p.readNotify(np)
	go func() {
		// Wait closes the pipe: only once every line is read, or the
		// last ones, which say why it ended, would be lost.
		<-copied
		err := cmd.Wait()
		ev := Exit{Unit: unit}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			ev.Code = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				ev.Signal = ws.Signal()
			}
		}
		p.mu.Lock()
		np.exit = ev.Code
		if ev.Signal != 0 && ev.Code == 0 {
			np.exit = -1
		}
		ev.Requested, ev.Ran = np.stopped, time.Since(np.since)
		ev.Tail = append([]string(nil), np.tail...)
		p.mu.Unlock()
		conn.Close()
		close(np.done)
		if p.Exited != nil {
			p.Exited(ev)
		}
	}()
	return nil
}

// hostPath maps an absolute path a host's file names to this machine.
func (p *Processes) hostPath(v string) string {
	if strings.HasPrefix(v, "/") && !strings.Contains(v, ",") {
		return p.FS.Path(v)
	}
	return v
}

func (p *Processes) copyOutput(unit string, pr *process, r io.Reader) {
	br := bufio.NewReaderSize(r, 64*1024)
	for {
		line, err := br.ReadString('\n')
		if line == "" && err != nil {
			return
		}
		line = strings.TrimSuffix(line, "\n")
		// A line longer than a screenful is cut, never the output after it.
		if len(line) > 64*1024 {
			line = line[:64*1024] + " [cut]"
		}
		p.mu.Lock()
		pr.tail = append(pr.tail, line)
		if len(pr.tail) > tailLines {
			pr.tail = pr.tail[len(pr.tail)-tailLines:]
		}
		p.mu.Unlock()
		if p.Output != nil {
			p.Output(unit, line)
		}
		if err != nil {
			return
		}
	}
}

func (p *Processes) readNotify(pr *process) {
	buf := make([]byte, 4096)
	for {
		n, err := pr.conn.Read(buf)
		if err != nil {
			return
		}
		p.mu.Lock()
		for _, line := range strings.Split(string(buf[:n]), "\n") {
			switch {
			case line == "READY=1":
				pr.ready = true
			case strings.HasPrefix(line, "STATUS="):
				pr.status = strings.TrimPrefix(line, "STATUS=")
			}
		}
		p.mu.Unlock()
	}
}

func isDone(c chan struct{}) bool {
	if c == nil {
		return true
	}
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// Restart implements Services.
func (p *Processes) Restart(ctx context.Context, unit string) error {
	if err := p.Stop(ctx, unit); err != nil {
		return err
	}
	return p.Start(ctx, unit)
}

// Stop implements Services: SIGTERM, then SIGKILL after 60 s, as systemd
// does with TimeoutStopSec=60s.
func (p *Processes) Stop(ctx context.Context, unit string) error {
	pr := p.get(unit)
	p.mu.Lock()
	cmd, done := pr.cmd, pr.done
	pr.stopped = true
	p.mu.Unlock()
	if cmd == nil || isDone(done) {
		return nil
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-done
		return ctx.Err()
	}
	return nil
}

// Signal sends sig to a unit's process, as someone else on the machine
// would (it is not a requested stop).
func (p *Processes) Signal(unit string, sig syscall.Signal) {
	pr := p.get(unit)
	p.mu.Lock()
	cmd, done := pr.cmd, pr.done
	p.mu.Unlock()
	if cmd != nil && !isDone(done) {
		_ = cmd.Process.Signal(sig)
	}
}

// Kill kills a unit's process without a graceful stop (a crash).
func (p *Processes) Kill(unit string) {
	pr := p.get(unit)
	p.mu.Lock()
	cmd, done := pr.cmd, pr.done
	p.mu.Unlock()
	if cmd != nil && !isDone(done) {
		_ = cmd.Process.Kill()
		<-done
	}
}

// State implements Services.
func (p *Processes) State(_ context.Context, unit string) (UnitState, error) {
	pr := p.get(unit)
	p.mu.Lock()
	defer p.mu.Unlock()
	st := UnitState{Status: pr.status, Enabled: "disabled"}
	if pr.enabled {
		st.Enabled = "enabled"
	}
	switch {
	case unit == units.BackupTimer || unit == units.MaintenanceTimer:
		st.Active = "inactive"
		if pr.ready && !pr.stopped {
			st.Active = "active"
		}
	case pr.cmd == nil:
		st.Active = "inactive"
	case !isDone(pr.done):
		st.MainPID = pr.cmd.Process.Pid
		st.Since = pr.since
		st.Active = "activating"
		if pr.ready {
			st.Active = "active"
		}
	case pr.exit != 0 && !pr.stopped:
		st.Active, st.Result, st.ExitStatus = "failed", "exit-code", pr.exit
	default:
		st.Active, st.Result = "inactive", "success"
	}
	return st, nil
}

// Logs implements Services; the output went to Output as it came.
func (p *Processes) Logs(context.Context, string, int) string { return "" }
