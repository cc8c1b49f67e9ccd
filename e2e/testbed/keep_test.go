package testbed

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// KEEP=1 prints how to enter each host and the exact commands that tear
// everything down (round 1 printed a placeholder PID and no teardown). A
// shell with a child stands in for nspawn and its container's init; the
// printed kill line is run and must end it.
func TestKeepNotice(t *testing.T) {
	nspawn := exec.Command("/bin/sh", "-c", "sleep 60; :")
	if err := nspawn.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { nspawn.Wait(); close(done) }()
	t.Cleanup(func() { nspawn.Process.Kill() })
	tb := New(t.TempDir(), "", t.Logf)
	n := &Node{Name: "etcd0", IP: Subnet + ".10", tb: tb, root: tb.Dir + "/etcd0/root", nspawn: nspawn, done: done}
	var pid int
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		var err error
		if pid, err = n.initPID(); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if pid == 0 {
		t.Fatal("the stand-in has no child")
	}
	lines := tb.keepNotice([]*Node{n})
	text := strings.Join(lines, "\n")
	for _, want := range []string{
		"enter etcd0 (10.77.0.10): nsenter -t " + strconv.Itoa(pid) + " -a /bin/bash -l",
		"kill -TERM " + strconv.Itoa(nspawn.Process.Pid) + ";",
		"umount -l " + n.root,
		"ip netns del etcd0",
		"rm -rf /run/systemd/nspawn/propagate/etcd0",
		"ip netns del " + switchNS,
		"ip route del unreachable " + Subnet + ".0/24",
		"rm -rf " + tb.Dir,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the notice lacks %q:\n%s", want, text)
		}
	}
	// The host is stopped before its overlay is unmounted, and the
	// testbed's directory goes last.
	if strings.Index(text, "kill -TERM") > strings.Index(text, "umount") || !strings.HasSuffix(text, "rm -rf "+tb.Dir) {
		t.Errorf("teardown out of order:\n%s", text)
	}
	var kill string
	for _, l := range lines {
		if strings.Contains(l, "kill -TERM") {
			kill = strings.TrimSpace(l)
		}
	}
	if out, err := exec.Command("/bin/sh", "-c", kill).CombinedOutput(); err != nil && !strings.Contains(string(out), "No such process") {
		t.Logf("%s: %v %s", kill, err, out)
	}
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("the printed kill line did not stop the host: %s", kill)
	}
}
