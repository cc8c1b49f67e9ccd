package packaging

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/etcd-appliance/appliance/internal/etcdtest"
	"github.com/etcd-appliance/appliance/inventory"
)

var mtime = time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)

func buildEtcd(t testing.TB, out, revision string) []string {
	t.Helper()
	bin := etcdtest.BinDir(t)
	comps, err := completions(bin)
	if err != nil {
		t.Fatal(err)
	}
	paths, err := EtcdPackages(EtcdOptions{Version: "3.7.3", Revision: revision, Arch: runtime.GOARCH,
		Binary: filepath.Join(bin, "etcd"), Completions: comps, MTime: mtime, Out: out})
	if err != nil {
		t.Fatal(err)
	}
	return paths
}

func cmd(t *testing.T, argv ...string) string {
	t.Helper()
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return string(out)
}

func contains(t *testing.T, what, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, out)
		}
	}
}

func TestEtcdPackages(t *testing.T) {
	dir := t.TempDir()
	paths := buildEtcd(t, dir, "1")
	deb, rpm := paths[0], paths[1]

	contains(t, "dpkg-deb -I", cmd(t, "dpkg-deb", "-I", deb),
		"Package: etcd", "Version: 3.7.3-1", "Depends: systemd, passwd", "Conflicts: etcd-server, etcd-client",
		"Replaces: etcd-server, etcd-client", "conffiles")
	contains(t, "conffiles", cmd(t, "dpkg-deb", "-f", deb, "Package")+cmd(t, "sh", "-c", "dpkg-deb --ctrl-tarfile "+deb+" | tar -xO ./conffiles"),
		"/etc/etcd/etcd.conf")
	contains(t, "dpkg-deb -c", cmd(t, "dpkg-deb", "-c", deb),
		"drwxr-xr-x root/root         0 2026-11-22 00:00 ./etc/etcd/",
		"-rw-r----- root/etcd", "./etc/etcd/etcd.conf",
		"-rwxr-xr-x root/root", "./usr/bin/etcd\n",
		"./usr/bin/etcdctl -> etcd", "./usr/bin/etcdutl -> etcd", "./usr/bin/etcd-installer -> etcd",
		"./usr/lib/systemd/system/etcd.service", "./usr/lib/systemd/system/etcd-grpc-proxy.service",
		"./usr/lib/systemd/system/etcd-backup.service", "./usr/lib/systemd/system/etcd-backup.timer",
		"./etc/needrestart/conf.d/etcd.conf",
		"./usr/lib/sysusers.d/etcd.conf", "./usr/lib/tmpfiles.d/etcd.conf",
		"./usr/share/doc/etcd/copyright", "./usr/share/doc/etcd/changelog.Debian.gz",
		"./usr/share/man/man1/etcd.1.gz", "./usr/share/man/man1/etcd-installer.1.gz",
		"./usr/share/bash-completion/completions/etcdctl", "./usr/share/zsh/vendor-completions/_etcd-installer",
		"./usr/share/lintian/overrides/etcd")

	// rpm -qp reads headers only; never unpack this payload on the host
	// (nfpm#1122: absolute paths).
	contains(t, "rpm --info", cmd(t, "rpm", "-qp", "--info", rpm),
		"Name        : etcd", "Version     : 3.7.3", "Release     : 1", "License     : Apache-2.0")
	if host := cmd(t, "rpm", "-qp", "--qf", "%{BUILDHOST}", rpm); host != "etcd-appliance" {
		t.Errorf("rpm build host %q: builds must not carry the machine's name", host)
	}
	contains(t, "rpm --list", cmd(t, "rpm", "-qp", "--list", rpm),
		"/usr/bin/etcd\n", "/usr/bin/etcdctl", "/etc/etcd\n", "/etc/etcd/etcd.conf",
		"/usr/share/licenses/etcd/copyright", "/usr/share/zsh/site-functions/_etcdctl")
	contains(t, "rpm --configfiles", cmd(t, "rpm", "-qp", "--configfiles", rpm), "/etc/etcd/etcd.conf")
	contains(t, "rpm --requires", cmd(t, "rpm", "-qp", "--requires", rpm), "systemd", "shadow-utils", "/bin/sh")
	scripts := cmd(t, "rpm", "-qp", "--scripts", rpm)
	shellcheck(t, "postinst", cmd(t, "sh", "-c", "dpkg-deb --ctrl-tarfile "+deb+" | tar -xO ./postinst"))
	contains(t, "rpm --scripts", scripts, "preinstall scriptlet", "postinstall scriptlet", "postuninstall scriptlet",
		"systemd-sysusers", "etcd-installer safe-restart")
	if strings.Contains(scripts, "$1") {
		t.Error("maintainer scripts use $1, which dpkg and rpm fill differently")
	}
	if !strings.Contains(cmd(t, "rpm", "-qp", "--qf", "[%{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILENAMES}\n]", rpm),
		"-rw-r----- root:etcd /etc/etcd/etcd.conf") {
		t.Error("etcd.conf is not root:etcd 0640 in the rpm")
	}

	out, _ := exec.Command("lintian", "--tag-display-limit", "0", deb).CombinedOutput()
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "E:") {
			t.Errorf("lintian: %s", line)
		}
	}

	// Reproducible: a second build is byte for byte the same.
	again := buildEtcd(t, t.TempDir(), "1")
	for i := range paths {
		a, _ := os.ReadFile(paths[i])
		b, _ := os.ReadFile(again[i])
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between two builds", filepath.Base(paths[i]))
		}
	}
}

