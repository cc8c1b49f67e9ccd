package node

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"go.etcd.io/etcd/server/v3/embed"

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

// writeCert writes a PEM file of self-signed certificates expiring at
// each of notAfter.
func writeCert(t testing.TB, path string, notAfter ...time.Time) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	for i, na := range notAfter {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 1)), Subject: pkix.Name{CommonName: "test"}, NotBefore: na.Add(-time.Hour), NotAfter: na}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
}

// The member's certificates (a bundle counts by its earliest), its phase
// and quota; a renewed certificate shows at the next scrape.
func TestMemberMetrics(t *testing.T) {
	dir := t.TempDir()
	server, ca := filepath.Join(dir, "server.crt"), filepath.Join(dir, "ca.crt")
	expires := time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)
	writeCert(t, server, expires)
	writeCert(t, ca, expires.AddDate(5, 0, 0), expires.AddDate(1, 0, 0))
	ec := embed.NewConfig()
	ec.ClientTLSInfo.CertFile, ec.ClientTLSInfo.TrustedCAFile = server, ca
	ec.QuotaBackendBytes = 4 << 30
	lc := &lifecycle{n: &statusRecorder{}}
	c := newMemberCollector()
	if n := testutil.CollectAndCount(c); n != 0 {
		t.Fatalf("before a member runs: %d samples", n)
	}
	c.state.Store(&memberState{ec: ec, lc: lc})
	lc.enter(PhaseWaiting)
	lc.ready("serving")
	want := fmt.Sprintf(`
# HELP etcd_appliance_certificate_expiry_timestamp_seconds When a certificate this member uses expires (Unix time): role server and peer are the certificates it presents, client_ca and peer_ca the CAs it trusts (the earliest-expiring certificate of the file).
# TYPE etcd_appliance_certificate_expiry_timestamp_seconds gauge
etcd_appliance_certificate_expiry_timestamp_seconds{file=%q,role="client_ca"} %g
etcd_appliance_certificate_expiry_timestamp_seconds{file=%q,role="server"} %g
# HELP etcd_appliance_phase The member's phase, as its systemd STATUS says it: 1 for the current one (starting, waiting, serving, stopping, removed, failed).
# TYPE etcd_appliance_phase gauge
etcd_appliance_phase{phase="failed"} 0
etcd_appliance_phase{phase="removed"} 0
etcd_appliance_phase{phase="serving"} 1
etcd_appliance_phase{phase="starting"} 0
etcd_appliance_phase{phase="stopping"} 0
etcd_appliance_phase{phase="waiting"} 0
# HELP etcd_appliance_quota_backend_bytes The backend quota this member was started with (ETCD_QUOTA_BACKEND_BYTES, else etcd's default): NOSPACE is raised beyond it. Absent when the quota is disabled.
# TYPE etcd_appliance_quota_backend_bytes gauge
etcd_appliance_quota_backend_bytes 4.294967296e+09
`, ca, float64(expires.AddDate(1, 0, 0).Unix()), server, float64(expires.Unix()))
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	// Renewed in place (etcd reloads certificates per handshake).
	renewed := expires.AddDate(1, 0, 0)
	writeCert(t, server, renewed)
	if err := os.Chtimes(server, time.Now(), time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.notAfter(server); !got.Equal(renewed) {
		t.Errorf("after renewal: %s, want %s", got, renewed)
	}
	// A disabled quota (below 0) is no quota: no sample.
	ec.QuotaBackendBytes = -1
	if n := testutil.CollectAndCount(c, MetricQuota); n != 0 {
		t.Errorf("with the quota disabled: %d quota samples", n)
	}
	lc.stopping("stopping")
	if got := phasesOf(t, c); got != "stopping" {
		t.Errorf("after STOPPING: phases at 1: %q", got)
	}
}

// phasesOf lists the phases c exports at 1.
func phasesOf(t *testing.T, c *memberCollector) string {
	ch := make(chan prometheus.Metric, 32)
	c.Collect(ch)
	close(ch)
	var on []string
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			t.Fatal(err)
		}
		for _, l := range d.Label {
			if l.GetName() == "phase" && d.GetGauge().GetValue() == 1 {
				on = append(on, l.GetValue())
			}
		}
	}
	return strings.Join(on, ",")
}
