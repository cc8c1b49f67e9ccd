package installer

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/etcd-appliance/appliance/cluster"
)

// The table shows what docs/operations.md promises: each member's served
// certificate expiry (round 1 had it in -o json only) and a removed
// member as REMOVED.
func TestStatusTable(t *testing.T) {
	exp := time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)
	cs := cluster.ClusterStatus{Cluster: "prod", Healthy: true, Quorum: true, Rows: []cluster.EndpointRow{
		{Name: "etcd0", Endpoint: "https://10.0.0.10:2379", ID: "1", Version: "3.7.3", Leader: true, Healthy: true, CertExpires: &exp},
		{Name: "etcd1", Endpoint: "https://10.0.0.11:2379", ID: "2", Version: "3.7.3", Healthy: true, CertExpires: &exp},
		{Name: "etcd2", Endpoint: "https://10.0.0.12:2379", Removed: true, Errors: []string{"removed from the cluster (not in its member list)"}},
	}}
	var b bytes.Buffer
	if err := printStatus(&b, cs, "table"); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(b.String(), "\n")
	if !strings.Contains(lines[0], "CERT EXPIRES") {
		t.Errorf("no certificate column: %s", lines[0])
	}
	if !strings.Contains(lines[1], "2027-03-01") {
		t.Errorf("etcd0's expiry missing: %s", lines[1])
	}
	if f := strings.Fields(lines[3]); !strings.Contains(lines[3], "REMOVED") || strings.Contains(lines[3], "UNHEALTHY") {
		t.Errorf("removed member: %q", f)
	}
	if !strings.Contains(b.String(), "cluster prod is healthy: 2/2 members") {
		t.Errorf("verdict counts the removed member:\n%s", b.String())
	}
}
