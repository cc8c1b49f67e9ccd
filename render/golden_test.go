package render

import (
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/etcd-appliance/appliance/examples"
	"github.com/etcd-appliance/appliance/inventory"
)

var update = flag.Bool("update", false, "rewrite golden files")

// loadValid loads, defaults and validates a testdata inventory.
func loadValid(t testing.TB, path string) *inventory.Inventory {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := inventory.Parse("inventory.toml", data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return inv
}

// renderTree returns every rendered file keyed by HOST/path or _cluster/name,
// with its mode.
func renderTree(t testing.TB, inv *inventory.Inventory) map[string]string {
	t.Helper()
	r, err := Render(inv)
	if err != nil {
		t.Fatal(err)
	}
	tree := map[string]string{}
	for _, h := range r.Hosts {
		for _, f := range h.Files {
			tree[h.Host.Name+f.Path] = fmt.Sprintf("%04o %s:%s\n%s", f.Mode, f.Owner, f.Group, f.Data)
		}
	}
	for _, f := range r.Cluster {
		tree["_cluster/"+f.Name] = fmt.Sprintf("%04o\n%s", f.Mode, f.Data)
	}
	return tree
}

// goldenCases maps each golden case's directory to its inventory: its own
// testdata/golden/CASE/inventory.toml, and the bundled examples as
// testdata/golden/example-NAME.
func goldenCases(t testing.TB) map[string]string {
	cases := map[string]string{}
	own, _ := filepath.Glob("testdata/golden/*/inventory.toml")
	for _, c := range own {
		cases[filepath.Dir(c)] = c
	}
	for _, name := range examples.Names() {
		cases[filepath.Join("testdata/golden", "example-"+name)] = filepath.Join("..", "examples", name+".toml")
	}
	if len(cases) < 7 {
		t.Fatalf("found %d golden cases", len(cases))
	}
	return cases
}

// TestGolden renders each golden case's inventory and compares with
// CASE/out/ (each file's first line is its mode and owner). Update with
// `go test ./render -run TestGolden -update`.
func TestGolden(t *testing.T) {
	for dir, c := range goldenCases(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			tree := renderTree(t, loadValid(t, c))
			out := filepath.Join(dir, "out")
			if *update {
				os.RemoveAll(out)
				for name, content := range tree {
					p := filepath.Join(out, name)
					os.MkdirAll(filepath.Dir(p), 0o755)
					if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			want := map[string]string{}
			filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					b, _ := os.ReadFile(p)
					rel, _ := filepath.Rel(out, p)
					want[rel] = string(b)
				}
				return nil
			})
			var names []string
			for n := range tree {
				names = append(names, n)
			}
			for n := range want {
				if _, ok := tree[n]; !ok {
					names = append(names, n)
				}
			}
			sort.Strings(names)
			for _, n := range names {
				if tree[n] != want[n] {
					t.Errorf("%s differs from %s (run with -update and review the diff):\n--- want\n%s\n--- got\n%s", n, out, want[n], tree[n])
				}
			}
		})
	}
}

// TestRenderDeterministic renders twice: map order must never leak into
// the output.
func TestRenderDeterministic(t *testing.T) {
	for _, c := range []string{"testdata/golden/tls-options/inventory.toml", "../examples/proxies.toml"} {
		inv := loadValid(t, c)
		a, b := renderTree(t, inv), renderTree(t, inv)
		for k := range a {
			if a[k] != b[k] {
				t.Errorf("%s: %s differs between two renders", c, k)
			}
		}
	}
}
