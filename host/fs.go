package host

import (
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/etcd-appliance/appliance/datadir"
	"github.com/etcd-appliance/appliance/internal/atomicfile"
)

// FS is the file system of the host being provisioned.
type FS interface {
	ReadFile(path string) ([]byte, error)
	// WriteFile writes atomically, only when the content differs, and
	// fixes mode and owner.
	WriteFile(path string, data []byte, mode fs.FileMode, owner, group string) (atomicfile.Result, error)
	Stat(path string) (fs.FileInfo, error)
	// Owner returns the user and group owning path, both "" where owners
	// are not kept (a local cluster run as whoever started it).
	Owner(path string) (user, group string, err error)
	ReadDir(path string) ([]fs.DirEntry, error)
	// MkdirAll creates path and its parents; the last one gets mode and
	// owner, the others 0755 root.
	MkdirAll(path string, mode fs.FileMode, owner, group string) error
	Rename(from, to string) error
	// SetModTime sets a file's modification time.
	SetModTime(path string, t time.Time) error
	// Path returns where path really is (under the root, for tests).
	Path(path string) string
}

// LocalFS is this machine's file system, optionally under a root
// directory (tests provision a directory tree instead of /).
type LocalFS struct {
	Root string
	// Outside lists absolute prefixes used as they are, not under Root
	// (a local cluster's data dirs, named in env files by real path).
	Outside []string
	// IgnoreOwner skips chown, for tests run as an unprivileged user or
	// without the etcd user.
	IgnoreOwner bool
}

// Path implements FS.
func (l LocalFS) Path(p string) string {
	for _, o := range l.Outside {
		if p == o || strings.HasPrefix(p, o+"/") {
			return p
		}
	}
	return filepath.Join(l.Root, p)
}

// ReadFile implements FS.
func (l LocalFS) ReadFile(p string) ([]byte, error) { return os.ReadFile(l.Path(p)) }

// Stat implements FS.
func (l LocalFS) Stat(p string) (fs.FileInfo, error) { return os.Stat(l.Path(p)) }

// ReadDir implements FS.
func (l LocalFS) ReadDir(p string) ([]fs.DirEntry, error) { return os.ReadDir(l.Path(p)) }

// Owner implements FS.
func (l LocalFS) Owner(p string) (string, string, error) {
	fi, err := os.Stat(l.Path(p))
	if err != nil || l.IgnoreOwner {
		return "", "", err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "", "", nil
	}
	uid, gid := strconv.Itoa(int(st.Uid)), strconv.Itoa(int(st.Gid))
	if u, err := user.LookupId(uid); err == nil {
		uid = u.Username
	}
	if g, err := user.LookupGroupId(gid); err == nil {
		gid = g.Name
	}
	return uid, gid, nil
}

// Rename implements FS.
// A rename lasts through a power cut only once the directories holding
// the names are synced; before that, a data dir moved aside could come
// back under its old name, or a new one vanish from its place.
func (l LocalFS) Rename(from, to string) error {
	if err := os.Rename(l.Path(from), l.Path(to)); err != nil {
		return err
	}
	return syncDirs(filepath.Dir(l.Path(to)), filepath.Dir(l.Path(from)))
}

// SetModTime implements FS.
func (l LocalFS) SetModTime(p string, t time.Time) error {
	return os.Chtimes(l.Path(p), time.Time{}, t)
}

// syncDirs fsyncs directories (each once).
func syncDirs(dirs ...string) error {
	seen := map[string]bool{}
	for _, d := range dirs {
		if seen[d] {
			continue
		}
		seen[d] = true
		f, err := os.Open(d)
		if err != nil {
			return err
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return fmt.Errorf("syncing %s: %w", d, err)
		}
	}
	return nil
}

// WriteFile implements FS.
func (l LocalFS) WriteFile(p string, data []byte, mode fs.FileMode, owner, group string) (atomicfile.Result, error) {
	uid, gid, err := l.ids(owner, group)
	if err != nil {
		return atomicfile.Result{}, fmt.Errorf("writing %s: %w", p, err)
	}
	if err := os.MkdirAll(filepath.Dir(l.Path(p)), 0o755); err != nil {
		return atomicfile.Result{}, err
	}
	return atomicfile.Write(l.Path(p), data, atomicfile.Options{Mode: mode, UID: uid, GID: gid})
}

// MkdirAll implements FS.
func (l LocalFS) MkdirAll(p string, mode fs.FileMode, owner, group string) error {
	uid, gid, err := l.ids(owner, group)
	if err != nil {
		return fmt.Errorf("creating %s: %w", p, err)
	}
	full := l.Path(p)
	if err := os.MkdirAll(full, 0o755); err != nil {
		return err
	}
	if err := os.Chmod(full, mode); err != nil {
		return err
	}
	if uid >= 0 || gid >= 0 {
		return os.Chown(full, uid, gid)
	}
	return nil
}

func (l LocalFS) ids(owner, group string) (int, int, error) {
	if l.IgnoreOwner {
		return -1, -1, nil
	}
	uid, gid := -1, -1
	if owner != "" {
		u, err := user.Lookup(owner)
		if err != nil {
			return 0, 0, fmt.Errorf("user %s: %w (is the etcd package installed?)", owner, err)
		}
		uid, _ = strconv.Atoi(u.Uid)
	}
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			return 0, 0, fmt.Errorf("group %s: %w (is the etcd package installed?)", group, err)
		}
		gid, _ = strconv.Atoi(g.Gid)
	}
	return uid, gid, nil
}

// InspectDataDir reads a data dir on the host f reaches, without changing
// it: on this machine directly, on a remote host with etcd-installer there
// (a bbolt backend can only be opened where it is).
func InspectDataDir(f FS, dir string) (datadir.Info, error) {
	if r, ok := f.(interface {
		InspectDataDir(string) (datadir.Info, error)
	}); ok {
		return r.InspectDataDir(dir)
	}
	return datadir.Inspect(dir, f.Path(dir))
}

// IDs are the user ID and primary group ID of the user name.
func IDs(name string) (uid, gid int, err error) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, 0, fmt.Errorf("user %s: %w (is the etcd package installed?)", name, err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid, nil
}
