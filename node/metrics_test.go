package node

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/etcd-appliance/appliance/internal/backupstatus"
)

// The metric names are a contract with alert rules and dashboards.
func TestBackupMetrics(t *testing.T) {
	p := filepath.Join(t.TempDir(), "backup-status.json")
	c := newBackupCollector(p)
	if n := testutil.CollectAndCount(c); n != 0 {
		t.Fatalf("without a backup: %d samples, want none", n)
	}
	taken := time.Date(2026, 11, 30, 21, 0, 0, 0, time.UTC)
	if err := backupstatus.Write(p, backupstatus.Status{File: "/x.db", TakenAt: taken, Verified: taken.Add(time.Second), Revision: 4242, Size: 1 << 20}, -1, -1); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP etcd_appliance_backup_last_success_revision The etcd revision of the last scheduled backup that verified.
# TYPE etcd_appliance_backup_last_success_revision gauge
etcd_appliance_backup_last_success_revision 4242
# HELP etcd_appliance_backup_last_success_size_bytes The size of the last scheduled backup that verified.
# TYPE etcd_appliance_backup_last_success_size_bytes gauge
etcd_appliance_backup_last_success_size_bytes 1.048576e+06
# HELP etcd_appliance_backup_last_success_timestamp_seconds When the last scheduled backup that verified was taken (Unix time), from /var/lib/etcd/backup-status.json.
# TYPE etcd_appliance_backup_last_success_timestamp_seconds gauge
etcd_appliance_backup_last_success_timestamp_seconds 1.7960724e+09
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}