func TestNodePackages(t *testing.T) {
	d := exampleInventory(t)
	dir := t.TempDir()
	paths, err := NodePackages(d, NodeOptions{Version: "1.0", Revision: "3", MTime: mtime, Out: dir, Hosts: []string{"etcd1"}}, "3.7.3")
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 2 {
		t.Fatalf("want a deb and an rpm, got %v", paths)
	}
	deb := paths[0]
	contains(t, "node dpkg-deb -I", cmd(t, "dpkg-deb", "-I", deb),
		"Package: etcd-node-etcd1", "Version: 1.0-3", "Architecture: all", "Depends: etcd (>= 3.7.3)")
	postinst := cmd(t, "sh", "-c", "dpkg-deb --ctrl-tarfile "+deb+" | tar -xO ./postinst")
	contains(t, "node postinst", postinst,
		"systemctl enable etcd.service", "systemctl start --no-block etcd.service",
		`etcd-installer safe-restart --reason "upgrade of the package etcd-node-etcd1"`)
	if strings.Contains(postinst, "systemctl restart") {
		t.Error("the node package restarts its member without the quorum check and the lock")
	}
	shellcheck(t, "node postinst", postinst)
	contains(t, "node dpkg-deb -c", cmd(t, "dpkg-deb", "-c", deb),
		"-rw-r----- root/etcd", "./etc/etcd/node/etcd.conf", "./etc/etcd/etcdctl.env",
		"./etc/systemd/system/etcd.service.d/50-etcd-node.conf", "./usr/share/etcd-node/etcd1")
	conf := cmd(t, "sh", "-c", "dpkg-deb --fsys-tarfile "+deb+" | tar -xO ./etc/etcd/node/etcd.conf")
	contains(t, "node etcd.conf", conf, "ETCD_NAME=etcd1", "ETCD_INITIAL_CLUSTER=etcd0=https://10.0.0.10:2380", "ETCD_CLIENT_CERT_AUTH=true")
	contains(t, "node rpm", cmd(t, "rpm", "-qp", "--requires", paths[1]), "etcd >= 3.7.3")
	contains(t, "node rpm config", cmd(t, "rpm", "-qp", "--configfiles", paths[1]), "/etc/etcd/node/etcd.conf")
}

// shellcheck checks a maintainer script as POSIX sh (.ci/run installs
// ShellCheck).
func shellcheck(t *testing.T, what, script string) {
	t.Helper()
	c := exec.Command("shellcheck", "-s", "sh", "-")
	c.Stdin = strings.NewReader(script)
	if out, err := c.CombinedOutput(); err != nil {
		t.Errorf("shellcheck %s: %v\n%s", what, err, out)
	}
}

