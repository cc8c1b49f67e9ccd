// Package atomicfile writes files so that readers see the old content or
// the new, never a mix, and only when something changed.
package atomicfile

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Options are the metadata a file must have. UID and GID of -1 leave the
// owner as the process creates it.
type Options struct {
	Mode     fs.FileMode
	UID, GID int
	// Within, when set, is a directory above path whose subdirectories on
	// the way to path must be real directories, not symbolic links (an
	// output tree someone else could have prepared).
	Within string
}

// ErrSymlink means a symbolic link stands where a file (or a directory on
// its way) is written: writing through it, or fixing its mode, would
// change whatever it points to.
var ErrSymlink = errors.New("a symbolic link is in the way")

// noLinks refuses a symbolic link at path, or at any directory between
// within and path.
func noLinks(path, within string) error {
	check := func(p string) error {
		fi, err := os.Lstat(p)
		if err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			return fmt.Errorf("%w: %s points to %s; fix: remove the link (a file or directory belongs there)", ErrSymlink, p, target)
		}
		return nil
	}
	if err := check(path); err != nil {
		return err
	}
	if within == "" {
		return nil
	}
	rel, err := filepath.Rel(within, filepath.Dir(path))
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return nil
	}
	p := within
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		p = filepath.Join(p, part)
		if err := check(p); err != nil {
			return err
		}
	}
	return nil
}

// Result says what Write did.
type Result struct {
	// Changed is true when the content was written (new or different).
	Changed bool
	// MetaChanged is true when only the mode or owner had to be fixed.
	MetaChanged bool
}

// Write makes path hold data with the given mode and owner. Unchanged
// content is not rewritten (its mtime stays), so callers can decide on a
// restart from Result.Changed. New content goes to a temporary file in the
// same directory, is fsynced and renamed over path, and the directory is
// fsynced, so a crash leaves either the old file or the new one. A
// symbolic link at path (or, with Within, on the way to it) is refused.
func Write(path string, data []byte, o Options) (Result, error) {
	if err := noLinks(path, o.Within); err != nil {
		return Result{}, err
	}
	old, err := os.ReadFile(path)
	switch {
	case err == nil && bytes.Equal(old, data):
		return fixMeta(path, o)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return Result{}, fmt.Errorf("reading %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return Result{}, fmt.Errorf("writing %s: %w", path, err)
	}
	committed := false
	defer func() {
		if !committed {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return Result{}, fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Chmod(o.Mode); err != nil {
		return Result{}, fmt.Errorf("writing %s: %w", path, err)
	}
	if o.UID >= 0 || o.GID >= 0 {
		if err := tmp.Chown(o.UID, o.GID); err != nil {
			return Result{}, fmt.Errorf("writing %s: %w", path, err)
		}
	}
	if err := tmp.Sync(); err != nil {
		return Result{}, fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return Result{}, fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return Result{}, fmt.Errorf("writing %s: %w", path, err)
	}
	committed = true
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return Result{Changed: true}, nil
}

func fixMeta(path string, o Options) (Result, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return Result{}, fmt.Errorf("checking %s: %w", path, err)
	}
	var r Result
	if fi.Mode().Perm() != o.Mode.Perm() {
		if err := os.Chmod(path, o.Mode); err != nil {
			return r, fmt.Errorf("chmod %s: %w", path, err)
		}
		r.MetaChanged = true
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && (o.UID >= 0 && int(st.Uid) != o.UID || o.GID >= 0 && int(st.Gid) != o.GID) {
		if err := os.Chown(path, o.UID, o.GID); err != nil {
			return r, fmt.Errorf("chown %s: %w", path, err)
		}
		r.MetaChanged = true
	}
	return r, nil
}
