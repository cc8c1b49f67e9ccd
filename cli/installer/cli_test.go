package installer

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/etcd-appliance/appliance/host/hosttest"
	"github.com/etcd-appliance/appliance/inventory/inventorytest"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

var update = flag.Bool("update", false, "rewrite golden files")

func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, &out, &errb)
	return out.String(), errb.String(), code
}

// TestCommandTree fixes every command and flag: names are contracts with
// users and scripts. Update with -update and review the diff.
func TestCommandTree(t *testing.T) {
	var lines []string
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		lines = append(lines, c.CommandPath())
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			s := "  --" + f.Name
			if f.Shorthand != "" {
				s += " -" + f.Shorthand
			}
			lines = append(lines, s+" (default "+f.DefValue+")")
		})
		for _, sub := range c.Commands() {
			if !sub.Hidden && sub.Name() != "help" && sub.Name() != "completion" {
				walk(sub)
			}
		}
	}
	walk(NewRootCmd(nil, nil))
	got := strings.Join(lines, "\n") + "\n"
	golden := "testdata/commands.golden"
	if *update {
		os.WriteFile(golden, []byte(got), 0o644)
	}
	want, _ := os.ReadFile(golden)
	if got != string(want) {
		t.Errorf("command tree changed (go test ./cli/installer -run TestCommandTree -update):\n%s", got)
	}
}

func TestEveryCommandHasAnExample(t *testing.T) {
	for _, c := range NewRootCmd(nil, nil).Commands() {
		if c.Name() == "help" || c.Name() == "completion" {
			continue
		}
		if strings.TrimSpace(c.Example) == "" || c.Short == "" {
			t.Errorf("%s: no example or short help", c.Name())
		}
	}
}

func TestExampleValidateRenderPlan(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"local", "static", "proxies", "dns-srv"} {
		out, _, code := run(t, "example", name)
		if code != 0 || !strings.HasPrefix(out, "#") {
			t.Fatalf("example %s: code %d", name, code)
		}
		p := filepath.Join(dir, name+".toml")
		os.WriteFile(p, []byte(out), 0o644)
		out, errOut, code := run(t, "validate", p)
		if code != 0 || !strings.Contains(out, ": valid: ") {
			t.Errorf("validate %s: %d %s %s", name, code, out, errOut)
		}
	}
	if _, errOut, code := run(t, "example", "nope"); code != 1 || !strings.Contains(errOut, "choose one of dns-srv, local, proxies, static") {
		t.Errorf("unknown example: %d %s", code, errOut)
	}

	static := filepath.Join(dir, "static.toml")
	out := filepath.Join(dir, "out")
	if _, errOut, code := run(t, "render", static, "--out", out); code != 0 {
		t.Fatalf("render: %s", errOut)
	}
	for _, f := range []string{"etcd0/etc/etcd/etcd.conf", "etcd2/etc/etcd/etcdctl.env", "_cluster/prometheus.yml"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("render did not write %s", f)
		}
	}
	// Rendering again rewrites nothing.
	_, errOut, _ := run(t, "render", static, "--out", out)
	if strings.Contains(errOut, "msg=written") {
		t.Errorf("second render rewrote files:\n%s", errOut)
	}

	// plan against the rendered tree: nothing to do; against an empty root:
	// every file is new.
	planOut, errOut, code := run(t, "plan", static, "--this-host", "etcd0", "--root", filepath.Join(out, "etcd0"))
	if code != 0 || !strings.Contains(planOut, "etcd0: no changes") {
		t.Errorf("plan on rendered tree: %d %q %s", code, planOut, errOut)
	}
	planOut, _, _ = run(t, "plan", static, "--this-host", "etcd0", "--root", t.TempDir())
	if !strings.Contains(planOut, "+++ /etc/etcd/etcd.conf (new)") || !strings.Contains(planOut, "+ETCD_NAME=etcd0") ||
		!strings.Contains(planOut, "etcd0: 6 file(s) would change") {
		t.Errorf("plan on empty root:\n%s", planOut)
	}
	// An edited file shows as a diff.
	conf := filepath.Join(out, "etcd0/etc/etcd/etcd.conf")
	b, _ := os.ReadFile(conf)
	os.WriteFile(conf, bytes.Replace(b, []byte("ETCD_NAME=etcd0"), []byte("ETCD_NAME=edited"), 1), 0o640)
	planOut, _, _ = run(t, "plan", static, "--this-host", "etcd0", "--root", filepath.Join(out, "etcd0"))
	if !strings.Contains(planOut, "-ETCD_NAME=edited") || !strings.Contains(planOut, "+ETCD_NAME=etcd0") {
		t.Errorf("plan after an edit:\n%s", planOut)
	}
	if _, errOut, code := run(t, "plan", static, "--host", "nope"); code != 1 || !strings.Contains(errOut, "it has etcd0, etcd1, etcd2") {
		t.Errorf("unknown host: %s", errOut)
	}
}

