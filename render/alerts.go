package render

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/etcd-appliance/appliance/inventory"
)

// AlertsFileName is the file holding a cluster's Prometheus alerting
// rules, next to prometheus.yml (which names it in rule_files): named
// after the cluster, so that several clusters' rules share a directory.
func AlertsFileName(cluster string) string { return "etcd-" + cluster + "-alerts.yml" }

// Rule is one Prometheus alerting rule.
type Rule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for,omitempty"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type ruleGroup struct {
	Name  string `yaml:"name"`
	Rules []Rule `yaml:"rules"`
}

type ruleFile struct {
	Groups []ruleGroup `yaml:"groups"`
}

// Thresholds of the alerts, from etcd's own guidance (docs: "tuning",
// "hardware"): a WAL fsync at p99 over 10 ms and a backend commit over
// 25 ms mean a disk too slow for etcd.
const (
	FsyncP99Seconds   = 0.010
	CommitP99Seconds  = 0.025
	QuotaWarnShare    = 0.80
	QuotaCritShare    = 0.95
	GRPCErrorShare    = 0.05
	CertWarnDays      = 30
	CertCritDays      = 7
	LeaderChangesIn1h = 4
)

// BackupAlertAfter is how old the last verified backup may get before
// EtcdBackupTooOld fires: [backup] alert_after, else twice the period of
// a systemd shorthand schedule, else 48h (validation warns then).
func BackupAlertAfter(b inventory.Backup) time.Duration {
	if d, err := inventory.ParseAge(b.AlertAfter); b.AlertAfter != "" && err == nil {
		return d
	}
	if d, ok := inventory.ScheduleShorthands[strings.ToLower(strings.TrimSpace(b.Schedule))]; ok {
		return 2 * d
	}
	return 48 * time.Hour
}

