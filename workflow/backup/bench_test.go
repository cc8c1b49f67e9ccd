package backup_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/etcd-appliance/appliance/internal/etcdtest"
	"github.com/etcd-appliance/appliance/workflow/backup"
	"github.com/etcd-appliance/appliance/workflow/localcluster/localclustertest"
)

// BenchmarkScheduledBackup1GiB measures one scheduled backup of a member
// holding about 1 GiB (1 MiB values): the snapshot, and its verification
// (a restore into a scratch dir and a hash of the key space), side by
// side with copying the same snapshot file (cp, the floor of reading and
// writing that many bytes): seconds each, and the ratio.
func BenchmarkScheduledBackup1GiB(b *testing.B) {
	c := etcdtest.NewClusterIn(b, 1, b.TempDir())
	m := c.Members[0]
	m.Args = append(m.Args, "--quota-backend-bytes", fmt.Sprint(4<<30))
	m.Start()
	if !etcdtest.Eventually(time.Minute, 100*time.Millisecond, func() bool { return etcdtest.ClusterVersion(m.ClientURL) != "" }) {
		b.Fatal("etcd did not start")
	}
	cli := etcdtest.Client(b, []string{m.ClientURL})
	if err := etcdtest.Fill(cli, "big", 1024, 1<<20); err != nil {
		b.Fatal(err)
	}
	cli.Close()
	dir := b.TempDir()
	var snap, verify, cp time.Duration
	var size int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		o := backup.ScheduledOptions{Cluster: "bench", Token: "bench", Dir: filepath.Join(dir, "backups"), KeepLast: 1, KeepDaily: 0,
			Name: m.Name, Endpoints: []string{m.ClientURL}, UID: -1, GID: -1,
			Now: func() time.Time { return time.Date(2026, 11, 30, 0, 0, i, 0, time.UTC) }}
		res, err := backup.Scheduled(context.Background(), o, localclustertest.Log(b))
		if err != nil || res.Skipped != "" || res.Info.TotalKeys != 1024 {
			b.Fatalf("%+v %v", res, err)
		}
		snap += res.Took
		verify += res.Verify
		size = res.Info.Size
		b.StopTimer()
		exec.Command("sync").Run()
		start := time.Now()
		if out, err := exec.Command("cp", res.File, filepath.Join(dir, "copy")).CombinedOutput(); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
		exec.Command("sync").Run()
		cp += time.Since(start)
		os.Remove(filepath.Join(dir, "copy"))
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(float64(size)/(1<<30), "GiB")
	b.ReportMetric(snap.Seconds()/n, "snapshot-s")
	b.ReportMetric(verify.Seconds()/n, "verify-s")
	b.ReportMetric(cp.Seconds()/n, "cp-s")
	b.ReportMetric(verify.Seconds()/cp.Seconds(), "verify/cp")
}
