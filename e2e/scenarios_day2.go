package e2e

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/etcd-appliance/appliance/e2e/testbed"
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

// rollingTuning is the step "a tuning change from control: plan --host matches apply --host --dry-run, --this-host refused, control untouched; applied, members restart one at a time, the leader last; no failed write".
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
	var follower *testbed.Node
	for _, m := range c.Members {
		if m != l {
			follower = m
			break
		}
	}
	if err := c.operatorFromControl(follower); err != nil {
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
	// Removed, still in the inventory: status says so, not UNHEALTHY.
	out, err := c.ctl("etcd-installer", "status", inventoryPath)
	if err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "etcd2 ") && (!strings.Contains(line, "REMOVED") || strings.Contains(line, "UNHEALTHY")) {
			return fmt.Errorf("status after member remove:\n%s", out)
		}
	}
	if !strings.Contains(out, "is healthy: 2/2 members") {
		return fmt.Errorf("status after member remove: the two members left are not the cluster:\n%s", out)
	}
	// Adding it back: its STATUS while it waits speaks of joining a
	// running cluster, never of a new one.
	if out, err := c.ctl("etcd-installer", "member", "add", inventoryPath, "etcd2"); err != nil || strings.Contains(out, "(a new cluster") {
		return fmt.Errorf("member add: %v\n%s", err, out)
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

// operatorFromControl is the operator's path from the control host, with
// an inventory change pending on every member: `plan --host` for a remote
// member shows exactly the files `apply --host --dry-run` would write for
// it, read over SSH from the member; --this-host with a member's name is
// refused on control; and none of it changes the control host.
func (c *ClusterTest) operatorFromControl(m *testbed.Node) error {
	controlState := func() (string, error) {
		return c.Control.Sh(c.Ctx, "find /etc/etcd /etc/systemd/system /var/lib/etcd -xdev 2>/dev/null | sort | "+
			"while read -r f; do if [ -f \"$f\" ]; then sha256sum \"$f\"; else echo \"$f\"; fi; done; "+
			"systemctl is-enabled etcd 2>&1; systemctl is-active etcd 2>&1; true")
	}
	before, err := controlState()
	if err != nil {
		return err
	}
	plan, err := c.ctl("etcd-installer", "plan", inventoryPath, "--host", m.Name)
	if err != nil {
		return fmt.Errorf("plan --host %s: %w\n%s", m.Name, err, plan)
	}
	var planned []string
	for _, line := range strings.Split(plan, "\n") {
		if f, ok := strings.CutPrefix(line, "+++ "); ok {
			planned = append(planned, strings.Fields(f)[0])
		}
	}
	dry, err := c.ctl("etcd-installer", "apply", inventoryPath, "--host", m.Name, "--dry-run")
	if err != nil {
		return fmt.Errorf("apply --host %s --dry-run: %w\n%s", m.Name, err, dry)
	}
	var wouldWrite []string
	for _, line := range strings.Split(dry, "\n") {
		if !strings.HasPrefix(line, m.Name+" ") {
			continue
		}
		if _, rest, ok := strings.Cut(line, "would write "); ok {
			files, _, _ := strings.Cut(rest, ";")
			wouldWrite = strings.Split(strings.TrimSpace(files), ", ")
		}
	}
	sort.Strings(planned)
	sort.Strings(wouldWrite)
	if len(planned) == 0 || !slices.Equal(planned, wouldWrite) || !strings.Contains(plan, fmt.Sprintf("%s: %d file(s) would change", m.Name, len(planned))) {
		return fmt.Errorf("plan --host %s shows %v, apply --host %s --dry-run would write %v:\n%s\n---\n%s", m.Name, planned, m.Name, wouldWrite, plan, dry)
	}
	if out, err := c.ctl("etcd-installer", "apply", inventoryPath, "--this-host", m.Name, "--dry-run"); err == nil ||
		!strings.Contains(out, "--this-host "+m.Name+": this machine (hostname") || !strings.Contains(out, "nothing was done") {
		return fmt.Errorf("apply --this-host %s on control was not refused: %v\n%s", m.Name, err, out)
	}
	after, err := controlState()
	if err != nil {
		return err
	}
	if before != after {
		return fmt.Errorf("the host flags changed the control host:\n%s\n---\n%s", before, after)
	}
	c.R.Logf("from control: plan --host %s and apply --host %s --dry-run agree on %v; --this-host %s refused; control unchanged", m.Name, m.Name, planned, m.Name)
	return nil
}

// lostDisk is the step "7b. etcd1's disk dies: ...".
func (c *ClusterTest) lostDisk() error {
	ctx := c.Ctx
	n := c.member("etcd1")
	n.PowerOff()
	// A new disk: the data dir is gone when the host comes back.
	if err := os.RemoveAll(filepath.Join(n.Root(), "var/lib/etcd", n.Name)); err != nil {
		return err
	}
	if err := n.PowerOn(ctx); err != nil {
		return err
	}
	if err := Eventually(ctx, 60*time.Second, func() error {
		out, _ := n.Exec(ctx, "systemctl", "show", "etcd", "--property=ActiveState,ExecMainStatus")
		if !strings.Contains(out, "ActiveState=failed") || !strings.Contains(out, "ExecMainStatus=81") {
			return fmt.Errorf("etcd on %s with an empty data dir: %s", n.Name, out)
		}
		return nil
	}); err != nil {
		return err
	}
	// Not restarted: 81 is in RestartPreventExitStatus; held past RestartSec.
	if err := Always(ctx, 7*time.Second, func() error {
		if out, _ := n.Exec(ctx, "systemctl", "show", "etcd", "--property=NRestarts", "--value"); strings.TrimSpace(out) != "0" {
			return fmt.Errorf("etcd on %s restarted %s times", n.Name, strings.TrimSpace(out))
		}
		return nil
	}); err != nil {
		return err
	}
	_, _, _, status := unitState(ctx, n, "etcd.service")
	c.R.Logf("STATUS: %s", status)
	out, _ := c.ctl("etcd-installer", "doctor", inventoryPath, "--host", n.Name)
	// doctor runs on the host with its copy of the inventory: the fix
	// names that copy.
	if err := expect(out, "etcd-installer member replace "+filepath.Base(inventoryPath)+" "+n.Name, "doctor"); err != nil {
		return err
	}
	if err := c.writesContinue(20, 30*time.Second); err != nil {
		return fmt.Errorf("with %s's member lost: %w", n.Name, err)
	}
	start := time.Now()
	if out, err := c.ctl("etcd-installer", "member", "replace", inventoryPath, n.Name); err != nil {
		return fmt.Errorf("member replace: %w\n%s", err, out)
	}
	c.R.Logf("member replace to a promoted member: %s", time.Since(start).Round(10*time.Millisecond))
	if err := c.health(60 * time.Second); err != nil {
		return err
	}
	return c.writesContinue(20, 30*time.Second)
}
