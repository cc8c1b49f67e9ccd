package inventory

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ReadFile reads only regular files of bounded size: a FIFO, a device or
// a directory is refused at once instead of blocking or reading forever.
func TestReadFileRefusesWhatIsNotAnInventory(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.toml")
	os.WriteFile(big, []byte(strings.Repeat("# padding\n", MaxBytes/10+1)), 0o644)
	for _, c := range []struct{ path, want string }{
		{fifo, "is not a regular file"},
		{"/dev/zero", "is not a regular file"},
		{dir, "is not a regular file"},
		{big, "is larger than"},
	} {
		done := make(chan error, 1)
		go func() { _, err := ReadFile(c.path); done <- err }()
		select {
		case err := <-done:
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "fix:") {
				t.Errorf("%s: %v, want %q", c.path, err, c.want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: ReadFile still reading after 5 s", c.path)
		}
	}
}

// Deep nesting is refused before the decoder sees it (it took 9 s and
// 2.9 GB for 32 KB); brackets inside strings and comments do not count.
func TestLoadBoundsNesting(t *testing.T) {
	bomb := "version = 1\n[cluster]\nname = \"x\"\n[cluster.options]\nx = " + strings.Repeat("{a = ", 4000) + "1" + strings.Repeat("}", 4000) + "\n"
	start := time.Now()
	_, err := Load("bomb.toml", []byte(bomb))
	if err == nil || !strings.Contains(err.Error(), "bomb.toml:5: values nested more than 8 deep") {
		t.Errorf("nested bomb: %v", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("refusing the bomb took %s", took)
	}
	quoted := "version = 1 # [[[[[[[[[[\n[cluster]\nname = \"x\"\n[cluster.options]\n\"log-outputs\" = \"[[[[[[[[[{{{{{{\"\nx = '''\n[[[[[[[[[[\n'''\n"
	if _, err := Load("q.toml", []byte(quoted)); err != nil && strings.Contains(err.Error(), "nested") {
		t.Errorf("brackets in strings and comments counted: %v", err)
	}
}