func TestValidateReportsEveryError(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(p, []byte("version = 1\n[cluster]\nname = \"x\"\n[[member]]\nname = \"a\"\naddress = \"10.0.0.1\"\n[[member]]\nname = \"a\"\naddress = \"10.0.0.1\"\n"), 0o644)
	_, errOut, code := run(t, "validate", p)
	if code != 1 {
		t.Fatalf("exit %d", code)
	}
	var lines []string
	for _, l := range strings.Split(errOut, "\n") {
		if strings.HasPrefix(l, "bad.toml:") || strings.HasPrefix(l, "etcd-installer: bad.toml:") {
			lines = append(lines, l)
		}
	}
	sort.Strings(lines)
	if len(lines) < 3 {
		t.Errorf("want every problem reported (even count, duplicate name, duplicate ports):\n%s", errOut)
	}
}

// TestCertsAndPackages issues certificates for the static example, runs
// it again (idempotent), renews, and builds a node package carrying one
// host's certificates, checked with dpkg-deb.
func TestCertsAndPackages(t *testing.T) {
	dir := t.TempDir()
	inv := filepath.Join(dir, "prod.toml")
	out, _, _ := run(t, "example", "static")
	os.WriteFile(inv, []byte(out), 0o644)

	out, errOut, code := run(t, "certs", inv)
	if code != 0 || !strings.Contains(out, "11 certificates issued, 0 kept") || !strings.Contains(out, filepath.Join(dir, "certs", "ca.key")) {
		t.Fatalf("certs: %d\n%s%s", code, out, errOut)
	}
	if strings.Contains(out+errOut, "PRIVATE KEY") {
		t.Error("certs printed key material")
	}
	out, _, code = run(t, "certs", inv)
	if code != 0 || !strings.Contains(out, "0 certificates issued, 11 kept (nothing to do)") {
		t.Errorf("second run: %d\n%s", code, out)
	}
	ca, _ := os.ReadFile(filepath.Join(dir, "certs", "ca.crt"))
	key, _ := os.ReadFile(filepath.Join(dir, "certs", "etcd1", "server.key"))
	out, _, code = run(t, "certs", "renew", inv)
	if code != 0 || !strings.Contains(out, "re-issued: renew") {
		t.Errorf("renew: %d\n%s", code, out)
	}
	if ca2, _ := os.ReadFile(filepath.Join(dir, "certs", "ca.crt")); !bytes.Equal(ca, ca2) {
		t.Error("renew replaced the CA")
	}
	if key2, _ := os.ReadFile(filepath.Join(dir, "certs", "etcd1", "server.key")); bytes.Equal(key, key2) {
		t.Error("renew kept etcd1's key")
	}

	pkgs := filepath.Join(dir, "pkgs")
	out, errOut, code = run(t, "package", inv, "--out", pkgs, "--host", "etcd1", "--mtime", "1700000000")
	if code != 0 {
		t.Fatalf("package: %s%s", out, errOut)
	}
	var deb string
	for _, l := range strings.Fields(out) {
		if strings.HasSuffix(l, ".deb") || strings.HasSuffix(l, ".rpm") {
			if fi, err := os.Stat(l); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("%s holds private keys: mode %v (%v), want 0600", l, fi.Mode(), err)
			}
		}
		if strings.HasSuffix(l, ".deb") {
			deb = l
		}
	}
	if fi, err := os.Stat(pkgs); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("%s holds private keys: mode %v (%v), want 0700", pkgs, fi.Mode(), err)
	}
	if !strings.Contains(errOut, "hold the hosts' private keys") {
		t.Errorf("package does not say the packages are secrets:\n%s", errOut)
	}
	open := filepath.Join(dir, "open")
	os.Mkdir(open, 0o755)
	if _, errOut, code := run(t, "package", inv, "--out", open, "--host", "etcd1"); code == 0 || !strings.Contains(errOut, "chmod 700 "+open) {
		t.Errorf("package into a world-readable directory: %d %s", code, errOut)
	}
	if entries, _ := os.ReadDir(open); len(entries) != 0 {
		t.Errorf("package wrote into a world-readable directory: %v", entries)
	}
	listing, err := exec.Command("dpkg-deb", "-c", deb).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-deb -c %s: %v %s", deb, err, listing)
	}
	want := map[string]string{
		"./etc/etcd/pki/ca.crt":     "-rw-r--r-- root/root",
		"./etc/etcd/pki/server.key": "-rw------- etcd/etcd",
		"./etc/etcd/pki/peer.key":   "-rw------- etcd/etcd",
		"./etc/etcd/pki/client.key": "-rw------- root/root",
	}
	for _, l := range strings.Split(string(listing), "\n") {
		f := strings.Fields(l)
		if len(f) < 6 {
			continue
		}
		if w, ok := want[f[5]]; ok {
			if got := f[0] + " " + f[1]; got != w {
				t.Errorf("%s: %s, want %s", f[5], got, w)
			}
			delete(want, f[5])
		}
		if strings.HasSuffix(f[5], "ca.key") {
			t.Errorf("the CA key is in the package: %s", l)
		}
	}
	for f := range want {
		t.Errorf("%s missing from %s", f, filepath.Base(deb))
	}
	data, err := exec.Command("dpkg-deb", "--fsys-tarfile", deb).Output()
	if err != nil {
		t.Fatal(err)
	}
	if own, _ := os.ReadFile(filepath.Join(dir, "certs", "etcd1", "server.key")); !bytes.Contains(data, own) {
		t.Error("etcd1's package does not carry etcd1's server key")
	}
	for _, other := range []string{"etcd0", "etcd2"} {
		if k, _ := os.ReadFile(filepath.Join(dir, "certs", other, "server.key")); bytes.Contains(data, k) {
			t.Errorf("etcd1's package carries %s's key", other)
		}
	}
}

