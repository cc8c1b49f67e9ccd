package render

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/coreos/go-systemd/v22/unit"

	"github.com/etcd-appliance/appliance/units"
)

// TestRenderedDropInsVerify: every rendered drop-in parses, and together
// with the shipped unit passes `systemd-analyze verify`.
func TestRenderedDropInsVerify(t *testing.T) {
	cases, _ := filepath.Glob("testdata/golden/*/inventory.toml")
	checked := 0
	for _, c := range cases {
		r, err := Render(loadValid(t, c))
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range r.Hosts {
			for _, f := range h.Files {
				if !f.UnitFile {
					continue
				}
				if _, err := unit.DeserializeOptions(bytes.NewReader(f.Data)); err != nil {
					t.Errorf("%s %s %s: %v", c, h.Host.Name, f.Path, err)
				}
				root := t.TempDir()
				if out, err := exec.Command("cp", "-a", "/usr/lib/systemd/system", filepath.Join(root, "sys")).CombinedOutput(); err != nil {
					t.Fatalf("%v %s", err, out)
				}
				os.MkdirAll(filepath.Join(root, "usr/lib/systemd"), 0o755)
				os.Rename(filepath.Join(root, "sys"), filepath.Join(root, "usr/lib/systemd/system"))
				unitFile, _ := units.FS.ReadFile(units.Etcd)
				os.WriteFile(filepath.Join(root, "usr/lib/systemd/system", units.Etcd), unitFile, 0o644)
				os.MkdirAll(filepath.Join(root, filepath.Dir(f.Path)), 0o755)
				os.WriteFile(filepath.Join(root, f.Path), f.Data, 0o644)
				os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755)
				os.WriteFile(filepath.Join(root, "usr/bin/etcd"), []byte("#!/bin/sh\n"), 0o755)
				out, err := exec.Command("systemd-analyze", "verify", "--man=no", "--root="+root, units.Etcd).CombinedOutput()
				if err != nil || len(bytes.TrimSpace(out)) != 0 {
					t.Errorf("%s %s: systemd-analyze verify with %s: %v\n%s", c, h.Host.Name, f.Path, err, out)
				}
				checked++
			}
		}
	}
	if checked == 0 {
		t.Fatal("no drop-in rendered by the golden cases")
	}
}
