package etcdtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Releases of etcd whose data dirs tests make: the one Debian 12 ships
// (etcd-server 3.4.23, from the Debian archive as users have it), and the
// latest 3.5 and 3.6 (upstream's Go modules, built here).
const (
	DebianPackage = "etcd-server"
	Release35     = "v3.5.35"
	Release36     = "v3.6.16"
)

var (
	releaseMu    sync.Mutex
	releaseCache = map[string]string{}
)

// releaseDir is where built and downloaded releases are kept between test
// runs: beside the Go build cache, keyed by release.
func releaseDir() (string, error) {
	out, err := exec.Command("go", "env", "GOCACHE").Output()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(filepath.Dir(strings.TrimSpace(string(out))), "etcd-appliance-releases")
	return dir, os.MkdirAll(dir, 0o755)
}

// ReleaseBinary returns the etcd server binary of an older release: the
// Debian package's (DebianPackage) or an upstream version (Release35,
// Release36). The first call builds or downloads it, later ones (also of
// later test runs) find it in the cache.
func ReleaseBinary(t testing.TB, release string) string {
	t.Helper()
	p, err := releaseBinary(release)
	if err != nil {
		t.Fatalf("etcd %s: %v", release, err)
	}
	return p
}

// Release is ReleaseBinary outside a test (the system test copies the
// binaries into its hosts).
func Release(release string) (string, error) { return releaseBinary(release) }

func releaseBinary(release string) (string, error) {
	releaseMu.Lock()
	defer releaseMu.Unlock()
	if p, ok := releaseCache[release]; ok {
		return p, nil
	}
	dir, err := releaseDir()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "etcd-"+release)
	if _, err := os.Stat(bin); err != nil {
		if release == DebianPackage {
			err = debianEtcd(dir, bin)
		} else {
			err = buildRelease(dir, release, bin)
		}
		if err != nil {
			return "", err
		}
	}
	releaseCache[release] = bin
	return bin, nil
}

// debianEtcd downloads Debian's etcd-server package with apt and takes
// its /usr/bin/etcd.
func debianEtcd(dir, bin string) error {
	tmp, err := os.MkdirTemp(dir, "deb-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	run := func(name string, args ...string) error {
		cmd := exec.Command(name, args...)
		cmd.Dir = tmp
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := run("apt-get", "download", DebianPackage); err != nil {
		return err
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, DebianPackage+"_*.deb"))
	if len(debs) != 1 {
		return fmt.Errorf("apt-get download %s gave %v", DebianPackage, debs)
	}
	if err := run("dpkg-deb", "-x", debs[0], "x"); err != nil {
		return err
	}
	return os.Rename(filepath.Join(tmp, "x", "usr", "bin", "etcd"), bin)
}

// buildRelease builds upstream etcd at a release tag in a module of its
// own, with the Makefile's flags.
func buildRelease(dir, release, bin string) error {
	mod, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(mod)
	env := append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-trimpath -buildvcs=false -mod=mod")
	for _, argv := range [][]string{
		{"go", "mod", "init", "etcdrelease"},
		{"go", "get", "go.etcd.io/etcd/server/v3@" + release},
		// Built inside its own module dir, then renamed into place:
		// test binaries of several packages (separate processes) may
		// build the same release at once on a cold cache, and a shared
		// NAME.part would be renamed away under one of them.
		{"go", "build", "-ldflags", "-s -w", "-o", filepath.Join(mod, "etcd"), "go.etcd.io/etcd/server/v3"},
	} {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Dir = mod
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, out)
		}
	}
	return os.Rename(filepath.Join(mod, "etcd"), bin)
}

// ReleaseDataDir runs etcd of an older release (see ReleaseBinary) as a
// single member with its data dir under parent, puts keys k000..kNNN,
// stops it gracefully and returns the data dir, as a host that ran that
// release leaves it.
func ReleaseDataDir(t testing.TB, release, parent string, keys int) string {
	t.Helper()
	c := NewClusterIn(t, 1, parent)
	c.UseBinary(ReleaseBinary(t, release))
	m := c.Members[0]
	m.Start()
	if !Eventually(60*time.Second, 100*time.Millisecond, func() bool { return healthy(m.ClientURL) }) {
		t.Fatalf("etcd %s not healthy after 60 s:\n%s", release, tail(m.Log(), 4000))
	}
	cli := Client(t, []string{m.ClientURL})
	for i := range keys {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := cli.Put(ctx, fmt.Sprintf("k%03d", i), fmt.Sprintf("v%d", i))
		cancel()
		if err != nil {
			t.Fatalf("etcd %s: put: %v", release, err)
		}
	}
	cli.Close()
	// A cluster stopped before it decided its version leaves data that
	// does not say which release wrote it: wait for the decision.
	if !Eventually(30*time.Second, 100*time.Millisecond, func() bool { return ClusterVersion(m.ClientURL) != "" }) {
		t.Fatalf("etcd %s did not decide its cluster version in 30 s", release)
	}
	m.Signal(syscall.SIGTERM)
	if _, exited := m.Wait(30 * time.Second); !exited {
		t.Fatalf("etcd %s did not stop", release)
	}
	return m.DataDir
}

// healthy reports whether /health answers 200 (etcd 3.4 has no /readyz).
func healthy(clientURL string) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(clientURL + "/health")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// ClusterVersion is the cluster version /version reports, "" while the
// cluster has not decided it (or the member does not answer).
func ClusterVersion(clientURL string) string {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(clientURL + "/version")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var v struct {
		Cluster string `json:"etcdcluster"`
	}
	if json.NewDecoder(resp.Body).Decode(&v) != nil || v.Cluster == "not_decided" {
		return ""
	}
	return v.Cluster
}

// KilledDataDir runs Debian's etcd 3.4 with a backend batch interval of an
// hour (so that its backend commits nothing), puts keys k00..kNN, kills
// it and returns its data dir: acknowledged writes in the WAL only, as an
// etcd killed (or stopped with writes in flight) leaves them.
func KilledDataDir(t testing.TB, parent string, keys int) string {
	t.Helper()
	c := NewClusterIn(t, 1, parent)
	c.UseBinary(ReleaseBinary(t, DebianPackage))
	m := c.Members[0]
	m.Args = append(m.Args, "--backend-batch-interval=1h", "--backend-batch-limit=1000000")
	m.Start()
	if !Eventually(time.Minute, 100*time.Millisecond, func() bool { return ClusterVersion(m.ClientURL) != "" }) {
		t.Fatalf("etcd 3.4 did not start:\n%s", tail(m.Log(), 4000))
	}
	cli := Client(t, []string{m.ClientURL})
	for i := range keys {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := cli.Put(ctx, fmt.Sprintf("k%02d", i), "v")
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	m.Kill()
	return m.DataDir
}