// TestDryRunsChangeNothing: certs, certs renew and package with --dry-run
// say what they would do and leave every file as it was. (apply's dry run
// is tested with fakes in workflow/apply: it asks systemd, which this
// machine does not run; member, backup and restore in their workflows
// against a local cluster.)
func TestDryRunsChangeNothing(t *testing.T) {
	dir := t.TempDir()
	inv := filepath.Join(dir, "prod.toml")
	out, _, _ := run(t, "example", "static")
	os.WriteFile(inv, []byte(out), 0o644)
	snap := func() map[string]string { return hosttest.Snapshot(t, dir) }

	before := snap()
	out, errOut, code := run(t, "certs", inv, "--dry-run")
	if code != 0 || !strings.Contains(out, "create the cluster CA "+filepath.Join(dir, "certs", "ca.crt")) ||
		!strings.Contains(out, "issue "+filepath.Join(dir, "certs", "etcd1", "server.crt")) {
		t.Errorf("certs --dry-run: %d\n%s%s", code, out, errOut)
	}
	if d := hosttest.SameSnapshot(before, snap()); d != "" {
		t.Errorf("certs --dry-run changed files:\n%s", d)
	}

	if _, errOut, code := run(t, "certs", inv); code != 0 {
		t.Fatal(errOut)
	}
	before = snap()
	out, errOut, code = run(t, "certs", "renew", inv, "--dry-run")
	if code != 0 || strings.Count(out, "re-issue ") != 10 || strings.Count(out, ".crt (renew)") != 10 {
		t.Errorf("certs renew --dry-run: %d\n%s%s", code, out, errOut)
	}
	pkgs := filepath.Join(dir, "pkgs")
	out, errOut, code = run(t, "package", inv, "--out", pkgs, "--host", "etcd1", "--dry-run")
	if code != 0 || !strings.Contains(out, "build "+filepath.Join(pkgs, "etcd-node-etcd1_1.0-1_all.deb")) || !strings.Contains(out, ".noarch.rpm") {
		t.Errorf("package --dry-run: %d\n%s%s", code, out, errOut)
	}
	if d := hosttest.SameSnapshot(before, snap()); d != "" {
		t.Errorf("dry runs changed files:\n%s", d)
	}
}

