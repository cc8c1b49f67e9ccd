package provision

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/etcd-appliance/appliance/internal/atomicfile"
)

// memFS is an in-memory FS.
type memFS struct {
	mu    sync.Mutex
	files map[string]memFile
	dirs  map[string]bool
}

type memFile struct {
	data         []byte
	mode         fs.FileMode
	owner, group string
}

func newMemFS() *memFS { return &memFS{files: map[string]memFile{}, dirs: map[string]bool{}} }

func (m *memFS) Path(p string) string { return "/nonexistent-memfs" + p }

func (m *memFS) ReadFile(p string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.files[p]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
	}
	return append([]byte(nil), f.data...), nil
}

func (m *memFS) WriteFile(p string, data []byte, mode fs.FileMode, owner, group string) (atomicfile.Result, error) {
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

func (m *memFS) Stat(p string) (fs.FileInfo, error) {
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

func (m *memFS) ReadDir(p string) ([]fs.DirEntry, error) {
	return nil, &fs.PathError{Op: "readdir", Path: p, Err: fs.ErrNotExist}
}

func (m *memFS) MkdirAll(p string, mode fs.FileMode, owner, group string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dirs[p] = true
	return nil
}

func (m *memFS) Rename(from, to string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dirs[from] {
		delete(m.dirs, from)
		m.dirs[to] = true
		return nil
	}
	return &fs.PathError{Op: "rename", Path: from, Err: fs.ErrNotExist}
}

// fakeServices records calls and answers State from a script.
type fakeServices struct {
	mu      sync.Mutex
	calls   []string
	states  []UnitState // returned in order; the last one repeats
	enabled bool
	running bool
	logs    string
}

func (f *fakeServices) record(c string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
}

func (f *fakeServices) Calls() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.calls, " ")
}

func (f *fakeServices) DaemonReload(context.Context) error { f.record("daemon-reload"); return nil }
func (f *fakeServices) Enable(_ context.Context, u string) error {
	f.record("enable " + u)
	f.enabled = true
	return nil
}
func (f *fakeServices) Disable(_ context.Context, u string) error {
	f.record("disable " + u)
	f.enabled = false
	return nil
}
func (f *fakeServices) Start(_ context.Context, u string) error {
	f.record("start " + u)
	f.running = true
	return nil
}
func (f *fakeServices) Restart(_ context.Context, u string) error {
	f.record("restart " + u)
	return nil
}
func (f *fakeServices) Stop(_ context.Context, u string) error {
	f.record("stop " + u)
	f.running = false
	return nil
}
func (f *fakeServices) Logs(context.Context, string, int) string { return f.logs }

func (f *fakeServices) State(context.Context, string) (UnitState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := UnitState{Active: "inactive"}
	if f.running {
		st.Active = "active"
	}
	if len(f.states) > 0 {
		st = f.states[0]
		if len(f.states) > 1 {
			f.states = f.states[1:]
		}
	}
	if f.enabled {
		st.Enabled = "enabled"
	}
	return st, nil
}

// fakeMembership answers from a fixed member list; unhealthy endpoints
// fail Healthy.
type fakeMembership struct {
	members   []Member
	unhealthy map[string]bool
	err       error
	removed   []uint64
	promoted  []uint64
	added     [][]string
}

func (f *fakeMembership) Members(context.Context) ([]Member, error) {
	ms := append([]Member(nil), f.members...)
	sort.Slice(ms, func(i, j int) bool { return ms[i].Name < ms[j].Name })
	return ms, f.err
}
func (f *fakeMembership) AddLearner(_ context.Context, urls []string) (Member, error) {
	f.added = append(f.added, urls)
	m := Member{ID: uint64(1000 + len(f.added)), PeerURLs: urls, Learner: true}
	f.members = append(f.members, m)
	return m, nil
}
func (f *fakeMembership) Promote(_ context.Context, id uint64) error {
	f.promoted = append(f.promoted, id)
	return nil
}
func (f *fakeMembership) Remove(_ context.Context, id uint64) error {
	f.removed = append(f.removed, id)
	return nil
}
func (f *fakeMembership) Status(_ context.Context, ep string) EndpointStatus {
	return EndpointStatus{Endpoint: ep}
}
func (f *fakeMembership) Healthy(_ context.Context, ep string) error {
	if f.unhealthy[ep] {
		return fmt.Errorf("%s: context deadline exceeded", ep)
	}
	return nil
}
func (f *fakeMembership) Close() error                                          { return nil }
func (f *fakeMembership) HashKV(context.Context, string, int64) (uint32, error) { return 42, nil }
