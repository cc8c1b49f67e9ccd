package render

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"

	"github.com/etcd-appliance/appliance/inventory"
)

// DashboardFile is the cluster's Grafana dashboard (Dashboards > New >
// Import), next to prometheus.yml.
const DashboardFile = "etcd-dashboard.json"

// Query is one panel's PromQL, for tests that run them against a real
// Prometheus.
type Query struct {
	Panel, Expr string
}

// dashboardPanel is one panel before it is built: its kind, title,
// unit, queries (expression and legend) and thresholds.
type dashboardPanel struct {
	row, kind, title, unit, help string
	queries                      [][2]string
	steps                        []dashboard.Threshold
}

func step(color string, v *float64) dashboard.Threshold {
	return dashboard.Threshold{Color: color, Value: v}
}
func at(v float64) *float64 { return &v }

// dashboardPanels are the panels of the cluster's dashboard: every query
// selects the cluster by the label its scrape configuration sets.
func dashboardPanels(inv *inventory.Inventory) []dashboardPanel {
	sel := fmt.Sprintf(`cluster=%q`, "etcd-"+inv.Cluster.Name)
	n := len(inv.Members)
	quorum := n/2 + 1
	ps := []dashboardPanel{
		{row: "Cluster", kind: "stat", title: "Members answering", help: fmt.Sprintf("of %d; quorum is %d", n, quorum),
			queries: [][2]string{{fmt.Sprintf(`count(up{%s} == 1) or vector(0)`, sel), ""}},
			steps:   []dashboard.Threshold{step("red", nil), step("orange", at(float64(quorum))), step("green", at(float64(n)))}},
		{row: "Cluster", kind: "stat", title: "Members with a leader", help: "etcd_server_has_leader: a member without one serves no writes",
			queries: [][2]string{{fmt.Sprintf(`sum(etcd_server_has_leader{%s})`, sel), ""}},
			steps:   []dashboard.Threshold{step("red", nil), step("orange", at(float64(quorum))), step("green", at(float64(n)))}},
		{row: "Cluster", kind: "stat", title: "Leader changes (1h)", help: "more than a few an hour: slow disks or a lossy network",
			queries: [][2]string{{fmt.Sprintf(`max(increase(etcd_server_leader_changes_seen_total{%s}[1h]))`, sel), ""}},
			steps:   []dashboard.Threshold{step("green", nil), step("orange", at(LeaderChangesIn1h))}},
		{row: "Cluster", kind: "stat", title: "Alarms raised", help: "members with NOSPACE or CORRUPT raised: etcd-installer status INVENTORY",
			queries: [][2]string{{fmt.Sprintf(`max(etcd_appliance_alarms{%s}) or vector(0)`, sel), ""}},
			steps:   []dashboard.Threshold{step("green", nil), step("red", at(1))}},
		{row: "Cluster", kind: "timeseries", title: "Leader", help: "1 on the member that leads",
			queries: [][2]string{{fmt.Sprintf(`etcd_server_is_leader{%s}`, sel), "{{instance}}"}}},
		{row: "Cluster", kind: "timeseries", title: "Member phase", help: "the phase each member's systemd STATUS reports",
			queries: [][2]string{{fmt.Sprintf(`etcd_appliance_phase{%s} == 1`, sel), "{{instance}} {{phase}}"}}},
		{row: "Raft", kind: "timeseries", title: "Proposals committed", unit: "ops",
			queries: [][2]string{{fmt.Sprintf(`rate(etcd_server_proposals_committed_total{%s}[$__rate_interval])`, sel), "{{instance}}"}}},
		{row: "Raft", kind: "timeseries", title: "Proposals pending and failed",
			queries: [][2]string{
				{fmt.Sprintf(`etcd_server_proposals_pending{%s}`, sel), "pending {{instance}}"},
				{fmt.Sprintf(`rate(etcd_server_proposals_failed_total{%s}[$__rate_interval])`, sel), "failed/s {{instance}}"}}},
		{row: "Disk", kind: "timeseries", title: "WAL fsync p99", unit: "s", help: "etcd wants under 10 ms",
			queries: [][2]string{{fmt.Sprintf(`histogram_quantile(0.99, sum by (instance, le) (rate(etcd_disk_wal_fsync_duration_seconds_bucket{%s}[$__rate_interval])))`, sel), "{{instance}}"}},
			steps:   []dashboard.Threshold{step("green", nil), step("red", at(FsyncP99Seconds))}},
		{row: "Disk", kind: "timeseries", title: "Backend commit p99", unit: "s", help: "etcd wants under 25 ms",
			queries: [][2]string{{fmt.Sprintf(`histogram_quantile(0.99, sum by (instance, le) (rate(etcd_disk_backend_commit_duration_seconds_bucket{%s}[$__rate_interval])))`, sel), "{{instance}}"}},
			steps:   []dashboard.Threshold{step("green", nil), step("red", at(CommitP99Seconds))}},
		{row: "Space", kind: "timeseries", title: "Backend size against the quota", unit: "bytes", help: "the file, the data in it, and the quota: etcd-installer maintenance INVENTORY returns the difference",
			queries: [][2]string{
				{fmt.Sprintf(`etcd_mvcc_db_total_size_in_bytes{%s}`, sel), "file {{instance}}"},
				{fmt.Sprintf(`etcd_mvcc_db_total_size_in_use_in_bytes{%s}`, sel), "in use {{instance}}"},
				{fmt.Sprintf(`max(etcd_server_quota_backend_bytes{%s})`, sel), "quota"}}},
		{row: "Requests", kind: "timeseries", title: "gRPC requests by code", unit: "reqps",
			queries: [][2]string{{fmt.Sprintf(`sum by (grpc_code) (rate(grpc_server_handled_total{%s}[$__rate_interval]))`, sel), "{{grpc_code}}"}}},
	}
	if inv.TLSEnabled() {
		ps = append(ps, dashboardPanel{row: "Certificates and backups", kind: "timeseries", title: "Certificates expire in", unit: "s",
			help:    "etcd-installer certs renew INVENTORY, then apply",
			queries: [][2]string{{fmt.Sprintf(`etcd_appliance_certificate_expiry_timestamp_seconds{%s} - time()`, sel), "{{instance}} {{role}}"}},
			steps:   []dashboard.Threshold{step("red", nil), step("orange", at(CertCritDays*86400)), step("green", at(CertWarnDays*86400))}})
	}
	if inv.Backup.Scheduled() {
		limit := BackupAlertAfter(inv.Backup)
		ps = append(ps, dashboardPanel{row: "Certificates and backups", kind: "stat", title: "Last good backup", unit: "s",
			help:    "age of the newest verified backup of any member (schedule " + inv.Backup.Schedule + ")",
			queries: [][2]string{{fmt.Sprintf(`time() - max(etcd_appliance_backup_last_success_timestamp_seconds{%s})`, sel), ""}},
			steps:   []dashboard.Threshold{step("green", nil), step("red", at(limit.Seconds()))}})
	}
	return ps
}

