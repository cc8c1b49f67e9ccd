package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/etcd-appliance/appliance/e2e/testbed"
	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/rpm"
)

// Packages are the two builds of the etcd package the tests install: the
// second has a higher revision, for upgrades.
type Packages struct {
	// V1 and V2 are directories inside the hosts (bind mounts).
	V1, V2 string
	// Arch is the Go architecture of the hosts.
	Arch string
}

func (p Packages) deb(dir string) string { return fmt.Sprintf("%s/etcd_*_%s.deb", dir, p.Arch) }

func (p Packages) rpm(dir string) string {
	a := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[p.Arch]
	return fmt.Sprintf("%s/etcd-*.%s.rpm", dir, a)
}

// glob resolves a pattern inside the host.
func glob(ctx context.Context, n *testbed.Node, pattern string) (string, error) {
	out, err := n.Sh(ctx, "ls "+pattern)
	if err != nil {
		return "", err
	}
	f := strings.Fields(out)
	if len(f) != 1 {
		return "", fmt.Errorf("%s matches %q", pattern, out)
	}
	return f[0], nil
}

func unitState(ctx context.Context, n *testbed.Node, unit string) (active, enabled, pid, status string) {
	out, _ := n.Exec(ctx, "systemctl", "show", unit, "--property=ActiveState,UnitFileState,MainPID,StatusText")
	for _, line := range strings.Split(out, "\n") {
		k, v, _ := strings.Cut(line, "=")
		switch k {
		case "ActiveState":
			active = v
		case "UnitFileState":
			enabled = v
		case "MainPID":
			pid = v
		case "StatusText":
			status = v
		}
	}
	return
}

func waitActive(ctx context.Context, n *testbed.Node, unit string, d time.Duration) error {
	return Eventually(ctx, d, func() error {
		a, _, _, st := unitState(ctx, n, unit)
		if a != "active" {
			return fmt.Errorf("%s on %s is %s: %s", unit, n.Name, a, st)
		}
		return nil
	})
}

func statLine(ctx context.Context, n *testbed.Node, p string) string {
	out, err := n.Exec(ctx, "stat", "-c", "%a %U:%G", p)
	if err != nil {
		return "missing"
	}
	return strings.TrimSpace(out)
}

// checkFreshInstall asserts what any install must leave: the user, the
// directories, the default configuration, and nothing started.
func checkFreshInstall(ctx context.Context, n *testbed.Node) error {
	if _, err := n.Exec(ctx, "getent", "passwd", "etcd"); err != nil {
		return fmt.Errorf("no etcd user: %w", err)
	}
	for p, want := range map[string]string{
		"/var/lib/etcd": "700 etcd:etcd", "/etc/etcd": "755 root:root", "/etc/etcd/etcd.conf": "640 root:etcd",
	} {
		if got := statLine(ctx, n, p); got != want {
			return fmt.Errorf("%s is %q, want %q", p, got, want)
		}
	}
	a, e, _, _ := unitState(ctx, n, "etcd.service")
	if a != "inactive" || e == "enabled" {
		return fmt.Errorf("etcd.service is %s and %s after install: the package must not start or enable it", a, e)
	}
	return nil
}

// kv puts and reads back a key with the host's etcdctl.
func kv(ctx context.Context, n *testbed.Node, key, value string) error {
	if _, err := n.Exec(ctx, "etcdctl", "--endpoints=127.0.0.1:2379", "put", key, value); err != nil {
		return err
	}
	return readBack(ctx, n, key, value)
}

func readBack(ctx context.Context, n *testbed.Node, key, value string) error {
	out, err := n.Exec(ctx, "etcdctl", "--endpoints=127.0.0.1:2379", "get", "--print-value-only", key)
	if err != nil {
		return err
	}
	if strings.TrimSpace(out) != value {
		return fmt.Errorf("get %s = %q, want %q", key, out, value)
	}
	return nil
}