// TestHostFlags: --host selects hosts and reaches the ones that are not
// this machine over SSH; --this-host is checked. Before, `apply --host
// etcd1` on a workstation applied etcd1's files and unit to the
// workstation, and `plan --host etcd1` compared the workstation's files.
func TestHostFlags(t *testing.T) {
	dir := t.TempDir()
	inv := filepath.Join(dir, "prod.toml")
	// 10.0.0.0/8 addresses and no ssh targets: none is this machine, none
	// is reachable.
	os.WriteFile(inv, []byte(inventorytest.Text("prod", "tls = \"off\"", []string{"10.0.0.10", "10.0.0.11", "10.0.0.12"}, nil)+
		"[[proxy]]\nname = \"gw\"\naddress = \"10.0.0.20\"\n"), 0o644)
	root := t.TempDir()
	empty := func() {
		t.Helper()
		if ents, _ := os.ReadDir(root); len(ents) != 0 {
			t.Fatalf("something was written under --root: %v", ents)
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"apply", inv, "--host", "etcd1", "--dry-run", "--root", root}, "etcd1 is not this machine (hostname "},
		{[]string{"apply", inv, "--host", "etcd1", "--root", root}, "and has no ssh target in prod.toml: run the command on etcd1"},
		{[]string{"apply", inv, "--this-host", "etcd1", "--root", root}, "--this-host etcd1: this machine (hostname "},
		{[]string{"plan", inv, "--host", "etcd1"}, "etcd1 is not this machine"},
		{[]string{"plan", inv, "--this-host", "etcd1"}, "is not etcd1 of prod.toml (address 10.0.0.11); nothing was done"},
		{[]string{"doctor", inv, "--host", "etcd1"}, "etcd1 is not this machine"},
		{[]string{"apply", inv, "--host", "ectd1"}, "--host ectd1: prod.toml has no member or proxy ectd1 (it has etcd0, etcd1, etcd2, gw; did you mean etcd1?)"},
		{[]string{"render", inv, "--host", "ectd1", "--out", root}, "did you mean etcd1?"},
		{[]string{"member", "add", inv, "etcd3", "--dry-run"}, "prod.toml has no [[member]] named etcd3 (its members: etcd0, etcd1, etcd2); fix: to add a new member, add a [[member]] table with name = \"etcd3\""},
		{[]string{"member", "add", inv, "etdc1", "--dry-run"}, "did you mean etcd1?"},
		{[]string{"member", "add", inv, "gw", "--dry-run"}, "gw is a [[proxy]] in prod.toml, and a proxy cannot become a member"},
		// An unset variable must not widen --host "$H" to every host.
		{[]string{"apply", inv, "--host", "", "--dry-run"}, "--host was given an empty name"},
		{[]string{"apply", inv, "--host", ",", "--dry-run"}, "has an empty name"},
		{[]string{"plan", inv, "--host", ""}, "--host was given an empty name"},
		{[]string{"doctor", inv, "--this-host", ""}, "--this-host"},
		{[]string{"render", inv, "--host", "", "--out", root}, "--host was given an empty name"},
	} {
		out, errOut, code := run(t, c.args...)
		if code != 1 || !strings.Contains(errOut, c.want) || out != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 1, nothing on stdout, %q", strings.Join(c.args, " "), code, out, errOut, c.want)
		}
		if strings.Contains(errOut, "invalid inventory") {
			t.Errorf("%s: the inventory is fine, the flag is wrong: %s", strings.Join(c.args, " "), errOut)
		}
		empty()
	}
}
