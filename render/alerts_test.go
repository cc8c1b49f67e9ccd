package render

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/etcd-appliance/appliance/inventory"
	"github.com/etcd-appliance/appliance/node"
)

const alertsInventory = `version = 1
[cluster]
name = "prod"
token = "prod-token"
quota_backend = "1GiB"

[backup]
schedule = "hourly"

[[member]]
name = "etcd0"
address = "10.0.0.10"
[[member]]
name = "etcd1"
address = "10.0.0.11"
[[member]]
name = "etcd2"
address = "10.0.0.12"
`

// promtool's unit test file (promtool test rules).
type promTest struct {
	RuleFiles          []string    `yaml:"rule_files"`
	EvaluationInterval string      `yaml:"evaluation_interval"`
	Tests              []promGroup `yaml:"tests"`
}

type promGroup struct {
	Name        string       `yaml:"name"`
	Interval    string       `yaml:"interval"`
	InputSeries []promSeries `yaml:"input_series"`
	AlertTests  []promAlert  `yaml:"alert_rule_test"`
}

type promSeries struct {
	Series string `yaml:"series"`
	Values string `yaml:"values"`
}

type promAlert struct {
	EvalTime  string         `yaml:"eval_time"`
	AlertName string         `yaml:"alertname"`
	ExpAlerts []promExpAlert `yaml:"exp_alerts"`
}

type promExpAlert struct {
	ExpLabels map[string]string `yaml:"exp_labels"`
}

// alertCase is one alert on one history: fires (with labels beyond
// severity and cluster) or stays quiet.
type alertCase struct {
	alert  string
	at     string
	series [][2]string
	labels map[string]string // nil: quiet
}

const s = `cluster="etcd-prod",job="etcd-prod",instance="10.0.0.10:2379"`

func series(name, labels, values string) [2]string {
	return [2]string{name + "{" + labels + "}", values}
}

var (
	inst = map[string]string{"instance": "10.0.0.10:2379", "job": "etcd-prod"}
	none = map[string]string{}
)

func up3(a, b, c string) [][2]string {
	return [][2]string{
		series("up", `cluster="etcd-prod",job="etcd-prod",instance="10.0.0.10:2379"`, a),
		series("up", `cluster="etcd-prod",job="etcd-prod",instance="10.0.0.11:2379"`, b),
		series("up", `cluster="etcd-prod",job="etcd-prod",instance="10.0.0.12:2379"`, c),
	}
}

// histogram is a histogram whose observations (100 a minute) all fall in
// the bucket up to le.
func histogram(name, le string) [][2]string {
	var out [][2]string
	reached := false
	for _, b := range []string{"0.004", "0.008", "0.016", "0.064", "+Inf"} {
		reached = reached || b == le
		v := "0x30"
		if reached {
			v = "0+100x30"
		}
		out = append(out, series(name, s+`,le="`+b+`"`, v))
	}
	return out
}

func grpc(ok, failing, typ string) [][2]string {
	return [][2]string{
		series("grpc_server_handled_total", s+`,grpc_code="OK",grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="`+typ+`"`, ok),
		series("grpc_server_handled_total", s+`,grpc_code="Unavailable",grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="`+typ+`"`, failing),
	}
}

func withQuota(name, values string) [][2]string {
	return [][2]string{series(name, s, values), series(node.MetricQuota, s, "1073741824x30")}
}

