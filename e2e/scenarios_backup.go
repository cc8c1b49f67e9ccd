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
	// The off-host copies go to a user of the control host, over SSH; the
	// operator's known_hosts gets control's rsa key (the members' are
	// ed25519, hashed, and ecdsa: every type a host has is in use).
	const copyDir = "/home/etcdcopy/etcd-e2e"
	if out, err := c.Control.Sh(ctx, "useradd -m etcdcopy && systemctl restart ssh && ssh-keyscan -t rsa "+c.Control.IP+" 2>/dev/null >> /root/.ssh/known_hosts"); err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	// A short calendar stands in for "hourly": the same timer, sooner.
	with := string(orig) + fmt.Sprintf("\n[backup]\nschedule = \"*:*:0/10\"\nkeep_last = 2\ncopy_to = \"etcdcopy@%s\"\ncopy_dir = %q\n", c.Control.IP, copyDir)
	if err := c.Control.WriteFile(inventoryPath[1:], []byte(with), 0o644); err != nil {
		return err
	}
	if out, err := c.ctl("etcd-installer", "apply", inventoryPath); err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	keys, err := c.ctl("etcd-installer", "backup", "keys", inventoryPath)
	if err != nil {
		return fmt.Errorf("backup keys: %v\n%s", err, keys)
	}
	// Each key only from its member's address: the copies below prove
	// the members connect from there.
	for _, m := range c.Members {
		if !strings.Contains(keys, fmt.Sprintf("restrict,from=%q ssh-ed25519 ", m.IP)) {
			return fmt.Errorf("backup keys: no key restricted to %s's address %s:\n%s", m.Name, m.IP, keys)
		}
	}
	if err := c.Control.WriteFile("home/etcdcopy/.ssh/authorized_keys", []byte(keys), 0o600); err != nil {
		return err
	}
	if out, err := c.Control.Sh(ctx, "chown -R etcdcopy:etcdcopy /home/etcdcopy/.ssh && chmod 700 /home/etcdcopy/.ssh"); err != nil {
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
		out, _ := l.Sh(ctx, "journalctl --unit etcd-backup.service --no-pager --output cat | tail -15")
		return fmt.Errorf("%w\n%s", err, out)
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
	// The copies: the leader's newest on control, whole (its sha256 as its
	// metadata says), the retention applied there too.
	if err := Eventually(ctx, 60*time.Second, func() error {
		out, _ := l.Exec(ctx, "journalctl", "--unit", "etcd-backup.service", "--since", "@"+fmt.Sprint(since.Unix()-30), "--no-pager", "--output", "cat")
		if n := strings.Count(out, "copied to etcdcopy@"); n < 3 {
			return fmt.Errorf("%d copies off the host so far", n)
		}
		return nil
	}); err != nil {
		return err
	}
	copies, err := c.Control.Sh(ctx, "cd "+copyDir+" && ls -a && stat -c '%a %U' . && for f in e2e-*.db; do sha256sum $f; grep -o '\"sha256\": *\"[0-9a-f]*\"' $f.json; done")
	if err != nil {
		return fmt.Errorf("%w\n%s", err, copies)
	}
	if strings.Count(copies, ".db.json\n") != 2 || strings.Contains(copies, ".partial") || !strings.Contains(copies, "700 etcdcopy") {
		return fmt.Errorf("%s on control after 3 copies with keep_last = 2:\n%s", copyDir, copies)
	}
	for _, line := range strings.Split(copies, "\n") {
		if f := strings.Fields(line); len(f) == 2 && strings.HasSuffix(f[1], ".db") && !strings.Contains(copies, `"`+f[0]+`"`) {
			return fmt.Errorf("the copy %s has sha256 %s, not its metadata's:\n%s", f[1], f[0], copies)
		}
	}
	c.R.Logf("copies on control (%s):\n%s", copyDir, strings.TrimSpace(copies))

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
	// With the timers stopped, the newest copy on control is restorable:
	// restore checks it against its metadata (a dry run; the restore
	// itself is the next step's).
	newestCopy, err := c.Control.Sh(ctx, "ls "+copyDir+"/e2e-*.db | tail -1")
	if err != nil {
		return err
	}
	newestCopy = strings.TrimSpace(newestCopy)
	if out, err := c.ctl("etcd-installer", "restore", inventoryPath, newestCopy, "--dry-run"); err != nil || !strings.Contains(out, "etcd0") {
		return fmt.Errorf("restore --dry-run of the copy %s: %v\n%s", newestCopy, err, out)
	}
	return parallel(c.Members, func(m *testbed.Node) error {
		out, _ := m.Exec(ctx, "systemctl", "is-enabled", "etcd-backup.timer")
		if strings.TrimSpace(out) != "disabled" {
			return fmt.Errorf("%s: etcd-backup.timer is %q after the schedule was removed", m.Name, strings.TrimSpace(out))
		}
		return nil
	})
}
