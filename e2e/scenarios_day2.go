package e2e

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Scenarios of the cluster suite, day-2 operations under the writer: renewal, rolling restarts, membership, upgrades, removal.

// renewCerts is the step "certs renew on control, apply: every host gets new certificates, nothing restarts, members serve the new ones".
func (c *ClusterTest) renewCerts() error {
	ctx := c.Ctx
	expiries := func() (map[string]time.Time, error) {
		cs, err := c.status()
		if err != nil {
			return nil, err
		}
		out := map[string]time.Time{}
		for _, r := range cs.Rows {
			if r.CertExpires == nil {
				return nil, fmt.Errorf("%s: no served certificate in status", r.Name)
			}
			out[r.Name] = *r.CertExpires
		}
		return out, nil
	}
	before, err := expiries()
	if err != nil {
		return err
	}
	pids := map[string]string{}
	for _, m := range c.Members {
		_, _, pids[m.Name], _ = unitState(ctx, m, "etcd.service")
	}
	keyBefore, _ := c.Members[0].ReadFile("etc/etcd/pki/server.key")
	stats := c.writerStats()
	if out, err := c.ctl("etcd-installer", "certs", "renew", inventoryPath); err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	out, err := c.ctl("etcd-installer", "apply", inventoryPath)
	if err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	if strings.Contains(out, "restarted") || strings.Count(out, "/etc/etcd/pki/server.crt") < 3 {
		return fmt.Errorf("apply after renew:\n%s", out)
	}
	if keyAfter, _ := c.Members[0].ReadFile("etc/etcd/pki/server.key"); string(keyAfter) == string(keyBefore) {
		return errors.New("renew kept the old server key")
	}
	for _, m := range c.Members {
		if _, _, pid, _ := unitState(ctx, m, "etcd.service"); pid != pids[m.Name] {
			return fmt.Errorf("%s restarted (pid %s -> %s)", m.Name, pids[m.Name], pid)
		}
	}
	after, err := expiries()
	if err != nil {
		return err
	}
	for name, t := range after {
		if !t.After(before[name]) {
			return fmt.Errorf("%s still serves a certificate expiring %s (before renew: %s)", name, t, before[name])
		}
	}
	if err := c.writesContinue(10, 20*time.Second); err != nil {
		return err
	}
	if now := c.writerStats(); now.Failed != stats.Failed {
		return fmt.Errorf("%d writes failed during the renewal", now.Failed-stats.Failed)
	}
	return c.health(30 * time.Second)
}

// rollingTuning is the step "a tuning change applied from control: members restart one at a time, the leader last; no failed write".
func (c *ClusterTest) rollingTuning() error {
	l, err := c.leader()
	if err != nil {
		return err
	}
	inv, err := c.Control.ReadFile(inventoryPath[1:])
	if err != nil {
		return err
	}
	changed := strings.Replace(string(inv), "[cluster]\n", "[cluster]\nsnapshot_count = 20000\n", 1)
	if err := c.Control.WriteFile(inventoryPath[1:], []byte(changed), 0o644); err != nil {
		return err
	}
	// The dry run shows the rolling restart to come: every member, one at
	// a time, the leader last.
	out, err := c.ctl("etcd-installer", "apply", inventoryPath, "--dry-run")
	if err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	if !strings.Contains(out, "dry run: nothing was changed") || strings.Count(out, "of 3, one at a time") != 3 ||
		!strings.Contains(out, "3 of 3, one at a time (the leader, last)") || strings.Contains(out, "would have") {
		return fmt.Errorf("the dry run does not show the rolling restart:\n%s", out)
	}
	before := c.writerStats()
	out, err = c.ctl("etcd-installer", "apply", inventoryPath)
	if err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	var order []string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "rolling restart: this member now") {
			_, host, _ := strings.Cut(line, "host=")
			order = append(order, strings.Fields(host)[0])
		}
	}
	if strings.Count(out, "(rolling, ") != 3 || len(order) != 3 {
		return fmt.Errorf("want three rolling restarts:\n%s", out)
	}
	if order[2] != l.Name {
		return fmt.Errorf("restart order %v: the leader %s is not last", order, l.Name)
	}
	if err := c.health(60 * time.Second); err != nil {
		return err
	}
	if err := c.writesContinue(10, 20*time.Second); err != nil {
		return err
	}
	after := c.writerStats()
	c.R.Logf("restarted in order %v; %d writes acknowledged meanwhile, %d failed, %d transient errors retried",
		order, after.Acked-before.Acked, after.Failed-before.Failed, after.Retried-before.Retried)
	if after.Failed != before.Failed {
		return fmt.Errorf("%d writes failed during the rolling restart (last: %s)", after.Failed-before.Failed, after.LastErr)
	}
	for _, m := range c.Members {
		if env, _ := m.ReadFile("etc/etcd/etcd.conf"); !strings.Contains(string(env), "ETCD_SNAPSHOT_COUNT") {
			return fmt.Errorf("%s: etcd.conf has no ETCD_SNAPSHOT_COUNT", m.Name)
		}
	}
	return nil
}