var alertCases = []alertCase{
	{"EtcdMemberDown", "5m", up3("1 1 0x5", "1x7", "1x7"), inst},
	{"EtcdMemberDown", "5m", up3("1x7", "1x7", "1x7"), nil},
	// Another cluster's member, in the same Prometheus.
	{"EtcdMemberDown", "5m", [][2]string{series("up", `cluster="etcd-other",job="etcd-other",instance="10.0.1.10:2379"`, "0x7")}, nil},
	{"EtcdQuorumAtRisk", "8m", up3("1 1 0x8", "1x10", "1x10"), none},
	{"EtcdQuorumAtRisk", "8m", up3("1x10", "1x10", "1x10"), nil},
	// A planned restart of a minute: not a page.
	{"EtcdQuorumAtRisk", "8m", up3("1 1 0 1x7", "1x10", "1x10"), nil},
	{"EtcdNoQuorum", "5m", up3("0x7", "0x7", "1x7"), none},
	{"EtcdNoQuorum", "5m", up3("0x7", "1x7", "1x7"), nil},
	// Every member down, none scraped at all: still no quorum.
	{"EtcdNoQuorum", "5m", [][2]string{series("etcd_server_has_leader", s, "1x7")}, none},
	{"EtcdNoLeader", "5m", [][2]string{series("etcd_server_has_leader", s, "0x7")}, inst},
	{"EtcdNoLeader", "5m", [][2]string{series("etcd_server_has_leader", s, "1x7")}, nil},
	{"EtcdFrequentLeaderChanges", "70m", [][2]string{series("etcd_server_leader_changes_seen_total", s, "0+1x80")}, inst},
	{"EtcdFrequentLeaderChanges", "70m", [][2]string{series("etcd_server_leader_changes_seen_total", s, "0x30 2x50")}, nil},
	// Near the thresholds: fsync p99 just under 16 ms fires (10 ms),
	// just under 8 ms does not; commit p99 near 64 ms fires (25 ms),
	// near 16 ms does not.
	{"EtcdSlowFsync", "25m", histogram("etcd_disk_wal_fsync_duration_seconds_bucket", "0.016"), map[string]string{"instance": "10.0.0.10:2379"}},
	{"EtcdSlowFsync", "25m", histogram("etcd_disk_wal_fsync_duration_seconds_bucket", "0.008"), nil},
	{"EtcdSlowCommit", "25m", histogram("etcd_disk_backend_commit_duration_seconds_bucket", "0.064"), map[string]string{"instance": "10.0.0.10:2379"}},
	{"EtcdSlowCommit", "25m", histogram("etcd_disk_backend_commit_duration_seconds_bucket", "0.016"), nil},
	// 1GiB quota: warned over 80% (859 MB), critical over 95%.
	{"EtcdDatabaseNearQuota", "15m", withQuota("etcd_mvcc_db_total_size_in_bytes", "900000000x20"), inst},
	{"EtcdDatabaseNearQuota", "15m", withQuota("etcd_mvcc_db_total_size_in_bytes", "800000000x20"), nil},
	{"EtcdDatabaseFull", "5m", withQuota("etcd_mvcc_db_total_size_in_bytes", "1050000000x10"), inst},
	{"EtcdDatabaseFull", "5m", withQuota("etcd_mvcc_db_total_size_in_bytes", "1000000000x10"), nil},
	{"EtcdSpaceAlarm", "1m", [][2]string{series(node.MetricAlarms, s+`,alarm_type="NOSPACE"`, "1x5"), series(node.MetricAlarms, s+`,alarm_type="CORRUPT"`, "0x5")}, map[string]string{"alarm_type": "NOSPACE"}},
	{"EtcdSpaceAlarm", "1m", [][2]string{series(node.MetricAlarms, s+`,alarm_type="NOSPACE"`, "0x5"), series(node.MetricAlarms, s+`,alarm_type="CORRUPT"`, "0x5")}, nil},
	// time() starts at 0 in promtool: the values are seconds from then.
	{"EtcdCertificateExpiresIn30Days", "2h", [][2]string{series(node.MetricCertExpiry, s+`,role="server",file="/etc/etcd/pki/server.crt"`, "1728000x150")}, map[string]string{"instance": "10.0.0.10:2379", "job": "etcd-prod", "role": "server", "file": "/etc/etcd/pki/server.crt"}},
	{"EtcdCertificateExpiresIn30Days", "2h", [][2]string{series(node.MetricCertExpiry, s+`,role="server",file="/etc/etcd/pki/server.crt"`, "3456000x150")}, nil},
	{"EtcdCertificateExpiresIn7Days", "1h", [][2]string{series(node.MetricCertExpiry, s+`,role="peer",file="/etc/etcd/pki/peer.crt"`, "432000x70")}, map[string]string{"instance": "10.0.0.10:2379", "job": "etcd-prod", "role": "peer", "file": "/etc/etcd/pki/peer.crt"}},
	{"EtcdCertificateExpiresIn7Days", "1h", [][2]string{series(node.MetricCertExpiry, s+`,role="peer",file="/etc/etcd/pki/peer.crt"`, "1728000x70")}, nil},
	{"EtcdHighGRPCErrorRate", "25m", grpc("0+100x30", "0+10x30", "unary"), map[string]string{"instance": "10.0.0.10:2379"}},
	{"EtcdHighGRPCErrorRate", "25m", grpc("0+100x30", "0+1x30", "unary"), nil},
	// Streams ending as clients go, and a member too quiet for a share.
	{"EtcdHighGRPCErrorRate", "25m", grpc("0+100x30", "0+50x30", "bidi_stream"), nil},
	{"EtcdHighGRPCErrorRate", "25m", grpc("0+5x30", "0+5x30", "unary"), nil},
	{"EtcdMemberNotServing", "8m", [][2]string{series(node.MetricPhase, s+`,phase="waiting"`, "1x10")}, map[string]string{"instance": "10.0.0.10:2379", "job": "etcd-prod", "phase": "waiting"}},
	{"EtcdMemberNotServing", "8m", [][2]string{series(node.MetricPhase, s+`,phase="serving"`, "1x10"), series(node.MetricPhase, s+`,phase="waiting"`, "0x10")}, nil},
	// Hourly: a backup taken at 0 is too old after 2 h (and 10 min).
	{"EtcdBackupTooOld", "3h", append(up3("1x200", "1x200", "1x200"), series(node.MetricBackupTimestamp, s, "0x200")), none},
	{"EtcdBackupTooOld", "3h", append(up3("1x200", "1x200", "1x200"), series(node.MetricBackupTimestamp, s, "0+60x200")), nil},
	// Never one, for longer than twice the schedule.
	{"EtcdBackupTooOld", "3h", up3("1x200", "1x200", "1x200"), map[string]string{"cluster": "etcd-prod"}},
	// None yet, but Prometheus has watched the cluster for less than that.
	{"EtcdBackupTooOld", "50m", up3("1x60", "1x60", "1x60"), nil},
	// The member that took the newest backup is down since: still recent.
	{"EtcdBackupTooOld", "3h", append(up3("1x200", "1x200", "1x200"),
		series(node.MetricBackupTimestamp, `cluster="etcd-prod",job="etcd-prod",instance="10.0.0.11:2379"`, "0+60x100"),
		series(node.MetricBackupTimestamp, s, "0x200")), nil},
}