// needrestart, which restarts services after upgrades on Debian and
// Ubuntu, must leave etcd.service to the package's safe restart: its
// configuration is Perl, read here as needrestart reads it.
func TestNeedrestartLeavesEtcdAlone(t *testing.T) {
	script := `our %nrconf; do $ARGV[0]; die "parse: $@ $!" if $@ || !%nrconf;
my @res = keys %{$nrconf{override_rc}};
for my $unit ("etcd.service", "etcd-grpc-proxy.service", "other.service") {
	my ($re) = grep { $unit =~ $_ } @res;
	print "$unit ", (defined $re ? $nrconf{override_rc}{$re} : "default"), "\n";
}`
	out, err := exec.Command("perl", "-e", script, "./files/needrestart.conf").CombinedOutput()
	if err != nil || string(out) != "etcd.service 0\netcd-grpc-proxy.service default\nother.service default\n" {
		t.Fatalf("perl: %v\n%s", err, out)
	}
}

// The monitoring package puts the rules where Prometheus setups load
// them, the dashboard where a Grafana provider it ships finds it, and the
// scrape job naming those rules; promtool reads what it installs.
func TestMonitoringPackage(t *testing.T) {
	d := exampleInventory(t)
	dir := t.TempDir()
	paths, err := MonitoringPackage(d, NodeOptions{Version: "1.0", Revision: "3", MTime: mtime, Out: dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 2 {
		t.Fatalf("want a deb and an rpm, got %v", paths)
	}
	deb := paths[0]
	name := d.Cluster.Name
	contains(t, "monitoring dpkg-deb -I", cmd(t, "dpkg-deb", "-I", deb), "Package: etcd-monitoring-"+name, "Architecture: all")
	if strings.Contains(cmd(t, "dpkg-deb", "-I", deb), "Depends:") {
		t.Error("the monitoring package depends on something: it goes on a Prometheus or Grafana host, with either or both")
	}
	contains(t, "monitoring dpkg-deb -c", cmd(t, "dpkg-deb", "-c", deb),
		"./etc/prometheus/rules/etcd-"+name+".yml", "./etc/grafana/provisioning/dashboards/etcd-"+name+".yaml",
		"./usr/share/etcd-monitoring/"+name+"/dashboards/etcd-dashboard.json", "./usr/share/etcd-monitoring/"+name+"/prometheus.yml")
	contains(t, "monitoring conffiles", cmd(t, "sh", "-c", "dpkg-deb --ctrl-tarfile "+deb+" | tar -xO ./conffiles"),
		"/etc/prometheus/rules/etcd-"+name+".yml", "/etc/grafana/provisioning/dashboards/etcd-"+name+".yaml")
	contains(t, "monitoring rpm config", cmd(t, "rpm", "-qp", "--configfiles", paths[1]), "/etc/prometheus/rules/etcd-"+name+".yml")
	out, _ := exec.Command("lintian", "--tag-display-limit", "0", deb).CombinedOutput()
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "E:") {
			t.Errorf("lintian: %s", line)
		}
	}
	root := t.TempDir()
	cmd(t, "dpkg-deb", "-x", deb, root)
	if out, err := exec.Command("promtool", "check", "rules", filepath.Join(root, "etc/prometheus/rules/etcd-"+name+".yml")).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules: %v\n%s", err, out)
	}
	conf := filepath.Join(root, "usr/share/etcd-monitoring", name, "prometheus.yml")
	if out, err := exec.Command("promtool", "check", "config", "--syntax-only", conf).CombinedOutput(); err != nil {
		t.Errorf("promtool check config: %v\n%s", err, out)
	}
	contains(t, "monitoring prometheus.yml", cmd(t, "cat", conf), "rule_files:\n  - /etc/prometheus/rules/etcd-"+name+".yml\n")
	contains(t, "grafana provider", cmd(t, "cat", filepath.Join(root, "etc/grafana/provisioning/dashboards/etcd-"+name+".yaml")),
		"path: /usr/share/etcd-monitoring/"+name+"/dashboards\n")
}

// exampleInventory is the shipped example inventory, parsed.
func exampleInventory(t *testing.T) *inventory.Inventory {
	t.Helper()
	data, err := os.ReadFile("../examples/static.toml")
	if err != nil {
		t.Fatal(err)
	}
	d, err := inventory.Parse("static.toml", data)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
