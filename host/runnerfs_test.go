package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestRunnerFSLocally drives RunnerFS through real commands on this
// machine, the same argv it sends over SSH.
func TestRunnerFSLocally(t *testing.T) {
	u, _ := user.Current()
	g, _ := user.LookupGroupId(u.Gid)
	r := RunnerFS{R: LocalRunner{}}
	dir := t.TempDir()
	p := filepath.Join(dir, "sub", "f.conf")

	if _, err := r.ReadFile(p); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	res, err := r.WriteFile(p, []byte("a b 'c' $HOME\n"), 0o640, u.Username, g.Name)
	if err != nil || !res.Changed {
		t.Fatalf("write: %+v %v", res, err)
	}
	if b, _ := os.ReadFile(p); string(b) != "a b 'c' $HOME\n" {
		t.Errorf("content %q", b)
	}
	fi, err := r.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o640 || fi.IsDir() || fi.Size() != 14 {
		t.Errorf("stat: %v %v", fi, err)
	}
	res, err = r.WriteFile(p, []byte("a b 'c' $HOME\n"), 0o640, u.Username, g.Name)
	if err != nil || res.Changed || res.MetaChanged {
		t.Errorf("unchanged write: %+v %v", res, err)
	}
	res, err = r.WriteFile(p, []byte("a b 'c' $HOME\n"), 0o600, u.Username, g.Name)
	if err != nil || !res.MetaChanged {
		t.Errorf("mode change: %+v %v", res, err)
	}
	if err := r.MkdirAll(filepath.Join(dir, "d1", "d2"), 0o700, u.Username, g.Name); err != nil {
		t.Fatal(err)
	}
	es, err := r.ReadDir(dir)
	if err != nil || len(es) != 2 {
		t.Errorf("readdir: %v %v", es, err)
	}
	if err := r.Rename(filepath.Join(dir, "d1"), filepath.Join(dir, "d1.removed-1")); err != nil {
		t.Fatal(err)
	}
	if fi, err := r.Stat(filepath.Join(dir, "d1.removed-1")); err != nil || !fi.IsDir() {
		t.Errorf("renamed dir: %v %v", fi, err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "sub"))
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
}

// modeSpy records the mode of the file dd is about to write into.
type modeSpy struct {
	LocalRunner
	modes []fs.FileMode
}

func (s *modeSpy) Run(ctx context.Context, stdin io.Reader, argv ...string) ([]byte, error) {
	if argv[0] == "dd" {
		for _, a := range argv[1:] {
			if p, ok := strings.CutPrefix(a, "of="); ok {
				fi, err := os.Stat(p)
				if err != nil {
					return nil, fmt.Errorf("dd target does not exist yet: %w", err)
				}
				s.modes = append(s.modes, fi.Mode().Perm())
			}
		}
	}
	return s.LocalRunner.Run(ctx, stdin, argv...)
}

// TestRunnerFSNeverExposesKeys checks that a key's bytes never land in a
// file others can read, not even in the temporary file.
func TestRunnerFSNeverExposesKeys(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	u, _ := user.Current()
	g, _ := user.LookupGroupId(u.Gid)
	spy := &modeSpy{}
	r := RunnerFS{R: spy}
	p := filepath.Join(t.TempDir(), "pki", "server.key")
	if _, err := r.WriteFile(p, []byte("-----BEGIN EC PRIVATE KEY-----\n"), 0o600, u.Username, g.Name); err != nil {
		t.Fatal(err)
	}
	if len(spy.modes) != 1 || spy.modes[0] != 0o600 {
		t.Errorf("dd wrote into a file of mode %v, want 0600", spy.modes)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v %v", fi, err)
	}
}
