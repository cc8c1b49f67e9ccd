package node

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver"
	"go.etcd.io/etcd/server/v3/storage"

	"github.com/etcd-appliance/appliance/internal/backupstatus"
	"github.com/etcd-appliance/appliance/layout"
)

// Names of the appliance's own metrics, next to etcd's on its metrics
// listener: a contract with the alert rules and the dashboard (render).
const (
	MetricBackupTimestamp = "etcd_appliance_backup_last_success_timestamp_seconds"
	MetricBackupRevision  = "etcd_appliance_backup_last_success_revision"
	MetricBackupSize      = "etcd_appliance_backup_last_success_size_bytes"
	MetricCertExpiry      = "etcd_appliance_certificate_expiry_timestamp_seconds"
	MetricPhase           = "etcd_appliance_phase"
	MetricQuota           = "etcd_appliance_quota_backend_bytes"
	MetricAlarms          = "etcd_appliance_alarms"
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
		taken: prometheus.NewDesc(MetricBackupTimestamp,
			"When the last scheduled backup that verified was taken (Unix time), from "+layout.BackupStatus+".", nil, nil),
		revision: prometheus.NewDesc(MetricBackupRevision,
			"The etcd revision of the last scheduled backup that verified.", nil, nil),
		size: prometheus.NewDesc(MetricBackupSize,
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

// memberCollector exports what this process knows of its member: the
// certificates it serves and trusts (read from their files at each
// scrape, so a renewal shows without a restart), its phase, its quota.
type memberCollector struct {
	state atomic.Pointer[memberState]

	expiry, phase, quota, alarms *prometheus.Desc
	// certs caches parsed certificates by file, size and time.
	mu    sync.Mutex
	certs map[string]certEntry
}

type memberState struct {
	ec *embed.Config
	lc *lifecycle
	// srv is the running server, once etcd has started.
	srv atomic.Pointer[etcdserver.EtcdServer]
}

type certEntry struct {
	size     int64
	mod      time.Time
	notAfter time.Time
	ok       bool
}

func newMemberCollector() *memberCollector {
	return &memberCollector{
		expiry: prometheus.NewDesc(MetricCertExpiry,
			"When a certificate this member uses expires (Unix time): role server and peer are the certificates it presents, client_ca and peer_ca the CAs it trusts (the earliest-expiring certificate of the file).",
			[]string{"role", "file"}, nil),
		phase: prometheus.NewDesc(MetricPhase,
			"The member's phase, as its systemd STATUS says it: 1 for the current one (starting, waiting, serving, stopping, removed, failed).",
			[]string{"phase"}, nil),
		quota: prometheus.NewDesc(MetricQuota,
			"The backend quota this member was started with (ETCD_QUOTA_BACKEND_BYTES, else etcd's default): NOSPACE is raised beyond it. Absent when the quota is disabled.", nil, nil),
		alarms: prometheus.NewDesc(MetricAlarms,
			"How many members have each alarm raised, as the cluster's replicated alarm list says (NOSPACE: writes are refused; CORRUPT: a member's data differs). Read at each scrape, unlike etcd_debugging_server_alarms, which a restart loses.",
			[]string{"alarm_type"}, nil),
		certs: map[string]certEntry{},
	}
}

func (c *memberCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.expiry
	ch <- c.phase
	ch <- c.quota
	ch <- c.alarms
}

func (c *memberCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.state.Load()
	if st == nil {
		return
	}
	for _, f := range []struct{ role, file string }{
		{"server", st.ec.ClientTLSInfo.CertFile}, {"peer", st.ec.PeerTLSInfo.CertFile},
		{"client_ca", st.ec.ClientTLSInfo.TrustedCAFile}, {"peer_ca", st.ec.PeerTLSInfo.TrustedCAFile},
	} {
		if f.file == "" {
			continue
		}
		if t, ok := c.notAfter(f.file); ok {
			ch <- prometheus.MustNewConstMetric(c.expiry, prometheus.GaugeValue, float64(t.Unix()), f.role, f.file)
		}
	}
	current := st.lc.Phase()
	for _, p := range phases {
		v := 0.0
		if p == current {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.phase, prometheus.GaugeValue, v, p)
	}
	// etcd: 0 is its default quota, below 0 none at all.
	if q := st.ec.QuotaBackendBytes; q >= 0 {
		if q == 0 {
			q = storage.DefaultQuotaBytes
		}
		ch <- prometheus.MustNewConstMetric(c.quota, prometheus.GaugeValue, float64(q))
	}
	if srv := st.srv.Load(); srv != nil {
		n := map[pb.AlarmType]int{pb.AlarmType_NOSPACE: 0, pb.AlarmType_CORRUPT: 0}
		for _, a := range srv.Alarms() {
			n[a.Alarm]++
		}
		for t, count := range n {
			ch <- prometheus.MustNewConstMetric(c.alarms, prometheus.GaugeValue, float64(count), t.String())
		}
	}
}

// notAfter is the earliest expiry among the certificates of a PEM file.
// A file that cannot be read or holds none exports nothing: the alert on
// absent() says so, and the member's own TLS setup fails louder.
func (c *memberCollector) notAfter(file string) (time.Time, bool) {
	fi, err := os.Stat(file)
	if err != nil {
		return time.Time{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.certs[file]; ok && e.size == fi.Size() && e.mod.Equal(fi.ModTime()) {
		return e.notAfter, e.ok
	}
	e := certEntry{size: fi.Size(), mod: fi.ModTime()}
	if data, err := os.ReadFile(file); err == nil {
		for {
			var b *pem.Block
			b, data = pem.Decode(data)
			if b == nil {
				break
			}
			if b.Type != "CERTIFICATE" {
				continue
			}
			cert, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				continue
			}
			if !e.ok || cert.NotAfter.Before(e.notAfter) {
				e.notAfter, e.ok = cert.NotAfter, true
			}
		}
	}
	c.certs[file] = e
	return e.notAfter, e.ok
}

var (
	registerMetrics sync.Once
	members         = newMemberCollector()
)

// registerApplianceMetrics adds the appliance's own metrics to the
// registry etcd serves on /metrics (registered once per process; the
// member's state is the latest Run's).
func registerApplianceMetrics(ec *embed.Config, lc *lifecycle) *memberState {
	st := &memberState{ec: ec, lc: lc}
	members.state.Store(st)
	registerMetrics.Do(func() {
		prometheus.MustRegister(newBackupCollector(layout.BackupStatus), members)
	})
	return st
}