// promtoolTest writes the rules (annotations dropped: promtool compares
// them whole, with $value expanded; `promtool check rules` checks their
// templates) and the cases, and runs promtool test rules.
func promtoolTest(t *testing.T, rules []Rule, cases []alertCase) (string, error) {
	t.Helper()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("this test needs promtool (apt-get install prometheus; .ci/run installs it): %v", err)
	}
	dir := t.TempDir()
	var stripped []Rule
	for _, r := range rules {
		r.Annotations = nil
		stripped = append(stripped, r)
	}
	write := func(name string, v any) {
		var b bytes.Buffer
		enc := yaml.NewEncoder(&b)
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("rules.yml", ruleFile{Groups: []ruleGroup{{Name: "etcd-prod", Rules: stripped}}})
	pt := promTest{RuleFiles: []string{"rules.yml"}, EvaluationInterval: "1m"}
	for i, c := range cases {
		g := promGroup{Name: c.alert, Interval: "1m"}
		for _, sv := range c.series {
			g.InputSeries = append(g.InputSeries, promSeries{Series: sv[0], Values: sv[1]})
		}
		a := promAlert{EvalTime: c.at, AlertName: c.alert}
		if c.labels != nil {
			l := map[string]string{"severity": severityOf(t, rules, c.alert), "cluster": "etcd-prod"}
			for k, v := range c.labels {
				l[k] = v
			}
			a.ExpAlerts = []promExpAlert{{ExpLabels: l}}
		}
		g.AlertTests = []promAlert{a}
		g.Name = strings.Join([]string{c.alert, map[bool]string{true: "fires", false: "quiet"}[c.labels != nil], string(rune('a' + i%26))}, " ")
		pt.Tests = append(pt.Tests, g)
	}
	write("rules_test.yml", pt)
	out, err := exec.Command(promtool, "test", "rules", filepath.Join(dir, "rules_test.yml")).CombinedOutput()
	return string(out), err
}

