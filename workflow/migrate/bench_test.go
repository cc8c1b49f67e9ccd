package migrate_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/etcd-appliance/appliance/host"
	"github.com/etcd-appliance/appliance/internal/etcdtest"
	"github.com/etcd-appliance/appliance/workflow/localcluster/localclustertest"
	"github.com/etcd-appliance/appliance/workflow/migrate"
)

// debian1GiB writes about 1 GiB of keys (1 MiB values) with Debian's etcd
// 3.4 and returns its data dir, stopped.
func debian1GiB(b *testing.B) string {
	b.Helper()
	c := etcdtest.NewClusterIn(b, 1, b.TempDir())
	c.UseBinary(etcdtest.ReleaseBinary(b, etcdtest.DebianPackage))
	m := c.Members[0]
	m.Args = append(m.Args, "--quota-backend-bytes", fmt.Sprint(4<<30))
	m.Start()
	if !etcdtest.Eventually(time.Minute, 100*time.Millisecond, func() bool { return etcdtest.ClusterVersion(m.ClientURL) != "" }) {
		b.Fatal("etcd 3.4 did not start")
	}
	cli := etcdtest.Client(b, []string{m.ClientURL})
	if err := etcdtest.Fill(cli, "big", 1024, 1<<20); err != nil {
		b.Fatal(err)
	}
	cli.Close()
	m.Signal(syscall.SIGTERM)
	if _, ok := m.Wait(time.Minute); !ok {
		b.Fatal("etcd 3.4 did not stop")
	}
	return m.DataDir
}

// BenchmarkMigrate1GiB measures migrate on a 1 GiB data dir of Debian's
// etcd 3.4 side by side with copying the same dir (cp -a, the floor any
// migration that keeps the old data pays): seconds each, and the ratio.
func BenchmarkMigrate1GiB(b *testing.B) {
	src := debian1GiB(b)
	fi, err := os.Stat(filepath.Join(src, "member", "snap", "db"))
	if err != nil {
		b.Fatal(err)
	}
	var migrateTook, copyTook time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		root := b.TempDir()
		dst := filepath.Join(root, migrate.DebianDataDir)
		os.MkdirAll(filepath.Dir(dst), 0o755)
		if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
		os.WriteFile(filepath.Join(root, migrate.DebianDefaults), []byte("ETCD_NAME=m0\n"), 0o644)
		exec.Command("sync").Run()
		b.StartTimer()

		start := time.Now()
		res, err := migrate.Run(context.Background(), host.LocalFS{Root: root, IgnoreOwner: true}, "m0", migrate.Options{}, localclustertest.Log(b))
		if err != nil || res.Keys != 1024 {
			b.Fatalf("%+v %v", res, err)
		}
		// Both sides end on disk: etcdutl's restore syncs what it writes,
		// cp does not.
		exec.Command("sync").Run()
		migrateTook += time.Since(start)

		b.StopTimer()
		exec.Command("sync").Run()
		start = time.Now()
		if out, err := exec.Command("cp", "-a", src, filepath.Join(root, "copy")).CombinedOutput(); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
		exec.Command("sync").Run()
		copyTook += time.Since(start)
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(float64(fi.Size())/(1<<30), "GiB")
	b.ReportMetric(migrateTook.Seconds()/n, "migrate-s")
	b.ReportMetric(copyTook.Seconds()/n, "cp-a-s")
	b.ReportMetric(migrateTook.Seconds()/copyTook.Seconds(), "migrate/cp")
}