// DebLifecycle installs, starts, upgrades, removes, purges and reinstalls
// the deb on a fresh host.
func DebLifecycle(ctx context.Context, r *Run, n *testbed.Node, p Packages) {
	var v1, v2 string
	r.Step("deb: install revision 1 with dpkg; user and dirs created, nothing started", func() error {
		var err error
		if v1, err = glob(ctx, n, p.deb(p.V1)); err != nil {
			return err
		}
		if v2, err = glob(ctx, n, p.deb(p.V2)); err != nil {
			return err
		}
		if _, err := n.Exec(ctx, "dpkg", "-i", v1); err != nil {
			return err
		}
		return checkFreshInstall(ctx, n)
	})
	r.Step("deb: systemctl start etcd serves, with our STATUS", func() error {
		if _, err := n.Exec(ctx, "systemctl", "start", "etcd"); err != nil {
			return err
		}
		_, _, _, st := unitState(ctx, n, "etcd.service")
		if err := expect(st, "serving: default", "STATUS"); err != nil {
			return err
		}
		return kv(ctx, n, "pkg/deb", "before-upgrade")
	})
	var pid string
	r.Step("deb: an edited etcd.conf survives the upgrade to revision 2; running etcd is restarted", func() error {
		if _, err := n.Sh(ctx, "echo ETCD_LOG_LEVEL=warn >> /etc/etcd/etcd.conf"); err != nil {
			return err
		}
		_, _, pid, _ = unitState(ctx, n, "etcd.service")
		if _, err := n.Exec(ctx, "dpkg", "-i", "--force-confold", v2); err != nil {
			return err
		}
		conf, _ := n.ReadFile("etc/etcd/etcd.conf")
		if !strings.Contains(string(conf), "ETCD_LOG_LEVEL=warn") {
			return errors.New("the edit of /etc/etcd/etcd.conf was lost")
		}
		if err := waitActive(ctx, n, "etcd.service", 30*time.Second); err != nil {
			return err
		}
		_, _, newPID, _ := unitState(ctx, n, "etcd.service")
		if newPID == pid {
			return fmt.Errorf("etcd was not restarted by the upgrade (pid %s)", pid)
		}
		if out, _ := n.Exec(ctx, "dpkg-query", "-W", "-f=${Version}", "etcd"); !strings.HasSuffix(out, "-2") {
			return fmt.Errorf("installed version %s", out)
		}
		return readBack(ctx, n, "pkg/deb", "before-upgrade")
	})
	r.Step("deb: dpkg -r stops and disables etcd and keeps its data", func() error {
		if _, err := n.Exec(ctx, "systemctl", "enable", "etcd"); err != nil {
			return err
		}
		out, err := n.Exec(ctx, "dpkg", "-r", "etcd")
		if err != nil {
			return err
		}
		if err := expect(out, "/var/lib/etcd is kept", "remove message"); err != nil {
			return err
		}
		if a, e, _, _ := unitState(ctx, n, "etcd.service"); a == "active" || e == "enabled" {
			return fmt.Errorf("after remove: %s, %s", a, e)
		}
		if _, err := n.Exec(ctx, "test", "-e", "/etc/systemd/system/multi-user.target.wants/etcd.service"); err == nil {
			return errors.New("the enablement link survived the removal")
		}
		_, err = n.Exec(ctx, "test", "-f", "/var/lib/etcd/default/member/snap/db")
		return err
	})
	r.Step("deb: dpkg -P keeps the data dir too; reinstalled, the member has its data", func() error {
		if _, err := n.Exec(ctx, "dpkg", "-P", "etcd"); err != nil {
			return err
		}
		if _, err := n.Exec(ctx, "test", "-f", "/var/lib/etcd/default/member/snap/db"); err != nil {
			return fmt.Errorf("purge deleted the data: %w", err)
		}
		if _, err := n.Exec(ctx, "test", "-e", "/etc/etcd/etcd.conf"); err == nil {
			return errors.New("purge left /etc/etcd/etcd.conf")
		}
		if _, err := n.Exec(ctx, "dpkg", "-i", v2); err != nil {
			return err
		}
		if _, err := n.Exec(ctx, "systemctl", "start", "etcd"); err != nil {
			return err
		}
		return readBack(ctx, n, "pkg/deb", "before-upgrade")
	})
}

