package units

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/coreos/go-systemd/v22/unit"

	"github.com/etcd-appliance/appliance/layout"
	"github.com/etcd-appliance/appliance/node"
)

func options(t *testing.T, name string) map[string][]string {
	t.Helper()
	b, err := FS.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := unit.DeserializeOptions(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s does not parse: %v", name, err)
	}
	m := map[string][]string{}
	for _, o := range opts {
		m[o.Section+"."+o.Name] = append(m[o.Section+"."+o.Name], o.Value)
	}
	return m
}

func TestEtcdUnit(t *testing.T) {
	o := options(t, Etcd)
	want := map[string]string{
		"Service.Type":      "notify",
		"Service.User":      "etcd",
		"Service.ExecStart": "/usr/bin/etcd",
		"Service.Restart":   "on-failure",
		"Install.WantedBy":  "multi-user.target",
	}
	for k, v := range want {
		if got := o[k]; len(got) != 1 || got[0] != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	// The configuration, then the threshold only a scheduled maintenance's
	// restart has (optional: absent otherwise).
	if got := strings.Join(o["Service.EnvironmentFile"], " "); got != "/etc/etcd/etcd.conf -"+layout.DefragmentEnv {
		t.Errorf("Service.EnvironmentFile = %q", got)
	}
	for _, k := range []string{"Service.TimeoutStartSec", "Service.WatchdogSec", "Service.LimitNOFILE"} {
		if len(o[k]) != 1 {
			t.Errorf("%s missing", k)
		}
	}
	// The exit codes that must not cause a restart are the node's.
	prevent := strings.Fields(strings.Join(o["Service.RestartPreventExitStatus"], " "))
	for _, code := range []int{node.ExitConfig, node.ExitRemoved, node.ExitOldData, node.ExitLostData} {
		found := false
		for _, p := range prevent {
			found = found || p == strconv.Itoa(code)
		}
		if !found {
			t.Errorf("RestartPreventExitStatus=%q lacks %d", prevent, code)
		}
	}
}

// verifyRoot builds a root for `systemd-analyze verify --root`: the host's
// unit directory (for the targets our units name), the unit, and an
// executable /usr/bin/etcd.
func verifyRoot(t *testing.T, name string) string {
	t.Helper()
	root := t.TempDir()
	if out, err := exec.Command("cp", "-a", "/usr/lib/systemd/system", filepath.Join(root, "sys")).CombinedOutput(); err != nil {
		t.Fatalf("copying unit directory: %v %s", err, out)
	}
	for _, d := range []string{"usr/lib/systemd", "etc/systemd/system", "usr/bin"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Rename(filepath.Join(root, "sys"), filepath.Join(root, "usr/lib/systemd/system")); err != nil {
		t.Fatal(err)
	}
	// A timer is verified with the service it starts.
	for _, n := range []string{name, strings.TrimSuffix(name, ".timer") + ".service"} {
		b, _ := FS.ReadFile(n)
		if err := os.WriteFile(filepath.Join(root, "etc/systemd/system", n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, bin := range []string{"etcd", "etcd-installer"} {
		if err := os.WriteFile(filepath.Join(root, "usr/bin", bin), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// systemd-analyze verify exits 0 even for unknown settings; it only warns.
// Any output is a failure.
func TestUnitsVerify(t *testing.T) {
	for _, name := range []string{Etcd, GRPCProxy, Backup, BackupTimer, Maintenance, MaintenanceTimer} {
		root := verifyRoot(t, name)
		out, err := exec.Command("systemd-analyze", "verify", "--man=no", "--root="+root, name).CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) != 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", name, err, out)
		}
	}
}

var exposure = regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`)

// TestUnitsExposure keeps the sandboxing: systemd rates each unit's
// exposure from 0 (locked down) to 10.
func TestUnitsExposure(t *testing.T) {
	dir := t.TempDir()
	// The backup runs as root: it reads the host's client key, the
	// cluster's root user, which only root may read; everything else is
	// locked down as far as a networked oneshot allows.
	limit := map[string]float64{Etcd: 2.0, GRPCProxy: 2.0, Backup: 2.1, Maintenance: 1.9}
	for _, name := range []string{Etcd, GRPCProxy, Backup, Maintenance} {
		b, _ := FS.ReadFile(name)
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("systemd-analyze", "security", "--offline=yes", path).CombinedOutput()
		m := exposure.FindSubmatch(out)
		if m == nil {
			t.Fatalf("systemd-analyze security %s: %v\n%s", name, err, out)
		}
		score, _ := strconv.ParseFloat(string(m[1]), 64)
		t.Logf("%s exposure %.1f", name, score)
		if score > limit[name] {
			t.Errorf("%s exposure %.1f, want <= %.1f", name, score, limit[name])
		}
	}
}
