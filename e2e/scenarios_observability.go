package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/etcd-appliance/appliance/inventory"
	"github.com/etcd-appliance/appliance/node"
	"github.com/etcd-appliance/appliance/render"
)

// promGet asks the Prometheus on control (127.0.0.1:9090 there) and
// decodes its answer's data into v.
func (c *ClusterTest) promGet(path string, v any) error {
	const get = "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())"
	out, err := c.ctl("python3", "-c", get, "http://127.0.0.1:9090"+path)
	if err != nil {
		return fmt.Errorf("GET %s: %w\n%s", path, err, out)
	}
	var r struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
		Error  string          `json:"error"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.Status != "success" {
		return fmt.Errorf("GET %s: %v %s: %.300s", path, err, r.Error, out)
	}
	return json.Unmarshal(r.Data, v)
}

type promAlert struct {
	Labels map[string]string `json:"labels"`
	State  string            `json:"state"`
}

func (c *ClusterTest) alerts(name string) ([]promAlert, error) {
	var d struct {
		Alerts []promAlert `json:"alerts"`
	}
	if err := c.promGet("/api/v1/alerts", &d); err != nil {
		return nil, err
	}
	var out []promAlert
	for _, a := range d.Alerts {
		if a.Labels["alertname"] == name {
			out = append(out, a)
		}
	}
	return out, nil
}

var tlsPathRE = regexp.MustCompile(`(?m)^\s+(ca_file|cert_file|key_file): (\S+)$`)

// observability: Debian's Prometheus on control with the rendered
// configuration and rules, over the real network with TLS; the
// dashboard's queries against it; a member stopped: the member-down
// alert pending, then firing after its for: and notified through
// Alertmanager, resolved once it is back (and that notified too).
func (c *ClusterTest) observability() error {
	ctx := c.Ctx
	text, err := c.Control.ReadFile(inventoryPath[1:])
	if err != nil {
		return err
	}
	inv, err := inventory.Parse(inventoryPath, text)
	if err != nil {
		return err
	}
	if out, err := c.ctl("etcd-installer", "render", inventoryPath, "--out", "/root/render"); err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	conf, err := c.Control.ReadFile("root/render/_cluster/prometheus.yml")
	if err != nil {
		return err
	}
	// The rendered file names the CA and client certificate under the
	// inventory's paths, for a Prometheus host to hold them there; control
	// is an etcd host itself (a proxy's certificates are there), so its
	// Prometheus reads the operator's where they are.
	conf = tlsPathRE.ReplaceAllFunc(conf, func(line []byte) []byte {
		m := tlsPathRE.FindSubmatch(line)
		src := map[string]string{"ca_file": "ca.crt", "cert_file": "client.crt", "key_file": "client.key"}[string(m[1])]
		return []byte(strings.Replace(string(line), string(m[2]), operatorCerts+"/"+src, 1))
	})
	if n := strings.Count(string(conf), operatorCerts); inv.TLSEnabled() && n != 3 {
		return fmt.Errorf("the rendered prometheus.yml names %d TLS files, want 3:\n%s", n, conf)
	}
	// Faster than production: scrapes and rule evaluations every 2 s.
	global := "global:\n  scrape_interval: 2s\n  evaluation_interval: 2s\n"
	// Alerts go to an Alertmanager, as an operator's do (docs/observability.md).
	alerting := "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [\"127.0.0.1:9093\"]\n"
	if strings.Contains(string(conf), "\nalerting:") {
		return fmt.Errorf("the rendered prometheus.yml has an alerting section of its own:\n%s", conf)
	}
	if err := c.Control.WriteFile("root/render/_cluster/prometheus-e2e.yml", []byte(global+string(conf)+alerting), 0o644); err != nil {
		return err
	}
	stopAM, err := c.alertmanager()
	if err != nil {
		return err
	}
	defer stopAM()
	if out, err := c.ctl("promtool", "check", "config", "/root/render/_cluster/prometheus-e2e.yml"); err != nil {
		return fmt.Errorf("promtool check config: %w\n%s", err, out)
	}
	// A run before this one may have left its unit failed or its data
	// (whose alert state Prometheus would restore).
	_, _ = c.ctl("systemctl", "reset-failed", "e2e-prometheus")
	if out, err := c.ctl("rm", "-rf", "/root/prometheus-data"); err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	if out, err := c.ctl("systemd-run", "--unit", "e2e-prometheus", "/usr/bin/prometheus",
		"--config.file=/root/render/_cluster/prometheus-e2e.yml", "--storage.tsdb.path=/root/prometheus-data",
		"--web.listen-address=127.0.0.1:9090"); err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	defer c.ctl("systemctl", "stop", "e2e-prometheus")

	// Every member scraped, with TLS.
	if err := Eventually(ctx, time.Minute, func() error {
		var d struct {
			ActiveTargets []struct {
				ScrapeURL string `json:"scrapeUrl"`
				Health    string `json:"health"`
				LastError string `json:"lastError"`
			} `json:"activeTargets"`
		}
		if err := c.promGet("/api/v1/targets", &d); err != nil {
			return err
		}
		up := 0
		var bad []string
		for _, t := range d.ActiveTargets {
			if t.Health == "up" {
				up++
			} else {
				bad = append(bad, t.ScrapeURL+": "+t.Health+" "+t.LastError)
			}
		}
		if up != len(c.Members) {
			return fmt.Errorf("%d of %d targets up: %v", up, len(c.Members), bad)
		}
		return nil
	}); err != nil {
		return err
	}
	type sample struct {
		Metric map[string]string `json:"metric"`
		Value  [2]any            `json:"value"`
	}
	query := func(q string) ([]sample, error) {
		var d struct {
			Result []sample `json:"result"`
		}
		err := c.promGet("/api/v1/query?query="+url.QueryEscape(q), &d)
		return d.Result, err
	}
	// Writes for the latency panels (a quantile of no observations is
	// NaN: no line), then enough samples for a rate over 1m.
	for i := range 30 {
		if out, err := c.ctl(append(append([]string{"etcdctl", "--endpoints", c.endpoints()}, operatorTLS()...), "put", fmt.Sprintf("e2e-obs/%02d", i), "x")...); err != nil {
			return fmt.Errorf("%w\n%s", err, out)
		}
	}
	if err := Eventually(ctx, time.Minute, func() error {
		r, err := query(`count_over_time(up{cluster="etcd-` + inv.Cluster.Name + `"}[1m])`)
		if err != nil {
			return err
		}
		for _, s := range r {
			v, _ := s.Value[1].(string)
			if n, err := strconv.ParseFloat(v, 64); err != nil || n < 10 {
				return fmt.Errorf("%s: %s samples in the last minute", s.Metric["instance"], v)
			}
		}
		if len(r) != len(c.Members) {
			return fmt.Errorf("%d series", len(r))
		}
		return nil
	}); err != nil {
		return err
	}
	scraped, err := query(`scrape_samples_scraped{cluster="etcd-` + inv.Cluster.Name + `"}`)
	if err != nil {
		return err
	}
	var sizes []string
	for _, s := range scraped {
		sizes = append(sizes, fmt.Sprintf("%s %v", s.Metric["instance"], s.Value[1]))
	}
	sort.Strings(sizes)
	c.R.Logf("samples per scrape: %s", strings.Join(sizes, ", "))

	// The dashboard: every metric its queries select is one the cluster
	// exports (asked from this Prometheus), and every panel has data.
	var names []string
	if err := c.promGet("/api/v1/label/__name__/values", &names); err != nil {
		return err
	}
	have := map[string]bool{}
	for _, n := range names {
		have[n] = true
	}
	later := map[string]bool{node.MetricBackupTimestamp: !inv.Backup.Scheduled()}
	var problems []string
	qs := render.DashboardQueries(inv)
	for _, q := range qs {
		for _, n := range render.MetricNames(q.Expr) {
			if !have[n] && !later[n] {
				problems = append(problems, fmt.Sprintf("panel %q: %s is not exported", q.Panel, n))
			}
		}
		r, err := query(strings.ReplaceAll(q.Expr, "$__rate_interval", "1m"))
		if err != nil {
			return err
		}
		numbers := 0
		for _, smp := range r {
			if v, _ := smp.Value[1].(string); v != "NaN" {
				numbers++
			}
		}
		if numbers == 0 {
			problems = append(problems, fmt.Sprintf("panel %q: no data (%d series, none a number) for %s", q.Panel, len(r), q.Expr))
		}
	}
	for _, r := range render.Alerts(inv) {
		for _, n := range render.MetricNames(r.Expr) {
			if !have[n] && !later[n] {
				problems = append(problems, fmt.Sprintf("alert %s: %s is not exported", r.Alert, n))
			}
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "\n"))
	}
	c.R.Logf("dashboard: %d queries, each with data; every metric they and the alerts select is exported", len(qs))

	// Nothing fires or is pending on a healthy cluster, but what this
	// machine's disk earns: the test hosts share one disk, and the steps
	// before this one wrote and defragmented hundreds of MiB, so a WAL
	// fsync p99 over 10 ms is a true statement here (logged).
	active, err := query(`ALERTS`)
	if err != nil {
		return err
	}
	for _, a := range active {
		what := a.Metric["alertstate"] + " on a healthy cluster: " + a.Metric["alertname"] + " " + a.Metric["instance"]
		if n := a.Metric["alertname"]; n == "EtcdSlowFsync" || n == "EtcdSlowCommit" {
			c.R.Logf("%s (the test machine's shared disk)", what)
			continue
		}
		problems = append(problems, what)
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "\n"))
	}

	// A follower stopped: EtcdMemberDown pending within a few scrapes,
	// firing once its for: (1m) has passed, resolved once it is back.
	l, err := c.leader()
	if err != nil {
		return err
	}
	f := c.others(l)[0]
	m, _ := inv.Member(f.Name)
	port := m.ClientPort
	if m.MetricsPort != 0 {
		port = m.MetricsPort
	}
	instance := inventory.HostPort(m.Address, port)
	// Timed from the stop's start: the member stops serving before
	// systemctl returns.
	stopped := time.Now()
	if out, err := f.Exec(ctx, "systemctl", "stop", "etcd"); err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	defer f.Exec(ctx, "systemctl", "start", "etcd")
	state := func(name string) (string, error) {
		as, err := c.alerts(name)
		if err != nil {
			return "", err
		}
		for _, a := range as {
			if a.Labels["instance"] == instance || name != "EtcdMemberDown" {
				return a.State, nil
			}
		}
		return "", nil
	}
	var pendingAfter, firingAfter time.Duration
	if err := Eventually(ctx, 30*time.Second, func() error {
		s, err := state("EtcdMemberDown")
		if err != nil || s == "" {
			return fmt.Errorf("EtcdMemberDown for %s: %q %v", instance, s, err)
		}
		pendingAfter = time.Since(stopped)
		return nil
	}); err != nil {
		return err
	}
	if err := Eventually(ctx, 2*time.Minute, func() error {
		s, err := state("EtcdMemberDown")
		if err != nil || s != "firing" {
			return fmt.Errorf("EtcdMemberDown for %s: %q %v", instance, s, err)
		}
		firingAfter = time.Since(stopped)
		return nil
	}); err != nil {
		return err
	}
	if firingAfter < time.Minute {
		return fmt.Errorf("EtcdMemberDown fired %s after the stop, before its for: 1m", firingAfter)
	}
	// The operator is told: Alertmanager notifies its receiver, with the
	// runbook.
	var notifiedAfter time.Duration
	if err := Eventually(ctx, time.Minute, func() error {
		n, err := c.notified("EtcdMemberDown", instance, "firing")
		if err != nil {
			return err
		}
		if !strings.Contains(n.Annotations["runbook"], "etcd-installer") || n.Labels["severity"] == "" || n.Labels["cluster"] != "etcd-"+inv.Cluster.Name {
			return fmt.Errorf("the notification lacks its runbook, severity or cluster: %+v", n)
		}
		notifiedAfter = time.Since(stopped)
		return nil
	}); err != nil {
		return err
	}
	// for: 5m, so that a planned restart does not page.
	if s, err := state("EtcdQuorumAtRisk"); err != nil || s != "pending" {
		return fmt.Errorf("with one of three down for a minute, EtcdQuorumAtRisk is %q (%v), want pending", s, err)
	}
	if s, err := state("EtcdNoQuorum"); err != nil || s != "" {
		return fmt.Errorf("with two of three up, EtcdNoQuorum is %q (%v)", s, err)
	}
	if out, err := f.Exec(ctx, "systemctl", "start", "etcd"); err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	started := time.Now()
	var resolvedAfter time.Duration
	if err := Eventually(ctx, time.Minute, func() error {
		for _, name := range []string{"EtcdMemberDown", "EtcdQuorumAtRisk"} {
			if s, err := state(name); err != nil || s != "" {
				return fmt.Errorf("%s still %q (%v)", name, s, err)
			}
		}
		resolvedAfter = time.Since(started)
		return nil
	}); err != nil {
		return err
	}
	var resolvedNotifiedAfter time.Duration
	if err := Eventually(ctx, time.Minute, func() error {
		if _, err := c.notified("EtcdMemberDown", instance, "resolved"); err != nil {
			return err
		}
		resolvedNotifiedAfter = time.Since(started)
		return nil
	}); err != nil {
		return err
	}
	c.R.Logf("%s stopped: EtcdMemberDown pending after %s, firing after %s (for: 1m), Alertmanager's webhook notified after %s with the runbook, EtcdQuorumAtRisk pending (for: 5m), EtcdNoQuorum quiet; started again: resolved after %s, the resolution notified after %s",
		f.Name, pendingAfter.Round(100*time.Millisecond), firingAfter.Round(100*time.Millisecond), notifiedAfter.Round(100*time.Millisecond),
		resolvedAfter.Round(100*time.Millisecond), resolvedNotifiedAfter.Round(100*time.Millisecond))
	return nil
}

// webhookPath is where the test's webhook receiver on control appends each
// notification Alertmanager posts, one JSON object a line.
const webhookPath = "/root/alert-webhook.jsonl"

// webhookReceiver is a webhook receiver in Python's standard library (the
// test image has python3 and nothing else to serve HTTP with).
const webhookReceiver = `import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open(sys.argv[2], "ab") as f:
            f.write(body.replace(b"\n", b" ") + b"\n")
        self.send_response(200)
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
`

// alertmanagerConf routes every alert to the webhook at once (production
// waits longer to group), resolutions included.
const alertmanagerConf = `route:
  receiver: e2e-webhook
  group_by: [alertname, cluster, instance]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
receivers:
  - name: e2e-webhook
    webhook_configs:
      - url: http://127.0.0.1:9095/
        send_resolved: true
`

// alertmanager starts Debian's Alertmanager and the webhook receiver on
// control, checked by amtool; the function it returns stops both.
func (c *ClusterTest) alertmanager() (stop func(), err error) {
	const conf = "root/render/_cluster/alertmanager-e2e.yml"
	if err := c.Control.WriteFile(conf, []byte(alertmanagerConf), 0o644); err != nil {
		return nil, err
	}
	if err := c.Control.WriteFile("root/webhook.py", []byte(webhookReceiver), 0o644); err != nil {
		return nil, err
	}
	if out, err := c.ctl("amtool", "check-config", "/"+conf); err != nil {
		return nil, fmt.Errorf("amtool check-config: %w\n%s", err, out)
	}
	units := []string{"e2e-alertmanager", "e2e-webhook"}
	for _, u := range units {
		_, _ = c.ctl("systemctl", "reset-failed", u)
	}
	if out, err := c.ctl("rm", "-rf", "/root/alertmanager-data", webhookPath); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, out)
	}
	stop = func() {
		for _, u := range units {
			_, _ = c.ctl("systemctl", "stop", u)
		}
	}
	for _, argv := range [][]string{
		{"systemd-run", "--unit", "e2e-webhook", "/usr/bin/python3", "/root/webhook.py", "9095", webhookPath},
		// No --cluster.listen-address: one Alertmanager, no gossip peers.
		{"systemd-run", "--unit", "e2e-alertmanager", "/usr/bin/prometheus-alertmanager", "--config.file=/" + conf,
			"--storage.path=/root/alertmanager-data", "--web.listen-address=127.0.0.1:9093", "--cluster.listen-address="},
	} {
		if out, err := c.ctl(argv...); err != nil {
			stop()
			return nil, fmt.Errorf("%w\n%s", err, out)
		}
	}
	const ready = "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)"
	if err := Eventually(c.Ctx, 30*time.Second, func() error {
		_, err := c.ctl("python3", "-c", ready, "http://127.0.0.1:9093/-/ready")
		return err
	}); err != nil {
		stop()
		return nil, fmt.Errorf("Alertmanager not ready: %w", err)
	}
	return stop, nil
}

// amAlert is one alert of an Alertmanager webhook notification.
type amAlert struct {
	Status      string            `json:"status"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

// notified finds the alert name for instance in a notification the
// webhook received with that status.
func (c *ClusterTest) notified(name, instance, status string) (amAlert, error) {
	text, err := c.Control.ReadFile(webhookPath[1:])
	if err != nil {
		return amAlert{}, fmt.Errorf("no notification yet: %w", err)
	}
	var seen []string
	for _, line := range strings.Split(strings.TrimSpace(string(text)), "\n") {
		var n struct {
			Alerts []amAlert `json:"alerts"`
		}
		if err := json.Unmarshal([]byte(line), &n); err != nil {
			return amAlert{}, fmt.Errorf("a notification that is not JSON: %w: %.200s", err, line)
		}
		for _, a := range n.Alerts {
			if a.Labels["alertname"] == name && a.Labels["instance"] == instance && a.Status == status {
				return a, nil
			}
			seen = append(seen, a.Labels["alertname"]+" "+a.Labels["instance"]+" "+a.Status)
		}
	}
	return amAlert{}, fmt.Errorf("no %s notification of %s for %s; seen: %v", status, name, instance, seen)
}