// Alerts are the cluster's alerting rules. Every expression selects the
// series of this cluster by the label its scrape configuration sets
// (cluster="etcd-NAME"), and thresholds come from the inventory: its
// member count, its quota, its backup schedule. Each rule's runbook names
// the etcd-installer command that shows or fixes the cause.
func Alerts(inv *inventory.Inventory) []Rule {
	job := "etcd-" + inv.Cluster.Name
	sel := fmt.Sprintf(`cluster=%q`, job)
	n := len(inv.Members)
	quorum := n/2 + 1
	quota := inv.EffectiveTuning().QuotaBytes
	if quota <= 0 {
		quota = 2 << 30
	}
	up := fmt.Sprintf(`(count(up{%s} == 1) or vector(0))`, sel)
	rule := func(name, severity, expr, forDur, summary, runbook string) Rule {
		return Rule{
			Alert: name, Expr: expr, For: forDur,
			Labels: map[string]string{"severity": severity, "cluster": job},
			Annotations: map[string]string{
				"summary": summary,
				"runbook": runbook + " (INVENTORY is cluster " + inv.Cluster.Name + "'s inventory; docs/observability.md)",
			},
		}
	}
	rules := []Rule{
		rule("EtcdMemberDown", "warning", fmt.Sprintf(`up{%s} == 0`, sel), "1m",
			"etcd member {{ $labels.instance }} of cluster "+inv.Cluster.Name+" does not answer its scrape",
			"etcd-installer doctor INVENTORY says why (on the host: systemctl status etcd, journalctl -u etcd); a lost disk: etcd-installer member replace INVENTORY NAME"),
		rule("EtcdNoQuorum", "critical", fmt.Sprintf(`%s < %d`, up, quorum), "1m",
			fmt.Sprintf("cluster %s: {{ $value }} of %d members answer, quorum is %d: it refuses writes", inv.Cluster.Name, n, quorum),
			"etcd-installer doctor INVENTORY; with a majority lost for good, restore the last backup: etcd-installer restore INVENTORY FILE"),
		rule("EtcdNoLeader", "critical", fmt.Sprintf(`etcd_server_has_leader{%s} == 0`, sel), "1m",
			"etcd member {{ $labels.instance }} has no leader",
			"etcd-installer status INVENTORY (which members see which leader); etcd-installer doctor INVENTORY (network between the members, clocks)"),
		rule("EtcdFrequentLeaderChanges", "warning", fmt.Sprintf(`increase(etcd_server_leader_changes_seen_total{%s}[1h]) >= %d`, sel, LeaderChangesIn1h), "5m",
			"etcd member {{ $labels.instance }} saw {{ $value }} leader changes in the last hour",
			"slow disks or a lossy network between the members: etcd-installer doctor INVENTORY; raise cluster.heartbeat_interval_ms and election_timeout_ms for a high-latency network, then etcd-installer apply INVENTORY"),
		rule("EtcdSlowFsync", "warning", fmt.Sprintf(`histogram_quantile(0.99, sum by (instance, le) (rate(etcd_disk_wal_fsync_duration_seconds_bucket{%s}[5m]))) > %g`, sel, FsyncP99Seconds), "10m",
			"etcd member {{ $labels.instance }}: WAL fsync p99 {{ $value | humanizeDuration }} (etcd wants under 10ms)",
			"the disk is too slow for etcd (or shared with a busy neighbour): move the data dir to an SSD of its own; etcd-installer doctor INVENTORY measures the disk"),
		rule("EtcdSlowCommit", "warning", fmt.Sprintf(`histogram_quantile(0.99, sum by (instance, le) (rate(etcd_disk_backend_commit_duration_seconds_bucket{%s}[5m]))) > %g`, sel, CommitP99Seconds), "10m",
			"etcd member {{ $labels.instance }}: backend commit p99 {{ $value | humanizeDuration }} (etcd wants under 25ms)",
			"the disk is too slow for etcd, or the backend is large and fragmented: etcd-installer maintenance INVENTORY defragments"),
		rule("EtcdDatabaseNearQuota", "warning", fmt.Sprintf(`etcd_mvcc_db_total_size_in_bytes{%s} / %s{%s} > %g`, sel, metricQuota, sel, QuotaWarnShare), "10m",
			fmt.Sprintf("etcd member {{ $labels.instance }}: its backend is {{ $value | humanizePercentage }} of its quota (warned over %d%%; the inventory says %s)", int(QuotaWarnShare*100), humanQuota(quota)),
			"etcd-installer maintenance INVENTORY (defragments: free pages count against the quota); if the data itself is that large, raise cluster.quota_backend and etcd-installer apply INVENTORY"),
		rule("EtcdDatabaseFull", "critical", fmt.Sprintf(`etcd_mvcc_db_total_size_in_bytes{%s} / %s{%s} > %g`, sel, metricQuota, sel, QuotaCritShare), "1m",
			fmt.Sprintf("etcd member {{ $labels.instance }}: its backend is {{ $value | humanizePercentage }} of its quota: NOSPACE is near (critical over %d%%)", int(QuotaCritShare*100)),
			"etcd-installer maintenance INVENTORY now; then delete what is not needed or raise cluster.quota_backend and etcd-installer apply INVENTORY"),
		rule("EtcdSpaceAlarm", "critical", fmt.Sprintf(`max by (alarm_type) (%s{%s, alarm_type=~"NOSPACE|CORRUPT"}) > 0`, metricAlarms, sel), "",
			"cluster "+inv.Cluster.Name+": alarm {{ $labels.alarm_type }} is raised on {{ $value }} member(s) (NOSPACE: the cluster refuses writes)",
			"NOSPACE: etcd-installer maintenance INVENTORY (compacts, defragments, disarms when that freed enough); CORRUPT: etcdctl endpoint hashkv --cluster finds the member whose hash differs, then etcd-installer member replace INVENTORY NAME"),
		rule("EtcdCertificateExpiresIn30Days", "warning", fmt.Sprintf(`%s{%s} - time() < %d * 86400`, metricCertExpiry, sel, CertWarnDays), "1h",
			certSummary, certRunbook),
		rule("EtcdCertificateExpiresIn7Days", "critical", fmt.Sprintf(`%s{%s} - time() < %d * 86400`, metricCertExpiry, sel, CertCritDays), "10m",
			certSummary, certRunbook+"; today"),
		// Unary calls only: a watch or lease stream ends Unavailable or
		// Canceled whenever its client goes away. And only where requests
		// are frequent enough for a share to mean something.
		rule("EtcdHighGRPCErrorRate", "warning", fmt.Sprintf(`(sum by (instance) (rate(grpc_server_handled_total{%s, grpc_type="unary", grpc_code=~"Unknown|FailedPrecondition|ResourceExhausted|Internal|Unavailable|DataLoss|DeadlineExceeded"}[5m])) / sum by (instance) (rate(grpc_server_handled_total{%s, grpc_type="unary"}[5m])) > %g) and on(instance) sum by (instance) (rate(grpc_server_handled_total{%s, grpc_type="unary"}[5m])) > 1`, sel, sel, GRPCErrorShare, sel), "10m",
			"etcd member {{ $labels.instance }}: {{ $value | humanizePercentage }} of its unary gRPC requests fail",
			"etcd-installer status INVENTORY (leader, alarms); the member's journal (journalctl -u etcd) names the failing requests"),
		// Its metrics are served once etcd has started: what is seen is a
		// member waiting for its peers (quorum) to serve.
		rule("EtcdMemberNotServing", "warning", fmt.Sprintf(`%s{%s, phase!="serving"} == 1`, metricPhase, sel), "5m",
			"etcd member {{ $labels.instance }} has been {{ $labels.phase }} for 5 minutes (its systemd STATUS says for whom it waits)",
			"systemctl status etcd on the host; etcd-installer doctor INVENTORY"),
	}
	if n > 1 {
		// A cluster of one is always one failure from losing quorum. A
		// planned restart (an upgrade, a maintenance) lasts seconds: 5m.
		rules = append(rules[:2], append([]Rule{
			rule("EtcdQuorumAtRisk", "critical", fmt.Sprintf(`%s < %d`, up, quorum+1), "5m",
				fmt.Sprintf("cluster %s: {{ $value }} of %d members answer; one more failure loses quorum (%d)", inv.Cluster.Name, n, quorum),
				"bring the members back before anything else (etcd-installer status INVENTORY; etcd-installer doctor INVENTORY)")}, rules[2:]...)...)
	}
	if inv.Backup.Scheduled() {
		limit := BackupAlertAfter(inv.Backup)
		backup := fmt.Sprintf(`%s{%s}`, metricBackupTimestamp, sel)
		// The newest backup any member took in twice the window (the host
		// that took it may be down now); none at all only counts once
		// this Prometheus has watched the cluster for the whole window.
		rules = append(rules, rule("EtcdBackupTooOld", "warning",
			fmt.Sprintf(`(time() - max(max_over_time(%s[%s])) > %d) or (absent_over_time(%s[%s]) and on() count(up{%s} offset %s) > 0)`,
				backup, promDuration(2*limit), int64(limit.Seconds()), backup, promDuration(limit), sel, promDuration(limit)), "10m",
			fmt.Sprintf("cluster %s: no verified backup in %s (schedule %q)", inv.Cluster.Name, promDuration(limit), inv.Backup.Schedule),
			"systemctl status etcd-backup.service on the members (the leader's host takes them); etcd-installer backup list INVENTORY; a run by hand: systemctl start etcd-backup.service"))
	}
	return rules
}

