package host

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/etcd-appliance/appliance/datadir"
	"github.com/etcd-appliance/appliance/internal/atomicfile"
)

// RunnerFS is a host's file system reached through commands (over SSH):
// cat, dd, chmod, chown, mv, stat, find and install, given as argv. Writes
// are atomic: a temporary file in the same directory, synced, then renamed.
type RunnerFS struct {
	R Runner
	// Installer is the etcd-installer command on the host, which reads
	// data dirs there (inspect-data-dir).
	Installer string
}

var _ FS = RunnerFS{}

func (r RunnerFS) run(argv ...string) ([]byte, error) {
	return r.R.Run(context.Background(), nil, argv...)
}

// notExist maps a command's "No such file" to fs.ErrNotExist.
func notExist(p string, err error) error {
	if err != nil && strings.Contains(err.Error(), "No such file or directory") {
		return &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
	}
	return err
}

// Path implements FS.
func (r RunnerFS) Path(p string) string { return p }

// ReadFile implements FS.
func (r RunnerFS) ReadFile(p string) ([]byte, error) {
	out, err := r.run("cat", "--", p)
	return out, notExist(p, err)
}

// WriteFile implements FS.
func (r RunnerFS) WriteFile(p string, data []byte, mode fs.FileMode, owner, group string) (atomicfile.Result, error) {
	old, err := r.ReadFile(p)
	if err == nil && bytes.Equal(old, data) {
		fi, err := r.Stat(p)
		if err != nil {
			return atomicfile.Result{}, err
		}
		st := fi.Sys().(remoteStat)
		if fi.Mode().Perm() == mode.Perm() && st.owner == owner && st.group == group {
			return atomicfile.Result{}, nil
		}
		if _, err := r.run("chmod", fmt.Sprintf("%04o", mode.Perm()), p); err != nil {
			return atomicfile.Result{}, err
		}
		if _, err := r.run("chown", owner+":"+group, p); err != nil {
			return atomicfile.Result{}, err
		}
		return atomicfile.Result{MetaChanged: true}, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return atomicfile.Result{}, err
	}
	dir := path.Dir(p)
	if _, err := r.run("install", "-d", "-m", "0755", dir); err != nil {
		return atomicfile.Result{}, err
	}
	tmp := fmt.Sprintf("%s/.%s.tmp-%d", dir, path.Base(p), time.Now().UnixNano())
	steps := [][]string{
		{"chmod", fmt.Sprintf("%04o", mode.Perm()), tmp},
		{"chown", owner + ":" + group, tmp},
		{"sync", tmp},
		{"mv", "-f", tmp, p},
	}
	// Created 0600 before any byte is written: private keys go this way,
	// and dd alone would create the file world-readable (umask 022).
	if _, err := r.run("install", "-m", "0600", "/dev/null", tmp); err != nil {
		return atomicfile.Result{}, err
	}
	if _, err := r.R.Run(context.Background(), bytes.NewReader(data), "dd", "of="+tmp, "status=none"); err != nil {
		r.run("rm", "-f", tmp)
		return atomicfile.Result{}, err
	}
	for _, argv := range steps {
		if _, err := r.run(argv...); err != nil {
			r.run("rm", "-f", tmp)
			return atomicfile.Result{}, fmt.Errorf("writing %s: %w", p, err)
		}
	}
	return atomicfile.Result{Changed: true}, nil
}

type remoteStat struct {
	owner, group string
	uid          int
}

type remoteInfo struct {
	name  string
	size  int64
	mode  fs.FileMode
	mtime time.Time
	st    remoteStat
}

func (i remoteInfo) Name() string       { return i.name }
func (i remoteInfo) Size() int64        { return i.size }
func (i remoteInfo) Mode() fs.FileMode  { return i.mode }
func (i remoteInfo) ModTime() time.Time { return i.mtime }
func (i remoteInfo) IsDir() bool        { return i.mode.IsDir() }
func (i remoteInfo) Sys() any           { return i.st }

// Stat implements FS.
func (r RunnerFS) Stat(p string) (fs.FileInfo, error) {
	out, err := r.run("stat", "-c", "%f %s %Y %U %G %u", "--", p)
	if err != nil {
		return nil, notExist(p, err)
	}
	f := strings.Fields(string(out))
	if len(f) != 6 {
		return nil, fmt.Errorf("stat %s: unexpected output %q", p, out)
	}
	raw, _ := strconv.ParseUint(f[0], 16, 32)
	size, _ := strconv.ParseInt(f[1], 10, 64)
	mtime, _ := strconv.ParseInt(f[2], 10, 64)
	uid, _ := strconv.Atoi(f[5])
	mode := fs.FileMode(raw & 0o777)
	if raw&0o170000 == 0o040000 {
		mode |= fs.ModeDir
	}
	return remoteInfo{name: path.Base(p), size: size, mode: mode, mtime: time.Unix(mtime, 0),
		st: remoteStat{owner: f[3], group: f[4], uid: uid}}, nil
}

// Owner implements FS.
func (r RunnerFS) Owner(p string) (string, string, error) {
	fi, err := r.Stat(p)
	if err != nil {
		return "", "", err
	}
	st := fi.Sys().(remoteStat)
	return st.owner, st.group, nil
}

type remoteEntry struct {
	name string
	dir  bool
}

func (e remoteEntry) Name() string { return e.name }
func (e remoteEntry) IsDir() bool  { return e.dir }
func (e remoteEntry) Type() fs.FileMode {
	if e.dir {
		return fs.ModeDir
	}
	return 0
}
func (e remoteEntry) Info() (fs.FileInfo, error) { return nil, errors.ErrUnsupported }

// ReadDir implements FS.
func (r RunnerFS) ReadDir(p string) ([]fs.DirEntry, error) {
	out, err := r.run("find", p, "-mindepth", "1", "-maxdepth", "1", "-printf", "%y %f\\n")
	if err != nil {
		return nil, notExist(p, err)
	}
	var es []fs.DirEntry
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		t, name, ok := strings.Cut(line, " ")
		if ok {
			es = append(es, remoteEntry{name: name, dir: t == "d"})
		}
	}
	return es, nil
}

// MkdirAll implements FS.
func (r RunnerFS) MkdirAll(p string, mode fs.FileMode, owner, group string) error {
	_, err := r.run("install", "-d", "-m", fmt.Sprintf("%04o", mode.Perm()), "-o", owner, "-g", group, p)
	return err
}

// Rename implements FS.
func (r RunnerFS) Rename(from, to string) error {
	if _, err := r.run("mv", "-n", "--", from, to); err != nil {
		return notExist(from, err)
	}
	// Durable through a power cut, as LocalFS.Rename.
	_, err := r.run("sync", "--", path.Dir(to), path.Dir(from))
	return err
}

// SetModTime implements FS.
func (r RunnerFS) SetModTime(p string, t time.Time) error {
	_, err := r.run("touch", "-m", "-c", "-d", "@"+strconv.FormatInt(t.Unix(), 10), "--", p)
	return err
}

// InspectDataDir reads the data dir on the host with etcd-installer
// there: the backend is a bbolt file that only the host can open.
func (r RunnerFS) InspectDataDir(dir string) (datadir.Info, error) {
	installer := r.Installer
	if installer == "" {
		installer = "etcd-installer"
	}
	out, err := r.run(installer, "inspect-data-dir", dir)
	if err != nil {
		return datadir.Info{}, err
	}
	var info datadir.Info
	if err := json.Unmarshal(out, &info); err != nil {
		return info, fmt.Errorf("inspect-data-dir %s: %w", dir, err)
	}
	return info, nil
}
