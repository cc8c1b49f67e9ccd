package e2e

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"github.com/etcd-appliance/appliance/e2e/testbed"
)

// Main runs the system test: it boots hosts, runs the suites and prints a
// summary with every step's time. It returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("system-test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dist1 := fs.String("dist", "build/e2e/v1", "directory with the etcd packages (revision 1)")
	dist2 := fs.String("dist2", "build/e2e/v2", "directory with the etcd packages of a higher revision")
	cache := fs.String("cache", "/var/cache/etcd-e2e", "where the base image is cached")
	work := fs.String("workdir", "", "work directory (default: a new one under /var/tmp)")
	only := fs.String("only", "", "comma-separated suites to run (packages, rpm, distro, repo, cluster, bootstrap); default all")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(stderr, "system-test: needs root (containers, namespaces, mounts)")
		return 2
	}
	want := func(s string) bool { return *only == "" || strings.Contains(","+*only+",", ","+s+",") }
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	dir := *work
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("/var/tmp", "etcd-e2e-"); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
	}
	abs := func(p string) string { a, _ := filepath.Abs(p); return a }
	r := NewRun(stdout)
	tb := testbed.New(dir, *cache, func(f string, a ...any) { r.Logf(f, a...) })
	tb.Keep = os.Getenv("KEEP") == "1"
	tb.Binds = []string{abs(*dist1) + ":/pkgs/v1", abs(*dist2) + ":/pkgs/v2", abs("packaging") + ":/pkgs/src"}
	distroDir := filepath.Join(dir, "distro")
	if want("distro") {
		// Every host binds it: it must exist before the first boots.
		if err := os.MkdirAll(distroDir, 0o755); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		tb.Binds = append(tb.Binds, distroDir+":"+DistroDir)
	}
	repoDir := filepath.Join(dir, "repo")
	if want("repo") {
		if err := os.MkdirAll(repoDir, 0o755); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		tb.Binds = append(tb.Binds, repoDir+":"+RepoDir)
	}
	defer tb.Teardown()
	pk := Packages{V1: "/pkgs/v1", V2: "/pkgs/v2", Arch: runtime.GOARCH}

	if err := r.Step("base image", func() error { return tb.EnsureBase(ctx) }); err != nil {
		r.Summary()
		return 1
	}
	if want("packages") {
		var n *testbed.Node
		if r.Step("boot a host for the deb", func() (err error) { n, err = tb.AddNode(ctx, "pkgdeb", 30); return err }) == nil {
			DebLifecycle(ctx, r, n, pk)
		}
		tb.Release()
	}
	if want("rpm") {
		var n *testbed.Node
		if r.Step("boot a host for the rpm", func() (err error) { n, err = tb.AddNode(ctx, "pkgrpm", 31); return err }) == nil {
			shim, err := RPMShim(filepath.Join(n.Root(), "root"), runtime.GOARCH)
			if r.Step("build the rpm shim", func() error { return err }) == nil {
				RPMLifecycle(ctx, r, n, pk, "/root/"+filepath.Base(shim))
				RPMLint(ctx, r, n, pk, "/pkgs/src/rpmlint.toml")
			}
		}
		tb.Release()
	}
	if want("distro") {
		if r.Step("gather Debian's etcd 3.4.23 packages and build upstream etcd 3.5 and 3.6", func() error { return PrepareDistro(distroDir) }) == nil {
			Distro(ctx, r, tb, pk)
		}
		tb.Release()
	}
	if want("repo") {
		Repo(ctx, r, tb, pk, repoDir, abs(*dist1), abs(*dist2))
		tb.Release()
	}
	var writer string
	if want("cluster") || want("bootstrap") {
		if r.Step("build the e2e writer", func() (err error) { writer, err = BuildWriter(dir); return err }) != nil {
			r.Summary()
			return 1
		}
	}
	if want("cluster") {
		ct := &ClusterTest{Ctx: ctx, R: r, TB: tb, Pk: pk, Writer: writer}
		if ct.Setup() == nil {
			ct.Scenarios()
			ct.NodePackages()
		}
		tb.Release()
	}
	if want("bootstrap") {
		Bootstrap(ctx, r, tb, pk, writer)
	}
	r.Summary()
	if r.Failed() {
		return 1
	}
	return 0
}
