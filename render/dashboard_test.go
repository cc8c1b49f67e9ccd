package render

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// The dashboard is Grafana's format (it reads back through Grafana's own
// types), has a panel per query set, every query selects this cluster
// and is PromQL that Prometheus parses.
func TestDashboard(t *testing.T) {
	inv := alertsInv(t)
	data, err := Dashboard(inv)
	if err != nil {
		t.Fatal(err)
	}
	plugins.RegisterDefaultPlugins()
	var d dashboard.Dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("the dashboard does not read back: %v", err)
	}
	if d.Uid == nil || *d.Uid != "etcd-prod" || len(d.Panels) == 0 {
		t.Fatalf("dashboard: uid %v, %d panels", d.Uid, len(d.Panels))
	}
	qs := DashboardQueries(inv)
	var raw struct {
		Panels []struct {
			ID      int    `json:"id"`
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	var exprs []string
	ids := map[int]bool{}
	for _, p := range raw.Panels {
		if p.ID == 0 || ids[p.ID] {
			t.Errorf("panel %q: id %d (zero or repeated)", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	if len(exprs) != len(qs) {
		t.Errorf("%d queries in the JSON, %d listed", len(exprs), len(qs))
	}
	// Recording rules of the queries: promtool parses their PromQL.
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, q := range qs {
		if !strings.Contains(q.Expr, `cluster="etcd-prod"`) {
			t.Errorf("%s: %s does not select the cluster", q.Panel, q.Expr)
		}
		if len(MetricNames(q.Expr)) == 0 {
			t.Errorf("%s: %s names no metric", q.Panel, q.Expr)
		}
		expr := strings.ReplaceAll(q.Expr, "$__rate_interval", "5m")
		b, _ := json.Marshal(expr)
		rules.WriteString("      - record: dashboard_query_" + string(rune('a'+i)) + "\n        expr: " + string(b) + "\n")
	}
	path := filepath.Join(t.TempDir(), "queries.yml")
	if err := os.WriteFile(path, []byte(rules.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("promtool", "check", "rules", path).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules (the dashboard's queries): %v\n%s", err, out)
	}
}

func TestMetricNames(t *testing.T) {
	got := strings.Join(MetricNames(`histogram_quantile(0.99, sum by (instance, le) (rate(etcd_disk_wal_fsync_duration_seconds_bucket{cluster="x"}[5m]))) / up{a="b"}`), " ")
	if got != "etcd_disk_wal_fsync_duration_seconds_bucket up" {
		t.Fatal(got)
	}
}
