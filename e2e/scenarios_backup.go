package e2e

import (
	"fmt"
	"strings"
	"time"

	"github.com/etcd-appliance/appliance/e2e/testbed"
)

// Scenarios of the cluster suite: backups the appliance takes by itself.

// scheduledBackups is the step "scheduled backups: [backup] in the
// inventory, apply; the timer fires every 10 s, the leader alone backs up,
// each verified, the retention keeps 2; backup list; the metric; schedule
// removed: timers stopped".
func (c *ClusterTest) scheduledBackups() error {
	ctx := c.Ctx
	orig, err := c.Control.ReadFile(inventoryPath[1:])
	if err != nil {
		return err
	}
	// A short calendar stands in for "hourly": the same timer, sooner.
	with := string(orig) + "\n[backup]\nschedule = \"*:*:0/10\"\nkeep_last = 2\n"
	if err := c.Control.WriteFile(inventoryPath[1:], []byte(with), 0o644); err != nil {
		return err
	}
	if out, err := c.ctl("etcd-installer", "apply", inventoryPath); err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	l, err := c.leader()
	if err != nil {
		return err
	}
	// Three verified backups on the leader: the retention has then run on
	// more than it keeps.
	since := time.Now()
	var runs int
	if err := Eventually(ctx, 90*time.Second, func() error {
		out, _ := l.Exec(ctx, "journalctl", "--unit", "etcd-backup.service", "--since", "@"+fmt.Sprint(since.Unix()-30), "--no-pager", "--output", "cat")
		runs = strings.Count(out, "verified in")
		if runs < 3 {
			return fmt.Errorf("%d verified backups on the leader %s so far", runs, l.Name)
		}
		return nil
	}); err != nil {
		return err
	}
	for _, m := range c.Members {
		out, _ := m.Exec(ctx, "journalctl", "--unit", "etcd-backup.service", "--no-pager", "--output", "cat")
		if m == l {
			for _, line := range strings.Split(out, "\n") {
				if strings.Contains(line, "verified in") {
					c.R.Logf("%s: %s", m.Name, strings.TrimSpace(line))
				}
			}
			continue
		}
		if !strings.Contains(out, "skipped: "+m.Name+" is not the leader; "+l.Name+" is, and takes the backup") || strings.Contains(out, "verified in") {
			return fmt.Errorf("%s (not the leader) did not skip:\n%s", m.Name, out)
		}
		if state, _ := m.Exec(ctx, "systemctl", "is-failed", "etcd-backup.service"); strings.TrimSpace(state) == "failed" {
			return fmt.Errorf("etcd-backup.service failed on %s", m.Name)
		}
	}
	list, err := c.ctl("etcd-installer", "backup", "list", inventoryPath)
	if err != nil {
		return fmt.Errorf("%w\n%s", err, list)
	}
	c.R.Logf("backup list:\n%s", strings.TrimSpace(list))
	var good int
	var newest string
	for _, line := range strings.Split(list, "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[0] == l.Name && strings.HasPrefix(f[1], "e2e-") && !strings.Contains(line, "no: ") {
			good++
			newest = f[1]
		}
	}
	if good != 2 {
		return fmt.Errorf("backup list shows %d verified backups on %s after %d runs with keep_last = 2", good, l.Name, runs)
	}
	// restore takes one of them by name: copied from the leader over SSH
	// and checked (a dry run: the restore itself is the next step's).
	out, err := c.ctl("etcd-installer", "restore", inventoryPath, newest, "--dry-run")
	if err != nil || !strings.Contains(out, "restoring the scheduled backup "+newest+", copied from "+l.Name) {
		return fmt.Errorf("restore by name: %v\n%s", err, out)
	}
	if out, err := l.Exec(ctx, "stat", "-c", "%a %U:%G", "/var/lib/etcd-backup"); err != nil || strings.TrimSpace(out) != "700 etcd:etcd" {
		return fmt.Errorf("/var/lib/etcd-backup on %s: %q %v", l.Name, out, err)
	}
	// The image has python3 (rpmlint's), not curl.
	metrics, err := l.Exec(ctx, "python3", "-c", `import ssl, sys, urllib.request
c = ssl.create_default_context(cafile="/etc/etcd/pki/ca.crt")
c.load_cert_chain("/etc/etcd/pki/client.crt", "/etc/etcd/pki/client.key")
sys.stdout.write(urllib.request.urlopen("https://127.0.0.1:2379/metrics", context=c, timeout=10).read().decode())`)
	if err != nil {
		return err
	}
	var seen []string
	for _, line := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(line, "etcd_appliance_backup_last_success_") {
			seen = append(seen, line)
		}
	}
	if len(seen) != 3 {
		return fmt.Errorf("the leader exports %d backup metrics, want 3: %q", len(seen), seen)
	}
	c.R.Logf("%s /metrics: %s", l.Name, strings.Join(seen, "; "))

	// The schedule removed from the inventory: apply stops the timers.
	if err := c.Control.WriteFile(inventoryPath[1:], orig, 0o644); err != nil {
		return err
	}
	if out, err := c.ctl("etcd-installer", "apply", inventoryPath); err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	return parallel(c.Members, func(m *testbed.Node) error {
		out, _ := m.Exec(ctx, "systemctl", "is-enabled", "etcd-backup.timer")
		if strings.TrimSpace(out) != "disabled" {
			return fmt.Errorf("%s: etcd-backup.timer is %q after the schedule was removed", m.Name, strings.TrimSpace(out))
		}
		return nil
	})
}