// Names of the appliance's metrics (node's, repeated: render does not
// import the server; a test pins them together).
const (
	metricCertExpiry      = "etcd_appliance_certificate_expiry_timestamp_seconds"
	metricPhase           = "etcd_appliance_phase"
	metricBackupTimestamp = "etcd_appliance_backup_last_success_timestamp_seconds"
	metricQuota           = "etcd_appliance_quota_backend_bytes"
	metricAlarms          = "etcd_appliance_alarms"
)

// The certificate alerts' texts: an expired one says so, and the CA's
// runbook differs (certs renew keeps the CA, and etcd reads the CAs it
// trusts only at start).
const (
	certSummary = `etcd member {{ $labels.instance }}: the {{ $labels.role }} certificate {{ $labels.file }} ` +
		`{{ if lt $value 0.0 }}has expired{{ else }}expires in {{ $value | humanizeDuration }}{{ end }}`
	certRunbook = `{{ if or (eq $labels.role "client_ca") (eq $labels.role "peer_ca") }}` +
		`the cluster CA itself: certs renew keeps it, so issue a new CA and certificates (etcd-installer certs INVENTORY with certs/ca.* moved aside), ` +
		`trust both CAs during the change, apply, and restart the members one by one (etcd reads the CAs it trusts at start)` +
		`{{ else }}etcd-installer certs renew INVENTORY, then etcd-installer apply INVENTORY (no restart: etcd reads its certificate per handshake){{ end }}`
)

func humanQuota(b int64) string {
	switch {
	case b%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", b>>30)
	case b%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", b>>20)
	}
	return fmt.Sprintf("%d bytes", b)
}

// promDuration writes d as Prometheus does (1h, 2d, 30m).
func promDuration(d time.Duration) string {
	switch {
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

// alerts renders the cluster's AlertsFileName.
func (c *clusterFiles) alerts() error {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# Prometheus alerting rules for etcd cluster %s, rendered by etcd-installer from its inventory\n"+
		"# (thresholds from its %d members, its quota and its backup schedule). prometheus.yml names this file\n"+
		"# in rule_files; with your own configuration: rule_files: [%s]. Check: promtool check rules %s\n",
		comment(c.inv.Cluster.Name), len(c.inv.Members), AlertsFileName(c.inv.Cluster.Name), AlertsFileName(c.inv.Cluster.Name))
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(ruleFile{Groups: []ruleGroup{{Name: "etcd-" + c.inv.Cluster.Name, Rules: Alerts(c.inv)}}}); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	c.out = append(c.out, ClusterFile{Name: AlertsFileName(c.inv.Cluster.Name), Mode: fsMode(0o644), Data: buf.Bytes()})
	return nil
}
