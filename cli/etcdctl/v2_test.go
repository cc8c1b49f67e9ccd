package etcdctl_test

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcd-appliance/appliance/cli/etcdctl/v2compat"
	"github.com/etcd-appliance/appliance/internal/etcdtest"
)

// The commands of the guides, typed into this package's etcdctl against
// a real member: what runs does what v2 did, what is refused changes
// nothing, and the transactions shown do, pasted into sh, what mk and
// update did.
func TestV2CommandsAgainstAMember(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	c.Start()
	c.WaitReady(time.Minute)
	ep := c.Members[0].ClientURL
	bin := etcdtest.BinDir(t)
	// No host etcdctl.env may interfere; HOME for nothing else.
	run := func(stdin string, args ...string) (string, string, int) {
		t.Helper()
		cmd := exec.Command(filepath.Join(bin, "etcdctl"), args...)
		cmd.Env = []string{"PATH=" + bin + ":/usr/bin:/bin", "HOME=" + t.TempDir()}
		cmd.Stdin = strings.NewReader(stdin)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out.String(), errb.String(), code
	}
	get := func(key string) string {
		out, _, _ := run("", "--endpoints="+ep, "get", "--print-value-only", "--", key)
		return strings.TrimSpace(out)
	}

	if _, errs, code := run("", "-C", ep, "set", "/foo", "bar"); code != 0 || !strings.Contains(errs, "etcdctl --endpoints="+ep+" put /foo bar") {
		t.Fatalf("set: %d %s", code, errs)
	}
	if get("/foo") != "bar" {
		t.Fatalf("set did not put: %q", get("/foo"))
	}
	run("", "--endpoints="+ep, "put", "/dir/a", "1")
	run("", "--endpoints="+ep, "put", "/dir-other", "2")
	if out, _, code := run("", "--peers", ep, "ls", "/dir"); code != 0 || !strings.Contains(out, "/dir/a") {
		t.Errorf("ls: %d %q", code, out)
	}
	if out, errs, code := run("", "-C", ep, "get", "--quorum", "/foo"); code != 2 || out != "" || !strings.Contains(errs, "get /foo --print-value-only") {
		t.Errorf("get --quorum is shown, not run (its exit code for a missing key differs): %d %q %s", code, out, errs)
	}
	if out, _, code := run("", "-C", ep, "cluster-health"); code != 0 || !strings.Contains(out, "is healthy") {
		t.Errorf("cluster-health: %d %q", code, out)
	}
	if _, _, code := run("", "-C", ep, "mkdir", "/d"); code != 0 {
		t.Errorf("mkdir: exit %d", code)
	}
	// Refused: nothing changes.
	if _, errs, code := run("", "-C", ep, "rm", "-r", "/dir"); code != 2 || get("/dir/a") != "1" || get("/dir-other") != "2" {
		t.Errorf("rm -r ran or changed keys: %d %s", code, errs)
	}
	if _, _, code := run("", "-C", ep, "mk", "/foo", "other"); code != 2 || get("/foo") != "bar" {
		t.Errorf("mk ran: %d", code)
	}
	// The transactions shown, pasted into sh, are mk and update.
	shown := func(args ...string) string {
		a, ok := v2compat.Translate(args)
		if !ok || len(a.Commands) != 1 {
			t.Fatalf("%v: %+v", args, a)
		}
		cmd := exec.Command("sh", "-c", a.Commands[0].String())
		cmd.Env = []string{"PATH=" + bin + ":/usr/bin:/bin", "HOME=" + t.TempDir()}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", a.Commands[0], err, out)
		}
		return string(out)
	}
	if out := shown("-C", ep, "mk", "/foo", "other"); !strings.Contains(out, "FAILURE") || get("/foo") != "bar" {
		t.Errorf("mk's transaction on an existing key: %q, /foo=%q", out, get("/foo"))
	}
	if out := shown("-C", ep, "mk", "/new", "v"); !strings.Contains(out, "SUCCESS") || get("/new") != "v" {
		t.Errorf("mk's transaction on a new key: %q", out)
	}
	if out := shown("-C", ep, "update", "/absent", "v"); !strings.Contains(out, "FAILURE") || get("/absent") != "" {
		t.Errorf("update's transaction on an absent key: %q", out)
	}
	if out := shown("-C", ep, "update", "/foo", "baz"); !strings.Contains(out, "SUCCESS") || get("/foo") != "baz" {
		t.Errorf("update's transaction: %q", out)
	}
	if out := shown("-C", ep, "set", "--swap-with-value", "baz", "/foo", "qux"); !strings.Contains(out, "SUCCESS") || get("/foo") != "qux" {
		t.Errorf("set --swap-with-value's transaction: %q", out)
	}
	// Keys and values a shell and etcdctl's transaction parser read
	// differently: the transaction shown still creates exactly them.
	if out := shown("-C", ep, "mk", "it's a key", `v"1`); !strings.Contains(out, "SUCCESS") || get("it's a key") != `v"1` {
		t.Errorf("mk's transaction with quotes: %q, value %q", out, get("it's a key"))
	}
	if out := shown("-C", ep, "mk", "-dash", "v"); !strings.Contains(out, "SUCCESS") || get("-dash") != "v" {
		t.Errorf("mk's transaction with a key starting with '-': %q", out)
	}
	if _, _, code := run("", "-C", ep, "rm", "/foo"); code != 0 || get("/foo") != "" {
		t.Errorf("rm: %d", code)
	}

	// watch --recursive --forever runs v3's watch --prefix on the
	// directory: a change under it is printed.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w := exec.CommandContext(ctx, filepath.Join(bin, "etcdctl"), "-C", ep, "watch", "--recursive", "--forever", "/dir")
	w.Env = []string{"PATH=" + bin + ":/usr/bin:/bin", "HOME=" + t.TempDir()}
	var wout etcdtest.Buffer
	w.Stdout, w.Stderr = &wout, &wout
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Process.Kill()
	if !etcdtest.Eventually(20*time.Second, 100*time.Millisecond, func() bool {
		run("", "--endpoints="+ep, "put", "/dir/b", "2")
		return strings.Contains(wout.String(), "/dir/b")
	}) {
		t.Errorf("watch --recursive saw nothing:\n%s", wout.String())
	}
}
