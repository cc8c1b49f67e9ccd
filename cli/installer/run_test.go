package installer

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/etcd-appliance/appliance/internal/etcdtest"
	"github.com/etcd-appliance/appliance/inventory/inventorytest"
	"github.com/etcd-appliance/appliance/workflow/localcluster/localclustertest"
)

// The newcomer's `etcd-installer run`, as the binary: a member killed
// with kill -9 is reported and restarted, and Ctrl-C reads as one stop,
// a line per member and nothing at error level.
func TestRunSupervisesAndStopsQuietly(t *testing.T) {
	dir := t.TempDir()
	text := localclustertest.Text(t, 3, "")
	inv := filepath.Join(dir, "local.toml")
	if err := os.WriteFile(inv, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(etcdtest.BinDir(t), "etcd-installer"), "run", inv, "--data-dir", filepath.Join(dir, "run"))
	out := &etcdtest.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	wait := func(what string) {
		t.Helper()
		if !etcdtest.Eventually(2*time.Minute, 50*time.Millisecond, func() bool { return strings.Contains(out.String(), what) }) {
			t.Fatalf("no %q:\n%s", what, out.String())
		}
	}
	wait("Ctrl-C stops the cluster")

	// Go forks from any of its threads: each thread lists its children.
	var pids []string
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/task/*/children")
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		pids = append(pids, strings.Fields(string(b))...)
	}
	if len(pids) != 3 {
		t.Fatalf("children of run: %q", pids)
	}
	victim, _ := strconv.Atoi(pids[0])
	syscall.Kill(victim, syscall.SIGKILL)
	wait("killed by signal KILL after")
	wait("restarted")
	// Its own readiness probe (etcd logs a failed /readyz at error
	// level) has stopped only once it is READY: a stop before that may
	// catch a probe in the middle of the leader's handover.
	wait("serving again")
	urls := inventorytest.Parse(t, text).ClientURLs()
	if !etcdtest.Eventually(time.Minute, 100*time.Millisecond, func() bool {
		for _, u := range urls {
			if !etcdtest.Ready(u) {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("not every member ready after the restart:\n%s", out.String())
	}

	cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("run ended with %v after Ctrl-C", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("run did not end after Ctrl-C:\n%s", out.String())
	}
	_, stop, ok := strings.Cut(out.String(), "run: stopping the cluster")
	if !ok {
		t.Fatalf("no stop:\n%s", out.String())
	}
	if strings.Count(stop, " stopped (") != 3 || strings.Contains(stop, `"level":"error"`) || strings.Contains(stop, "closed network connection") {
		t.Errorf("Ctrl-C should read as one stop, a line per member, nothing at error level:\n%s", stop)
	}
}
