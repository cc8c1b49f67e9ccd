package render_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/etcd-appliance/appliance/internal/etcdtest"
	"github.com/etcd-appliance/appliance/node"
	"github.com/etcd-appliance/appliance/render"
	"github.com/etcd-appliance/appliance/workflow/localcluster/localclustertest"
)

// Every metric the alerts and the dashboard select is one a real member
// exports (three members on loopback, scraped as Prometheus would), but
// for those that only exist once their subject does.
func TestAlertsAndDashboardUseRealMetrics(t *testing.T) {
	lc := localclustertest.Started(t, localclustertest.Inventory(t, 3, `log_level = "warn"`+"\nquota_backend = \"64MiB\""))
	exported, samples := scrape(t, lc.Inv.ClientURLs())
	t.Logf("scrape of m0: %s", samples["bytes"])
	later := map[string]string{
		"up":                       "Prometheus's own, per target",
		node.MetricBackupTimestamp: "after the first verified scheduled backup",
		node.MetricCertExpiry:      "with TLS (this cluster is plain)",
	}
	var exprs []render.Query
	for _, r := range render.Alerts(lc.Inv) {
		exprs = append(exprs, render.Query{Panel: "alert " + r.Alert, Expr: r.Expr})
	}
	exprs = append(exprs, render.DashboardQueries(lc.Inv)...)
	for _, q := range exprs {
		for _, name := range render.MetricNames(q.Expr) {
			if !exported[name] && later[name] == "" {
				t.Errorf("%s selects %s, which no member exports", q.Panel, name)
			}
		}
	}
	for _, name := range []string{node.MetricPhase, node.MetricQuota, node.MetricAlarms} {
		if !exported[name] {
			t.Errorf("the members do not export %s", name)
		}
	}
	if got := samples[node.MetricAlarms+`{alarm_type="NOSPACE"}`]; got != "0 0 0" {
		t.Errorf("NOSPACE before the fill: %q", got)
	}

	// Filled to the quota: NOSPACE, in the metric the space alarm uses.
	cli := etcdtest.Client(t, lc.Inv.ClientURLs())
	if err := etcdtest.Fill(cli, "fill", 200, 512<<10); err == nil || !strings.Contains(err.Error(), "database space exceeded") {
		t.Fatalf("filling did not raise NOSPACE: %v", err)
	}
	// etcd raises the alarm through raft after refusing the write: polled,
	// with a deadline.
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, samples = scrape(t, lc.Inv.ClientURLs())
		got := samples[node.MetricAlarms+`{alarm_type="NOSPACE"}`]
		if got != "0 0 0" && got != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("NOSPACE raised, the members say %q", got)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("NOSPACE raised: %s per member", samples[node.MetricAlarms+`{alarm_type="NOSPACE"}`])
}

// scrape reads every member's /metrics: the metric names, and each
// series' values (one per member, in order) by name and labels.
func scrape(t *testing.T, urls []string) (map[string]bool, map[string]string) {
	exported, samples := map[string]bool{}, map[string]string{}
	for _, u := range urls {
		resp, err := http.Get(u + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if samples["bytes"] == "" {
			lines := strings.Count(string(body), "\n") - strings.Count(string(body), "\n#")
			samples["bytes"] = fmt.Sprintf("%d bytes, %d samples", len(body), lines)
		}
		sc := bufio.NewScanner(bytes.NewReader(body))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			series, value, _ := strings.Cut(line, " ")
			name, _, _ := strings.Cut(series, "{")
			exported[name] = true
			samples[series] = strings.TrimSpace(samples[series] + " " + value)
		}
	}
	return exported, samples
}
