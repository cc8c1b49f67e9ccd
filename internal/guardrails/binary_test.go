package guardrails

import (
	"flag"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/etcd-appliance/appliance/internal/etcdtest"
)

var update = flag.Bool("update", false, "rewrite golden files")

// The shipped binary is one multi-call etcd (server, etcdctl, etcdutl,
// etcd-installer): every host needs etcd-installer (doctor and data dir
// inspection over SSH run there), and it shares the etcd server's code, so
// one binary is 32 MB where separate server and installer binaries are
// 53 MB (docs/ARCHITECTURE.md has the figures). The server personality
// therefore links the installer's modules; these tests say so honestly
// and check the real binary: the modules it carries are pinned, so a new
// dependency of the shipped binary is a reviewed change, and the server's
// own code path (package node) still runs none of the installer's code.

// TestShippedBinaryModules pins the modules linked into bin/etcd, as `go
// version -m` reads them from the binary itself. Update with -update after
// reviewing why the binary needs the new module.
func TestShippedBinaryModules(t *testing.T) {
	bin := filepath.Join(etcdtest.BinDir(t), "etcd")
	out, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		t.Fatalf("go version -m %s: %v", bin, err)
	}
	var mods []string
	settings := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 2 && f[0] == "path":
			if f[1] != "github.com/etcd-appliance/appliance/cmd/etcd" {
				t.Errorf("bin/etcd is built from %s, want ./cmd/etcd", f[1])
			}
		case len(f) >= 2 && f[0] == "dep":
			mods = append(mods, f[1])
		case len(f) >= 2 && f[0] == "build":
			k, v, _ := strings.Cut(f[1], "=")
			settings[k] = v
		}
	}
	if settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" {
		t.Errorf("bin/etcd build settings: CGO_ENABLED=%q -trimpath=%q; the Makefile's flags are CGO_ENABLED=0 -trimpath", settings["CGO_ENABLED"], settings["-trimpath"])
	}
	got := strings.Join(mods, "\n") + "\n"
	golden := "testdata/etcd-binary-modules.golden"
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, _ := os.ReadFile(golden)
	if got != string(want) {
		t.Errorf("the modules in bin/etcd changed (review, then go test ./internal/guardrails -run TestShippedBinaryModules -update):\n%s",
			lineDiff(string(want), got))
	}
}

func lineDiff(want, got string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
			m[l] = true
		}
		return m
	}
	w, g := in(want), in(got)
	var b strings.Builder
	for l := range g {
		if !w[l] {
			b.WriteString("+ " + l + "\n")
		}
	}
	for l := range w {
		if !g[l] {
			b.WriteString("- " + l + "\n")
		}
	}
	return b.String()
}

// TestEveryMainIsBuilt: a main nothing builds rots unseen. Each must be
// named by the Makefile or by the Go code that builds it.
func TestEveryMainIsBuilt(t *testing.T) {
	var builders strings.Builder
	for _, p := range []string{"../../Makefile", "../../e2e/cluster.go"} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		builders.Write(b)
	}
	for _, p := range list(t, "github.com/etcd-appliance/appliance/...") {
		if p.Name != "main" {
			continue
		}
		rel := "./" + strings.TrimPrefix(p.ImportPath, "github.com/etcd-appliance/appliance/")
		if !strings.Contains(builders.String(), rel) {
			t.Errorf("%s is a main that neither the Makefile nor the e2e builder builds: remove it or build it", rel)
		}
	}
}

// TestNoInit: wiring happens in constructors called from main, never in
// init() (STYLE.md), so linking a package into the multi-call binary
// runs none of its code until its personality is chosen.
func TestNoInit(t *testing.T) {
	for _, p := range list(t, "github.com/etcd-appliance/appliance/...") {
		for _, f := range p.GoFiles {
			path := filepath.Join(p.Dir, f)
			file, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range file.Decls {
				if fn, ok := d.(*ast.FuncDecl); ok && fn.Recv == nil && fn.Name.Name == "init" {
					t.Errorf("%s has func init()", path)
				}
			}
		}
	}
}
