package render

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcd-appliance/appliance/internal/envfile"
	"github.com/etcd-appliance/appliance/inventory"
	"github.com/etcd-appliance/appliance/layout"
	"github.com/etcd-appliance/appliance/node"
)

// allowedKeys are the only assignments a rendered env file may hold.
func allowedKeys() map[string]map[string]bool {
	etcd := map[string]bool{}
	for _, f := range node.FlagNames() {
		etcd[envName(f)] = true
	}
	return map[string]map[string]bool{
		layout.EtcdConf:   etcd,
		layout.ProxyConf:  {layout.ProxyFlagsVar: true},
		layout.EtcdctlEnv: {"ETCDCTL_ENDPOINTS": true, "ETCDCTL_CACERT": true, "ETCDCTL_CERT": true, "ETCDCTL_KEY": true},
	}
}

// checkEnvFile asserts that every line of a rendered env file is a comment
// or one assignment of an allowed key, so no value can smuggle in a line.
func checkEnvFile(f File, allowed map[string]bool) error {
	lines := strings.Split(strings.TrimSuffix(string(f.Data), "\n"), "\n")
	assignments := 0
	for _, line := range lines {
		if strings.HasPrefix(line, "# ") {
			continue
		}
		key, _, ok := strings.Cut(line, "=")
		if !ok || !allowed[key] {
			return fmt.Errorf("%s: line %q is not a known assignment", f.Path, line)
		}
		assignments++
	}
	entries, err := envfile.Parse(f.Path, bytes.NewReader(f.Data))
	if err != nil {
		return err
	}
	if len(entries) != assignments {
		return fmt.Errorf("%s: %d assignment lines but %d variables", f.Path, assignments, len(entries))
	}
	return nil
}

// FuzzInventory: no input panics or takes long to load, and every input
// that validates renders to exactly the files meant (checkRendering).
// Run it with `go test ./render -run '^$' -fuzz FuzzInventory -fuzztime 60s`.
func FuzzInventory(f *testing.F) {
	for _, pattern := range []string{"testdata/golden/*/inventory.toml", "../inventory/testdata/invalid/*.toml", "../examples/*.toml"} {
		files, _ := filepath.Glob(pattern)
		for _, p := range files {
			b, _ := os.ReadFile(p)
			f.Add(b)
		}
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		f.Add([]byte(genInventory(rnd)))
	}
	allowed := allowedKeys()
	f.Fuzz(func(t *testing.T, data []byte) {
		start := time.Now()
		inv, err := inventory.Parse("fuzz.toml", data)
		if took := time.Since(start); took > 2*time.Second {
			t.Fatalf("loading %d bytes took %s", len(data), took)
		}
		if err != nil {
			return
		}
		r, err := Render(inv)
		if err != nil {
			t.Fatalf("a valid inventory failed to render: %v", err)
		}
		if err := checkRendering(inv, r); err != nil {
			t.Fatal(err)
		}
		for _, h := range r.Hosts {
			for _, file := range h.Files {
				if a, ok := allowed[file.Path]; ok {
					if err := checkEnvFile(file, a); err != nil {
						t.Fatal(err)
					}
				}
				if file.Path == layout.EtcdConf {
					entries, _ := envfile.Parse(file.Path, bytes.NewReader(file.Data))
					if _, err := node.Parse(nil, envfile.Environ(entries)); err != nil {
						t.Fatalf("%s: node refuses the rendered env: %v", h.Host.Name, err)
					}
				}
			}
		}
	})
}

// TestEnvFilesOnlyKnownAssignments runs the fuzz property over the seeds.
func TestEnvFilesOnlyKnownAssignments(t *testing.T) {
	allowed := allowedKeys()
	cases, _ := filepath.Glob("testdata/golden/*/inventory.toml")
	for _, c := range cases {
		r, err := Render(loadValid(t, c))
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range r.Hosts {
			for _, file := range h.Files {
				if a, ok := allowed[file.Path]; ok {
					if err := checkEnvFile(file, a); err != nil {
						t.Errorf("%s: %v", c, err)
					}
				}
			}
		}
	}
}
