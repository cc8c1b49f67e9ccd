package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f.conf")
	o := Options{Mode: 0o640, UID: -1, GID: -1}

	r, err := Write(p, []byte("one\n"), o)
	if err != nil || !r.Changed {
		t.Fatalf("first write: %+v %v", r, err)
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v", fi.Mode())
	}

	// Same bytes: nothing written. A rewrite renames a new inode into place.
	r, err = Write(p, []byte("one\n"), o)
	if err != nil || r.Changed || r.MetaChanged {
		t.Fatalf("unchanged write: %+v %v", r, err)
	}
	if again, _ := os.Stat(p); !os.SameFile(fi, again) {
		t.Error("unchanged content was rewritten")
	}

	// Mode drift is repaired without a content change.
	os.Chmod(p, 0o666)
	r, err = Write(p, []byte("one\n"), o)
	if err != nil || r.Changed || !r.MetaChanged {
		t.Fatalf("mode repair: %+v %v", r, err)
	}

	r, err = Write(p, []byte("two\n"), o)
	if err != nil || !r.Changed {
		t.Fatalf("changed write: %+v %v", r, err)
	}
	if b, _ := os.ReadFile(p); string(b) != "two\n" {
		t.Errorf("content %q", b)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

func TestWriteFailureLeavesOldFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f.conf")
	if _, err := Write(p, []byte("old\n"), Options{Mode: 0o644, UID: -1, GID: -1}); err != nil {
		t.Fatal(err)
	}
	// A read-only directory makes the temporary file impossible.
	os.Chmod(dir, 0o555)
	defer os.Chmod(dir, 0o755)
	if os.Geteuid() == 0 {
		// root ignores directory permissions; use a missing directory instead.
		_, err := Write(filepath.Join(dir, "missing", "f.conf"), []byte("new\n"), Options{Mode: 0o644, UID: -1, GID: -1})
		if err == nil {
			t.Fatal("write into a missing directory succeeded")
		}
	} else if _, err := Write(p, []byte("new\n"), Options{Mode: 0o644, UID: -1, GID: -1}); err == nil {
		t.Fatal("write into a read-only directory succeeded")
	}
	if b, _ := os.ReadFile(p); string(b) != "old\n" {
		t.Errorf("old file damaged: %q", b)
	}
}

// A symbolic link where the file goes, or on the way to it below Within,
// is refused: writing through it (or fixing its mode) would change what
// it points to.
func TestWriteRefusesSymlinks(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	os.WriteFile(victim, []byte("data"), 0o600)
	link := filepath.Join(dir, "link")
	os.Symlink(victim, link)
	// Same content, other mode: before the fix, fixMeta chmodded the target.
	if _, err := Write(link, []byte("data"), Options{Mode: 0o644, UID: -1, GID: -1}); !errors.Is(err, ErrSymlink) {
		t.Errorf("write over a link: %v", err)
	}
	if fi, _ := os.Stat(victim); fi.Mode().Perm() != 0o600 {
		t.Errorf("the link's target was chmodded to %v", fi.Mode())
	}
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o755)
	elsewhere := t.TempDir()
	os.Symlink(elsewhere, filepath.Join(out, "host"))
	if _, err := Write(filepath.Join(out, "host", "f"), []byte("x"), Options{Mode: 0o644, UID: -1, GID: -1, Within: out}); !errors.Is(err, ErrSymlink) {
		t.Errorf("write through a linked directory: %v", err)
	}
	if entries, _ := os.ReadDir(elsewhere); len(entries) != 0 {
		t.Errorf("written through the link: %v", entries)
	}
}