// DashboardQueries lists every query of the dashboard.
func DashboardQueries(inv *inventory.Inventory) []Query {
	var out []Query
	for _, p := range dashboardPanels(inv) {
		for _, q := range p.queries {
			out = append(out, Query{Panel: p.title, Expr: q[0]})
		}
	}
	return out
}

var metricNameRE = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\{`)

// MetricNames lists the metric names an expression selects (those written
// name{...}, as every query here is).
func MetricNames(expr string) []string {
	seen := map[string]bool{}
	for _, m := range metricNameRE.FindAllStringSubmatch(expr, -1) {
		seen[m[1]] = true
	}
	var out []string
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Dashboard is the cluster's Grafana dashboard, built with Grafana's own
// SDK (its types and builders, rather than JSON by hand): the import asks
// for the Prometheus data source ($datasource).
func Dashboard(inv *inventory.Inventory) ([]byte, error) {
	ds := common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${datasource}")}
	b := dashboard.NewDashboardBuilder("etcd cluster "+inv.Cluster.Name).
		Uid("etcd-"+inv.Cluster.Name).
		Description("Rendered by etcd-installer from the inventory of cluster "+inv.Cluster.Name+" (docs/observability.md)").
		Tags([]string{"etcd", "etcd-appliance"}).
		Refresh("30s").
		Time("now-3h", "now").
		Timezone(common.TimeZoneBrowser).
		WithVariable(dashboard.NewDatasourceVariableBuilder("datasource").Label("Prometheus").Type("prometheus"))
	row := ""
	// Ids given, in order: Grafana links and repeats panels by id.
	var id uint32
	for _, p := range dashboardPanels(inv) {
		if p.row != row {
			row = p.row
			id++
			b = b.WithRow(dashboard.NewRowBuilder(row).Id(id))
		}
		id++
		var steps *dashboard.ThresholdsConfigBuilder
		if len(p.steps) > 0 {
			steps = dashboard.NewThresholdsConfigBuilder().Mode(dashboard.ThresholdsModeAbsolute).Steps(p.steps)
		}
		switch p.kind {
		case "stat":
			sp := stat.NewPanelBuilder().Id(id).Title(p.title).Description(p.help).Datasource(ds).Height(4).Span(6).
				ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}))
			if p.unit != "" {
				sp = sp.Unit(p.unit)
			}
			if steps != nil {
				sp = sp.Thresholds(steps)
			}
			for _, q := range p.queries {
				sp = sp.WithTarget(prometheus.NewDataqueryBuilder().Expr(q[0]).LegendFormat(q[1]).Datasource(ds))
			}
			b = b.WithPanel(sp)
		default:
			tp := timeseries.NewPanelBuilder().Id(id).Title(p.title).Description(p.help).Datasource(ds).Height(8).Span(12)
			if p.unit != "" {
				tp = tp.Unit(p.unit)
			}
			if steps != nil {
				tp = tp.Thresholds(steps).ThresholdsStyle(common.NewGraphThresholdsStyleConfigBuilder().Mode(common.GraphThresholdsStyleModeLine))
			}
			for _, q := range p.queries {
				tp = tp.WithTarget(prometheus.NewDataqueryBuilder().Expr(q[0]).LegendFormat(q[1]).Datasource(ds))
			}
			b = b.WithPanel(tp)
		}
	}
	d, err := b.Build()
	if err != nil {
		return nil, fmt.Errorf("building the dashboard: %w", err)
	}
	out, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// dashboard renders DashboardFile.
func (c *clusterFiles) dashboard() error {
	data, err := Dashboard(c.inv)
	if err != nil {
		return err
	}
	c.out = append(c.out, ClusterFile{Name: DashboardFile, Mode: fsMode(0o644), Data: data})
	return nil
}
