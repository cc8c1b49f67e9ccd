package installer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/etcd-appliance/appliance/inventory/inventorytest"
	"github.com/etcd-appliance/appliance/packaging/repo"
	"github.com/etcd-appliance/appliance/packaging/repo/repotest"
)

// package --repo makes a signed repository of the per-host packages with
// the operator's key, private (0700, packages 0600), that apt-get accepts.
func TestPackageRepo(t *testing.T) {
	dir := t.TempDir()
	inv := filepath.Join(dir, "prod.toml")
	os.WriteFile(inv, []byte(inventorytest.Three(`tls = "off"`)), 0o644)
	pkgs, rdir := filepath.Join(dir, "pkgs"), filepath.Join(dir, "repo")
	t.Setenv(repo.KeyEnv, "")
	if _, errOut, code := run(t, "package", inv, "--out", pkgs, "--repo", rdir); code == 0 || !strings.Contains(errOut, "set ETCD_SIGNING_KEY") {
		t.Fatalf("--repo without a key: %d %s", code, errOut)
	}
	if _, err := os.Stat(pkgs); err == nil {
		t.Error("packages built before the missing key was noticed")
	}

	key, _ := repotest.OperatorKey(t, "")
	t.Setenv(repo.KeyEnv, key)
	out, errOut, code := run(t, "package", inv, "--out", pkgs, "--repo", rdir, "--repo-url", "http://127.0.0.1:1/etcd-node", "--mtime", "1700000000")
	if code != 0 || !strings.Contains(out, "signed apt and yum repository (4 debs, 4 rpms)") {
		t.Fatalf("package --repo: %d\n%s%s", code, out, errOut)
	}
	if _, errOut, code := run(t, "package", inv, "--out", pkgs, "--repo", pkgs); code == 0 || !strings.Contains(errOut, "replaced as a whole") {
		t.Errorf("--repo equal to --out: %d %s", code, errOut)
	}
	if ents, _ := os.ReadDir(pkgs); len(ents) != 8 {
		t.Errorf("--repo equal to --out touched the packages: %v", ents)
	}
	if fi, err := os.Stat(rdir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("%s: %v %v, want 0700", rdir, fi.Mode(), err)
	}
	for _, want := range []string{"pool/main/e/etcd-node-etcd0", "rpm/x86_64/Packages", "rpm/aarch64/Packages", "etcd-node.sources", "etcd-node.repo", "etcd-node-archive-keyring.gpg", "RPM-GPG-KEY-etcd-node"} {
		if _, err := os.Stat(filepath.Join(rdir, want)); err != nil {
			t.Errorf("the repository lacks %s", want)
		}
	}
	// apt-get accepts it and finds every host's package by name.
	root, ring := t.TempDir(), filepath.Join(rdir, "etcd-node-archive-keyring.gpg")
	if out, err := repotest.Apt(t, root, rdir, ring, "update"); err != nil {
		t.Fatalf("apt-get update: %v\n%s", err, out)
	}
	// And the cluster's monitoring package, for the Prometheus host.
	if out, err := repotest.Apt(t, root, rdir, ring, "apt-cache", "policy", "etcd-node-etcd0", "etcd-node-etcd2", "etcd-monitoring-t"); err != nil ||
		strings.Count(out, "Candidate: 1.0-1") != 3 {
		t.Errorf("apt-cache policy: %v\n%s", err, out)
	}
}