// RPMShim builds an rpm that tells Debian's rpm database what dpkg already
// installed (/bin/sh, systemd, shadow-utils), so that the etcd rpm installs
// with its dependency checks on.
func RPMShim(dir, arch string) (string, error) {
	info := nfpm.WithDefaults(&nfpm.Info{
		Name: "debian-base-shim", Arch: arch, Version: "1.0", Release: "1", Platform: "linux",
		Maintainer: "etcd appliance tests", Description: "Declares packages dpkg installed, for rpm's dependency checks.",
		License: "Apache-2.0", MTime: time.Unix(0, 0),
		Overridables: nfpm.Overridables{Provides: []string{"/bin/sh", "systemd", "shadow-utils"},
			RPM: nfpm.RPM{BuildHost: "e2e"}},
	})
	pkg, err := nfpm.Get("rpm")
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, "debian-base-shim.rpm")
	f, err := os.Create(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return p, pkg.Package(info, f)
}

// RPMLifecycle installs the rpm with Debian's rpm on a fresh host: the
// scriptlets run for real.
func RPMLifecycle(ctx context.Context, r *Run, n *testbed.Node, p Packages, shim string) {
	var v1, v2 string
	r.Step("rpm: install revision 1 with rpm; user and dirs created, nothing started", func() error {
		var err error
		if v1, err = glob(ctx, n, p.rpm(p.V1)); err != nil {
			return err
		}
		if v2, err = glob(ctx, n, p.rpm(p.V2)); err != nil {
			return err
		}
		if _, err := n.Exec(ctx, "rpm", "-i", shim); err != nil {
			return err
		}
		if _, err := n.Exec(ctx, "rpm", "-i", v1); err != nil {
			return err
		}
		return checkFreshInstall(ctx, n)
	})
	r.Step("rpm: start serves; an edited etcd.conf survives rpm -U; etcd restarted", func() error {
		if _, err := n.Exec(ctx, "systemctl", "start", "etcd"); err != nil {
			return err
		}
		if err := kv(ctx, n, "pkg/rpm", "v1"); err != nil {
			return err
		}
		if _, err := n.Sh(ctx, "echo ETCD_LOG_LEVEL=warn >> /etc/etcd/etcd.conf"); err != nil {
			return err
		}
		_, _, pid, _ := unitState(ctx, n, "etcd.service")
		if _, err := n.Exec(ctx, "rpm", "-U", v2); err != nil {
			return err
		}
		conf, _ := n.ReadFile("etc/etcd/etcd.conf")
		if !strings.Contains(string(conf), "ETCD_LOG_LEVEL=warn") {
			return errors.New("rpm -U replaced the edited etcd.conf")
		}
		if err := waitActive(ctx, n, "etcd.service", 30*time.Second); err != nil {
			return err
		}
		if _, _, newPID, _ := unitState(ctx, n, "etcd.service"); newPID == pid {
			return errors.New("etcd was not restarted by rpm -U")
		}
		return readBack(ctx, n, "pkg/rpm", "v1")
	})
	r.Step("rpm: rpm -e stops etcd, keeps the data and saves the edited config", func() error {
		if _, err := n.Exec(ctx, "rpm", "-e", "etcd"); err != nil {
			return err
		}
		if a, _, _, _ := unitState(ctx, n, "etcd.service"); a == "active" {
			return errors.New("etcd still running after rpm -e")
		}
		if _, err := n.Exec(ctx, "test", "-f", "/var/lib/etcd/default/member/snap/db"); err != nil {
			return fmt.Errorf("rpm -e deleted the data: %w", err)
		}
		_, err := n.Exec(ctx, "test", "-f", "/etc/etcd/etcd.conf.rpmsave")
		return err
	})
}

// RPMLint runs rpmlint inside a host: nfpm v2.45.2 writes absolute paths
// into the rpm payload (goreleaser/nfpm#1122), and rpmlint unpacks it with
// cpio, which would write into the root of whatever machine runs it.
func RPMLint(ctx context.Context, r *Run, n *testbed.Node, p Packages, config string) {
	r.Step("rpmlint: no errors (inside a host: it unpacks the payload to /)", func() error {
		pkg, err := glob(ctx, n, p.rpm(p.V1))
		if err != nil {
			return err
		}
		out, err := n.Exec(ctx, "rpmlint", "--config", config, pkg)
		r.Logf("%s", lastLine(out))
		return err
	})
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
