package node

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/etcd-appliance/appliance/internal/etcdtest"
	"go.etcd.io/etcd/server/v3/embed"
)

// hashTree is every file under dir with a hash of its content.
func hashTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		out[p] = fmt.Sprintf("%x", sha256.Sum256(b))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Data of a release older than 3.6 (Debian's 3.4.23, upstream 3.5) is
// refused before anything opens it: exit 80, a STATUS naming what was
// found and the fix, and every file byte for byte as it was. Data of 3.6
// (the previous minor release) is opened: the upgrade one minor at a time
// etcd supports.
func TestGuardRefusesDataOfOlderReleases(t *testing.T) {
	for _, c := range []struct {
		release, written string
		refused          bool
	}{
		{etcdtest.DebianPackage, "etcd 3.4", true},
		{etcdtest.Release35, "etcd 3.5", true},
		{etcdtest.Release36, "", false},
	} {
		t.Run(c.release, func(t *testing.T) {
			dir := etcdtest.ReleaseDataDir(t, c.release, t.TempDir(), 20)
			before := hashTree(t, dir)
			ports := etcdtest.FreePorts(t, 2)
			client, peer := fmt.Sprintf("http://127.0.0.1:%d", ports[0]), fmt.Sprintf("http://127.0.0.1:%d", ports[1])
			m := etcdtest.NewMember(t, "m0", []string{"--name=m0", "--data-dir=" + dir,
				"--listen-client-urls=" + client, "--advertise-client-urls=" + client,
				"--listen-peer-urls=" + peer, "--initial-advertise-peer-urls=" + peer, "--initial-cluster=m0=" + peer}, nil)
			m.ClientURL = client
			sock := etcdtest.NewNotifySocket(t, nil)
			m.Env = append(m.Env, sock.Env())
			m.Start()
			if !c.refused {
				m.WaitReady(time.Minute)
				cli := etcdtest.Client(t, []string{client})
				if r, err := cli.Get(t.Context(), "k019"); err != nil || len(r.Kvs) != 1 {
					t.Errorf("the 3.6 data under 3.7: %v %v", r, err)
				}
				return
			}
			code, exited := m.Wait(20 * time.Second)
			if !exited || code != ExitOldData {
				t.Fatalf("exited=%v code=%d, want %d:\n%s", exited, code, ExitOldData, m.Log())
			}
			for _, want := range []string{"holds data written by " + c.written, "member m0", "etcd-installer migrate"} {
				if !strings.Contains(m.Log(), want) {
					t.Errorf("output lacks %q:\n%s", want, m.Log())
				}
			}
			if !sock.WaitFor(time.Second, hasPrefix("STATUS=refusing the data dir: ")) {
				t.Error("no STATUS saying why")
			}
			after := hashTree(t, dir)
			if len(after) != len(before) {
				t.Errorf("files: %d before, %d after", len(before), len(after))
			}
			for p, h := range before {
				if after[p] != h {
					t.Errorf("%s changed", p)
				}
			}
		})
	}
}

// A member of this release stopped before its cluster decided a version
// (a member started before its peers, restarted by systemd) carries the
// fields 3.5 added and no version: it must start again, not be refused.
func TestGuardOpensThisReleaseStoppedEarly(t *testing.T) {
	c := etcdtest.NewCluster(t, 3)
	m := c.Members[0]
	m.Start()
	applied := func(n int) func() bool {
		return func() bool { return strings.Count(m.Log(), `"msg":"added member"`) >= n }
	}
	if !etcdtest.Eventually(30*time.Second, 50*time.Millisecond, applied(3)) {
		t.Fatalf("the bootstrap's members were not applied in 30 s:\n%s", m.Log())
	}
	m.Signal(syscall.SIGTERM)
	if _, exited := m.Wait(30 * time.Second); !exited {
		t.Fatal("did not stop")
	}
	cfg := &Config{Etcd: embed.NewConfig()}
	cfg.Etcd.Dir = m.DataDir
	if err := cfg.GuardDataDir(); err != nil {
		t.Fatalf("refused: %v", err)
	}
	// And the server itself gets past the guard to start etcd again.
	m.Start()
	if !etcdtest.Eventually(30*time.Second, 50*time.Millisecond, func() bool {
		return strings.Count(m.Log(), `"msg":"starting an etcd server"`) >= 2
	}) {
		t.Fatalf("did not start again:\n%s", m.Log())
	}
	if !m.Running() {
		t.Fatalf("exited:\n%s", m.Log())
	}
}
