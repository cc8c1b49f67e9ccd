package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/etcd-appliance/appliance/e2e/testbed"
	"github.com/etcd-appliance/appliance/workflow/maintenance"
)

var defragmentedRE = regexp.MustCompile(`msg=defragmented .*member=(\S+) took=(\S+)`)

// maintenance: the [maintenance] timer under a writer of its own (the
// compaction it does discards the history the checked writer's final
// check reconstructs, so it runs after that writer has been checked).
func (c *ClusterTest) maintenance() error {
	ctx := c.Ctx
	orig, err := c.Control.ReadFile(inventoryPath[1:])
	if err != nil {
		return err
	}
	// Its clients have every endpoint: a member restarted to be
	// defragmented at start is out of service longer than a write's 10 s
	// deadline (its defragmentation, then its start), which a client of
	// that member alone would count as failed writes. Its history is not
	// checked: the NOSPACE recovery compacts it away.
	app, err := c.startAppWriter("writer-maint")
	if err != nil {
		return err
	}
	defer app.stop()
	name, stats := app.name, app.stats
	l, err := c.leader()
	if err != nil {
		return err
	}
	f := c.others(l)[0]
	const dropIn = "/etc/systemd/system/etcd.service.d/90-e2e-watchdog.conf"
	// The quota first; [maintenance] once the backends are fragmented
	// (its timers act at once on any member past the threshold, and
	// would restart members under the compaction below).
	withQuota := strings.Replace(string(orig), "[cluster]\n", "[cluster]\nquota_backend = \"768MiB\"\n", 1)
	if err := c.Control.WriteFile(inventoryPath[1:], []byte(withQuota), 0o644); err != nil {
		return err
	}
	// The quota restarts the members one at a time.
	if out, err := c.ctl("etcd-installer", "apply", inventoryPath); err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	show := func() (string, error) {
		out, err := f.Exec(ctx, "systemctl", "show", "etcd", "--property=WatchdogUSec,NRestarts,MainPID")
		return strings.Join(strings.Fields(out), " "), err
	}

	// 420 MiB written, 100 MiB of it deleted and compacted away: every
	// backend is then about a quarter free pages.
	fill := func(args ...string) (string, error) {
		return c.ctl(append(append([]string{"/usr/local/bin/e2e-writer", "fill", "--endpoints", c.endpoints(), "--prefix", "e2e-fill/"}, args...), operatorTLS()...)...)
	}
	out, err := fill("--count", "420")
	if err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	c.R.Logf("%s", strings.TrimSpace(out))
	etcdctl := func(args ...string) (string, error) {
		return c.ctl(append(append([]string{"etcdctl", "--endpoints", c.endpoints()}, operatorTLS()...), args...)...)
	}
	if out, err := etcdctl("del", "--range", "e2e-fill/000000", "e2e-fill/000100"); err != nil || strings.TrimSpace(out) != "100" {
		return fmt.Errorf("deleting 100 values: %q %v", out, err)
	}
	out, err = etcdctl("put", "e2e-fill-mark", "x", "-w", "json")
	var put struct {
		Header struct {
			Revision int64 `json:"revision"`
		} `json:"header"`
	}
	if err != nil || json.Unmarshal([]byte(out), &put) != nil {
		return fmt.Errorf("put: %q %v", out, err)
	}
	if out, err := etcdctl("compact", fmt.Sprint(put.Header.Revision), "--physical"); err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	st0 := stats()
	pids := map[string]string{}
	for _, m := range c.Members {
		out, _ := m.Exec(ctx, "systemctl", "show", "etcd", "--property=MainPID", "--value")
		pids[m.Name] = strings.TrimSpace(out)
	}
	compacted := time.Now()
	with := withQuota + "\n[maintenance]\nschedule = \"*:*:0/20\"\ndefrag_free_percent = 20\ndefrag_min_free = \"32MiB\"\n"
	if err := c.Control.WriteFile(inventoryPath[1:], []byte(with), 0o644); err != nil {
		return err
	}
	out, err = c.ctl("etcd-installer", "apply", inventoryPath)
	if err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	// Adding [maintenance] restarts no member: it is a timer and its
	// settings; the defragment-at-start threshold is the run's alone.
	if strings.Contains(out, "rolling restart") {
		return fmt.Errorf("adding [maintenance] restarted members:\n%s", out)
	}
	for _, m := range c.Members {
		if out, _ := m.Exec(ctx, "systemctl", "is-active", "etcd-maintenance.timer"); strings.TrimSpace(out) != "active" {
			return fmt.Errorf("%s: etcd-maintenance.timer is %q after apply", m.Name, strings.TrimSpace(out))
		}
		if conf, _ := m.ReadFile("etc/etcd/etcd.conf"); strings.Contains(string(conf), "DEFRAG") {
			return fmt.Errorf("%s: etcd.conf has a defragmentation threshold: every restart would defragment", m.Name)
		}
	}

	// The leader now: the followers' restarts do not move leadership,
	// and the leader's own comes last.
	l, err = c.leader()
	if err != nil {
		return err
	}

	// The timers fire every 20 s, on every host at the same moment; each
	// host restarts its own member (etcd defragments at start), one at a
	// time under the maintenance lock, the leader's host after the
	// followers'.
	took := map[string]string{}
	at := map[string]float64{}
	journal := func(m *testbed.Node, output string) string {
		out, _ := m.Exec(ctx, "journalctl", "--unit", "etcd-maintenance.service", "--since", "@"+fmt.Sprint(compacted.Unix()), "--no-pager", "--output", output)
		return out
	}
	if err := Eventually(ctx, 4*time.Minute, func() error {
		for _, m := range c.Members {
			for _, line := range strings.Split(journal(m, "short-unix"), "\n") {
				if mm := defragmentedRE.FindStringSubmatch(line); mm != nil {
					var t float64
					if _, err := fmt.Sscan(line, &t); err != nil {
						return fmt.Errorf("%s: a journal line without its time: %q", m.Name, line)
					}
					took[mm[1]], at[mm[1]] = mm[2], t
				}
			}
		}
		if len(took) < 3 {
			return fmt.Errorf("defragmented so far: %v", took)
		}
		return nil
	}); err != nil {
		return err
	}
	c.R.Logf("each host restarted its member, defragmented at start (took, lock waits included): %v", took)
	for _, o := range c.others(l) {
		if at[o.Name] >= at[l.Name] {
			return fmt.Errorf("the leader %s was defragmented (at %.3f) before its follower %s (at %.3f): followers first\n%s", l.Name, at[l.Name], o.Name, at[o.Name], journal(l, "cat"))
		}
	}
	for _, m := range c.Members {
		out, _ := m.Exec(ctx, "systemctl", "show", "etcd", "--property=MainPID", "--value")
		if strings.TrimSpace(out) == pids[m.Name] {
			return fmt.Errorf("%s's etcd was not restarted (MainPID %s)", m.Name, pids[m.Name])
		}
		// A failed run: the command's error, and systemd's word on it.
		if j := journal(m, "cat"); strings.Contains(j, "level=error") || strings.Contains(j, "etcd-installer: ") || strings.Contains(j, "Failed with result") {
			return fmt.Errorf("%s: etcd-maintenance.service failed:\n%s", m.Name, j)
		}
		// The threshold was for that one restart only.
		if out, err := m.Exec(ctx, "test", "-e", "/run/etcd-maintenance/defragment.env"); err == nil {
			return fmt.Errorf("%s: /run/etcd-maintenance/defragment.env outlived the run %s", m.Name, out)
		}
	}
	st1 := stats()
	if st1.Failed != st0.Failed {
		return fmt.Errorf("%d writes failed during the scheduled defragmentation (last: %s)", st1.Failed-st0.Failed, st1.LastErr)
	}
	c.R.Logf("during the scheduled defragmentation: %d writes acknowledged, 0 failed, %d transient errors retried", st1.Acked-st0.Acked, st1.Retried-st0.Retried)

	// Online, by hand (`maintenance --all`: the Defragment API, as the
	// NOSPACE recovery does it): f's 1 s watchdog through a longer
	// defragmentation; leadership never on the member being defragmented.
	// One member's watchdog at 1 s (pinged every 333 ms), for this part
	// only: its defragmentation takes longer than that. (Set from the
	// start, it once had systemd kill that member under the physical
	// compaction above, whose batches hold the backend for more than a
	// second on this shared disk: the liveness read knows defragmentation,
	// not compaction; the unit's 30 s would take a batch of 15 s.)
	if err := f.WriteFile(dropIn[1:], []byte("[Service]\nWatchdogSec=1s\n"), 0o644); err != nil {
		return err
	}
	if out, err := f.Exec(ctx, "systemctl", "daemon-reload"); err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	if out, err := f.Exec(ctx, "etcd-installer", "safe-restart", "--reason", "e2e: a 1 s watchdog"); err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	before, err := show()
	if err != nil || !strings.Contains(before, "WatchdogUSec=1s") {
		return fmt.Errorf("%s: %q %v", f.Name, before, err)
	}
	online := time.Now()
	out, err = c.ctl("etcd-installer", "maintenance", inventoryPath, "--all")
	if err != nil {
		return fmt.Errorf("maintenance --all: %w\n%s", err, out)
	}
	c.R.Logf("maintenance --all:\n%s", strings.TrimSpace(out))
	mm := regexp.MustCompile(`defragmented ` + regexp.QuoteMeta(f.Name) + `: .* in ([0-9][0-9.a-zµ]*)`).FindStringSubmatch(out)
	if mm == nil {
		return fmt.Errorf("maintenance --all did not defragment %s:\n%s", f.Name, out)
	}
	if d, err := time.ParseDuration(mm[1]); err != nil || d <= time.Second {
		return fmt.Errorf("%s's online defragmentation took %s, not longer than its 1 s watchdog: the step proves nothing about the watchdog; fill more", f.Name, mm[1])
	}
	after, err := show()
	if err != nil || after != before {
		j, _ := f.Sh(ctx, "journalctl --unit etcd.service --since @"+fmt.Sprint(online.Unix())+" --no-pager --output short-precise | grep -iE 'watchdog|main process|defragment|became|status=' | tail -40")
		return fmt.Errorf("%s through a %s defragmentation under a 1 s watchdog: %q, before it %q\n%s", f.Name, mm[1], after, before, j)
	}
	for _, m := range c.Members {
		out, _ := m.Exec(ctx, "journalctl", "--unit", "etcd.service", "--since", "@"+fmt.Sprint(online.Unix()-5), "--no-pager", "--output", "cat")
		if strings.Contains(out, "Watchdog timeout") {
			return fmt.Errorf("%s: systemd's watchdog fired:\n%s", m.Name, out)
		}
		if line := maintenance.LedWhileDefragmenting(out); line != "" {
			return fmt.Errorf("%s led while it was defragmented: %s", m.Name, line)
		}
	}
	st1b := stats()
	if st1b.Failed != st1.Failed {
		return fmt.Errorf("%d writes failed during the online defragmentation (last: %s)", st1b.Failed-st1.Failed, st1b.LastErr)
	}
	c.R.Logf("online: %s kept its process through a %s defragmentation (%s); %d writes acknowledged, 0 failed", f.Name, mm[1], after, st1b.Acked-st1.Acked)
	st1 = st1b

	// NOSPACE: filled up to the quota, then the fill deleted; the next
	// tick compacts, defragments and disarms.
	out, err = fill("--until-full", "--size", "1048576")
	if err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	c.R.Logf("%s", strings.TrimSpace(out))
	if out, err := etcdctl("alarm", "list"); err != nil || !strings.Contains(out, "NOSPACE") {
		return fmt.Errorf("no NOSPACE alarm after the fill: %q %v", out, err)
	}
	raised := time.Now()
	if out, err := etcdctl("del", "--prefix", "e2e-fill"); err != nil {
		return fmt.Errorf("deleting the fill under NOSPACE: %v\n%s", err, out)
	}
	if err := Eventually(ctx, 3*time.Minute, func() error {
		if out, err := etcdctl("alarm", "list"); err != nil || strings.TrimSpace(out) != "" {
			return fmt.Errorf("alarms: %q %v", out, err)
		}
		return nil
	}); err != nil {
		return err
	}
	var recovered string
	for _, m := range c.Members {
		out, _ := m.Exec(ctx, "journalctl", "--unit", "etcd-maintenance.service", "--since", "@"+fmt.Sprint(raised.Unix()), "--no-pager", "--output", "cat")
		if strings.Contains(out, "alarm NOSPACE disarmed") {
			recovered = m.Name
		}
	}
	if recovered == "" {
		return errors.New("the alarm is gone, but no member's etcd-maintenance.service says it disarmed it")
	}
	c.R.Logf("NOSPACE cleared by %s's timer %s after the fill was deleted", recovered, time.Since(raised).Round(time.Second))
	cleared := stats()
	if err := Eventually(ctx, time.Minute, func() error {
		if st := stats(); st.Acked < cleared.Acked+20 {
			return fmt.Errorf("writes stalled after the alarm cleared: %d acknowledged since (last error: %s)", st.Acked-cleared.Acked, st.LastErr)
		}
		return nil
	}); err != nil {
		return err
	}
	st2 := stats()
	c.R.Logf("writer %s: %d writes acknowledged, %d failed, all while NOSPACE was raised", name, st2.Acked, st2.Failed-st1.Failed)

	// Back as it was: the drop-in gone, the inventory's quota and
	// schedule removed (a rolling restart; the timers stop).
	if out, err := f.Exec(ctx, "sh", "-c", "rm -f "+dropIn+" && systemctl daemon-reload"); err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	if err := c.Control.WriteFile(inventoryPath[1:], orig, 0o644); err != nil {
		return err
	}
	if out, err := c.ctl("etcd-installer", "apply", inventoryPath); err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	return parallel(c.Members, func(m *testbed.Node) error {
		out, _ := m.Exec(ctx, "systemctl", "is-enabled", "etcd-maintenance.timer")
		if strings.TrimSpace(out) != "disabled" {
			return fmt.Errorf("%s: etcd-maintenance.timer is %q after the schedule was removed", m.Name, strings.TrimSpace(out))
		}
		return nil
	})
}