// memberRemoveAdd is the step "7. member remove etcd2, then member add back: learner, promoted".
func (c *ClusterTest) memberRemoveAdd() error {
	ctx := c.Ctx
	if out, err := c.ctl("etcd-installer", "member", "remove", inventoryPath, "etcd2"); err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	n := c.member("etcd2")
	if a, _, _, _ := unitState(ctx, n, "etcd.service"); a == "active" {
		return errors.New("etcd still running on the removed host")
	}
	if out, _ := n.Sh(ctx, "ls -d /var/lib/etcd/etcd2.removed-*"); !strings.Contains(out, "removed-") {
		return errors.New("the removed member's data dir was not kept aside")
	}
	if out, err := c.ctl("etcd-installer", "member", "add", inventoryPath, "etcd2"); err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	cs, err := c.status()
	if err != nil {
		return err
	}
	for _, r := range cs.Rows {
		if r.Learner {
			return fmt.Errorf("%s is still a learner", r.Name)
		}
	}
	return c.health(60 * time.Second)
}

// rollingUpgrade is the step "8. rolling upgrade to revision 2, host by host, each confirmed by apply: no failed write".
func (c *ClusterTest) rollingUpgrade() error {
	ctx := c.Ctx
	before := c.writerStats()
	for _, m := range c.Members {
		if err := installDeb(ctx, m, c.Pk.V2, c.Pk); err != nil {
			return err
		}
		out, err := m.Exec(ctx, "etcd-installer", "apply", "/root/node.toml", "--this-host", m.Name)
		if err != nil {
			// The member has no inventory of its own: copy control's.
			inv, _ := c.Control.ReadFile(inventoryPath[1:])
			m.WriteFile("root/node.toml", inv, 0o644)
			if out, err = m.Exec(ctx, "etcd-installer", "apply", "/root/node.toml", "--this-host", m.Name); err != nil {
				return err
			}
		}
		c.R.Logf("%s", strings.TrimSpace(out))
		if err := c.health(60 * time.Second); err != nil {
			return err
		}
		if v, _ := m.Exec(ctx, "dpkg-query", "-W", "-f=${Version}", "etcd"); !strings.HasSuffix(v, "-2") {
			return fmt.Errorf("%s runs %s", m.Name, v)
		}
	}
	if err := c.writesContinue(10, 20*time.Second); err != nil {
		return err
	}
	after := c.writerStats()
	c.R.Logf("%d writes acknowledged during the upgrade, %d failed, %d transient errors retried within the deadline",
		after.Acked-before.Acked, after.Failed-before.Failed, after.Retried-before.Retried)
	if after.Failed != before.Failed {
		return fmt.Errorf("%d writes failed during the rolling upgrade (last: %s)", after.Failed-before.Failed, after.LastErr)
	}
	return nil
}

// packageRemoval is the step "9. dpkg -r etcd keeps the data dir; reinstalled and applied, the member rejoins with its data".
func (c *ClusterTest) packageRemoval() error {
	ctx := c.Ctx
	n := c.member("etcd1")
	if _, err := n.Exec(ctx, "dpkg", "-r", "etcd"); err != nil {
		return err
	}
	if _, err := n.Exec(ctx, "test", "-f", "/var/lib/etcd/etcd1/member/snap/db"); err != nil {
		return fmt.Errorf("removal lost the data dir: %w", err)
	}
	if err := installDeb(ctx, n, c.Pk.V2, c.Pk); err != nil {
		return err
	}
	if out, err := c.ctl("etcd-installer", "apply", inventoryPath); err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	return c.health(60 * time.Second)
}