func severityOf(t *testing.T, rules []Rule, alert string) string {
	for _, r := range rules {
		if r.Alert == alert {
			return r.Labels["severity"]
		}
	}
	t.Fatalf("no rule %s", alert)
	return ""
}

func alertsInv(t *testing.T) *inventory.Inventory {
	t.Helper()
	inv, err := inventory.Parse("prod.toml", []byte(alertsInventory))
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

// Each alert fires on a history that should fire it and stays quiet on
// one that should not, in Prometheus's own rule tester; every rule has a
// case of each.
func TestAlertsWithPromtool(t *testing.T) {
	rules := Alerts(alertsInv(t))
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, c := range alertCases {
		if c.labels != nil {
			fires[c.alert] = true
		} else {
			quiet[c.alert] = true
		}
	}
	for _, r := range rules {
		if !fires[r.Alert] || !quiet[r.Alert] {
			t.Errorf("%s: a case that fires it: %v, one that does not: %v", r.Alert, fires[r.Alert], quiet[r.Alert])
		}
		if !strings.Contains(r.Annotations["runbook"], "etcd-installer ") || r.Annotations["summary"] == "" {
			t.Errorf("%s: annotations %v: want a summary and a runbook naming an etcd-installer command", r.Alert, r.Annotations)
		}
	}
	if out, err := promtoolTest(t, rules, alertCases); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}

// The tester catches a broken rule: a member-down rule that never fires,
// a quorum rule off by one.
func TestPromtoolCatchesPlantedBugs(t *testing.T) {
	for _, plant := range []struct{ alert, from, to string }{
		{"EtcdMemberDown", "== 0", "== 2"},
		{"EtcdQuorumAtRisk", "< 3", "< 2"},
		{"EtcdDatabaseNearQuota", "> 0.8", "> 0.9"},
		{"EtcdBackupTooOld", "[4h]", "[5m]"},
	} {
		rules := Alerts(alertsInv(t))
		found := false
		for i := range rules {
			if rules[i].Alert == plant.alert && strings.Contains(rules[i].Expr, plant.from) {
				rules[i].Expr = strings.Replace(rules[i].Expr, plant.from, plant.to, 1)
				found = true
			}
		}
		if !found {
			t.Fatalf("%s has no %q to plant a bug in", plant.alert, plant.from)
		}
		var cases []alertCase
		for _, c := range alertCases {
			if c.alert == plant.alert {
				cases = append(cases, c)
			}
		}
		if out, err := promtoolTest(t, rules, cases); err == nil {
			t.Errorf("%s with %q for %q: promtool passed\n%s", plant.alert, plant.to, plant.from, out)
		}
	}
}

// The rendered file is what Prometheus loads: promtool check rules (the
// annotations' templates too), and prometheus.yml names it.
func TestAlertsFileChecks(t *testing.T) {
	r, err := Render(alertsInv(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var names []string
	for _, f := range r.Cluster {
		names = append(names, f.Name)
		if err := os.WriteFile(filepath.Join(dir, f.Name), f.Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command("promtool", "check", "rules", filepath.Join(dir, AlertsFileName("prod"))).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	out, err = exec.Command("promtool", "check", "config", "--syntax-only", filepath.Join(dir, PrometheusFile)).CombinedOutput()
	conf, _ := os.ReadFile(filepath.Join(dir, PrometheusFile))
	if err != nil || !strings.Contains(string(conf), "rule_files:\n  - "+AlertsFileName("prod")+"\n") {
		t.Fatalf("promtool check config (with %v): %v\n%s", names, err, out)
	}
}
