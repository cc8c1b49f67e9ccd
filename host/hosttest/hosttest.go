// Package hosttest has fakes of package host's interfaces for unit tests
// of orchestration logic: an in-memory file system and a service manager
// that records its calls and answers State from a script. Tests that need
// real behaviour use real hosts: LocalFS in a temporary directory,
// Processes, or the system test's containers.
package hosttest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcd-appliance/appliance/host"
	"github.com/etcd-appliance/appliance/internal/atomicfile"
)

// MemFS is an in-memory host.FS.
type MemFS struct {
	mu    sync.Mutex
	files map[string]memFile
	dirs  map[string]bool
}

type memFile struct {
	data         []byte
	mode         fs.FileMode
	owner, group string
}

// Len is the number of files.
func (m *MemFS) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.files)
}

// Meta returns a file's mode, owner and group.
func (m *MemFS) Meta(p string) (mode fs.FileMode, owner, group string, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.files[p]
	return f.mode, f.owner, f.group, ok
}

// Put places a file as if someone else wrote it.
func (m *MemFS) Put(p string, data []byte, mode fs.FileMode, owner, group string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.files[p] = memFile{append([]byte(nil), data...), mode, owner, group}
}

// HasDir reports whether MkdirAll created p.
func (m *MemFS) HasDir(p string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.dirs[p]
}

// NewMemFS returns an empty MemFS.
func NewMemFS() *MemFS { return &MemFS{files: map[string]memFile{}, dirs: map[string]bool{}} }

func (m *MemFS) Path(p string) string { return "/nonexistent-memfs" + p }

func (m *MemFS) ReadFile(p string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.files[p]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
	}
	return append([]byte(nil), f.data...), nil
}

func (m *MemFS) WriteFile(p string, data []byte, mode fs.FileMode, owner, group string) (atomicfile.Result, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old, ok := m.files[p]
	m.files[p] = memFile{append([]byte(nil), data...), mode, owner, group}
	switch {
	case !ok || string(old.data) != string(data):
		return atomicfile.Result{Changed: true}, nil
	case old.mode != mode || old.owner != owner || old.group != group:
		return atomicfile.Result{MetaChanged: true}, nil
	}
	return atomicfile.Result{}, nil
}

type memInfo struct {
	name string
	mode fs.FileMode
	dir  bool
}

func (i memInfo) Name() string       { return i.name }
func (i memInfo) Size() int64        { return 0 }
func (i memInfo) Mode() fs.FileMode  { return i.mode }
func (i memInfo) ModTime() time.Time { return time.Time{} }
func (i memInfo) IsDir() bool        { return i.dir }
func (i memInfo) Sys() any           { return nil }

func (m *MemFS) Stat(p string) (fs.FileInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if f, ok := m.files[p]; ok {
		return memInfo{path.Base(p), f.mode, false}, nil
	}
	if m.dirs[p] {
		return memInfo{path.Base(p), fs.ModeDir | 0o700, true}, nil
	}
	return nil, &fs.PathError{Op: "stat", Path: p, Err: fs.ErrNotExist}
}

// Owner implements host.FS.
func (m *MemFS) Owner(p string) (string, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if f, ok := m.files[p]; ok {
		return f.owner, f.group, nil
	}
	return "", "", &fs.PathError{Op: "stat", Path: p, Err: fs.ErrNotExist}
}

// ReadDir implements host.FS.
func (m *MemFS) ReadDir(p string) ([]fs.DirEntry, error) {
	return nil, &fs.PathError{Op: "readdir", Path: p, Err: fs.ErrNotExist}
}

func (m *MemFS) MkdirAll(p string, mode fs.FileMode, owner, group string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dirs[p] = true
	return nil
}

// SetModTime implements host.FS: MemFS keeps no times.
func (m *MemFS) SetModTime(string, time.Time) error { return nil }

func (m *MemFS) Rename(from, to string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dirs[from] {
		delete(m.dirs, from)
		m.dirs[to] = true
		return nil
	}
	return &fs.PathError{Op: "rename", Path: from, Err: fs.ErrNotExist}
}

// Services is a host.Services that records calls and answers State from a
// script.
type Services struct {
	mu    sync.Mutex
	calls []string
	// States are returned in order; the last one repeats.
	States   []host.UnitState
	Enabled  bool
	Running  bool
	LogsText string
	// timers are the states of .timer units, kept apart from the one
	// service the fields above describe.
	timers map[string]host.UnitState
}

// timer applies a change to a .timer unit's state; false for other units.
func (f *Services) timer(u string, change func(*host.UnitState)) bool {
	if !strings.HasSuffix(u, ".timer") {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.timers == nil {
		f.timers = map[string]host.UnitState{}
	}
	st, ok := f.timers[u]
	if !ok {
		st = host.UnitState{Active: "inactive", Enabled: "disabled"}
	}
	change(&st)
	f.timers[u] = st
	return true
}

func (f *Services) record(c string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
}

// Reset forgets the calls so far.
func (f *Services) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = nil
}

// Calls lists the calls so far, space-separated.
func (f *Services) Calls() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.calls, " ")
}

func (f *Services) DaemonReload(context.Context) error { f.record("daemon-reload"); return nil }
func (f *Services) Enable(_ context.Context, u string) error {
	f.record("enable " + u)
	if !f.timer(u, func(st *host.UnitState) { st.Enabled = "enabled" }) {
		f.Enabled = true
	}
	return nil
}
func (f *Services) Disable(_ context.Context, u string) error {
	f.record("disable " + u)
	if !f.timer(u, func(st *host.UnitState) { st.Enabled = "disabled" }) {
		f.Enabled = false
	}
	return nil
}
func (f *Services) Start(_ context.Context, u string) error {
	f.record("start " + u)
	if !f.timer(u, func(st *host.UnitState) { st.Active = "active" }) {
		f.Running = true
	}
	return nil
}
func (f *Services) Restart(_ context.Context, u string) error {
	f.record("restart " + u)
	f.timer(u, func(st *host.UnitState) { st.Active = "active" })
	return nil
}
func (f *Services) Stop(_ context.Context, u string) error {
	f.record("stop " + u)
	if !f.timer(u, func(st *host.UnitState) { st.Active = "inactive" }) {
		f.Running = false
	}
	return nil
}
func (f *Services) Logs(context.Context, string, int) string { return f.LogsText }

func (f *Services) State(_ context.Context, u string) (host.UnitState, error) {
	var timer host.UnitState
	if f.timer(u, func(st *host.UnitState) { timer = *st }) {
		return timer, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	st := host.UnitState{Active: "inactive"}
	if f.Running {
		st.Active = "active"
	}
	if len(f.States) > 0 {
		st = f.States[0]
		if len(f.States) > 1 {
			f.States = f.States[1:]
		}
	}
	if f.Enabled {
		st.Enabled = "enabled"
	}
	return st, nil
}

// Snapshot returns every file and directory under dir with its mode and a
// hash of its content, to show that something left a tree as it was.
func Snapshot(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		v := fi.Mode().String()
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			v += fmt.Sprintf(" %x", sha256.Sum256(b))
		}
		out[p] = v
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return out
}

// SameSnapshot reports how two snapshots differ, "" when they do not.
func SameSnapshot(before, after map[string]string) string {
	var b strings.Builder
	for p, v := range after {
		if before[p] != v {
			fmt.Fprintf(&b, "%s: %q -> %q\n", p, before[p], v)
		}
	}
	for p, v := range before {
		if _, ok := after[p]; !ok {
			fmt.Fprintf(&b, "%s: %q -> gone\n", p, v)
		}
	}
	return b.String()
}
