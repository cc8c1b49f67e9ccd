package node

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/etcd-appliance/appliance/internal/backupstatus"
	"github.com/etcd-appliance/appliance/layout"
)

// backupCollector exports the member's last good scheduled backup, read
// from the status file etcd-backup.service writes, at every scrape. No
// backup yet (or no schedule): no samples, which `absent()` alerts on.
type backupCollector struct {
	path                  string
	taken, revision, size *prometheus.Desc
}

func newBackupCollector(path string) *backupCollector {
	return &backupCollector{
		path: path,
		taken: prometheus.NewDesc("etcd_appliance_backup_last_success_timestamp_seconds",
			"When the last scheduled backup that verified was taken (Unix time), from "+layout.BackupStatus+".", nil, nil),
		revision: prometheus.NewDesc("etcd_appliance_backup_last_success_revision",
			"The etcd revision of the last scheduled backup that verified.", nil, nil),
		size: prometheus.NewDesc("etcd_appliance_backup_last_success_size_bytes",
			"The size of the last scheduled backup that verified.", nil, nil),
	}
}

func (c *backupCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.taken
	ch <- c.revision
	ch <- c.size
}

func (c *backupCollector) Collect(ch chan<- prometheus.Metric) {
	st, err := backupstatus.Read(c.path)
	if err != nil || st.TakenAt.IsZero() {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.taken, prometheus.GaugeValue, float64(st.TakenAt.UnixNano())/1e9)
	ch <- prometheus.MustNewConstMetric(c.revision, prometheus.GaugeValue, float64(st.Revision))
	ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(st.Size))
}

var registerMetrics sync.Once

// registerApplianceMetrics adds the appliance's own metrics to the
// registry etcd serves on /metrics (once per process).
func registerApplianceMetrics() {
	registerMetrics.Do(func() { prometheus.MustRegister(newBackupCollector(layout.BackupStatus)) })
}
