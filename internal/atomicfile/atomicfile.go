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
	"syscall"
)

// Options are the metadata a file must have. UID and GID of -1 leave the
// owner as the process creates it.
type Options struct {
	Mode     fs.FileMode
	UID, GID int
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
// fsynced, so a crash leaves either the old file or the new one.
func Write(path string, data []byte, o Options) (Result, error) {
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
	fi, err := os.Stat(path)
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
