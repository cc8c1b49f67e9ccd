package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/etcd-appliance/appliance/e2e/testbed"
)

// Scenarios of the cluster suite: package upgrades that cannot cost quorum.

// systemd's message IDs for a unit stopping and a unit started (READY=1
// for Type=notify): the same on every systemd version, unlike the text.
const (
	msgUnitStopping = "de5b426a63be47a7b6ac3eaac82e2f6f"
	msgUnitStarted  = "39f53479d3a045ac8e11786248231fbf"
)

// outage is when one host's etcd.service was out of service: from
// systemd's "Stopping" to its "Started" (READY) after it.
type outage struct {
	host     string
	down, up time.Time
}

// outages reads etcd.service's stops and starts since t from n's journal.
func outages(ctx context.Context, n *testbed.Node, since time.Time) ([]outage, error) {
	out, err := n.Exec(ctx, "journalctl", "--unit", "etcd.service", "--output", "json", "--output-fields", "MESSAGE_ID",
		"--since", "@"+strconv.FormatInt(since.Unix(), 10), "--no-pager")
	if err != nil {
		return nil, err
	}
	var res []outage
	var open *outage
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var e struct {
			ID string `json:"MESSAGE_ID"`
			T  string `json:"__REALTIME_TIMESTAMP"`
		}
		if line == "" || json.Unmarshal([]byte(line), &e) != nil {
			continue
		}
		us, err := strconv.ParseInt(e.T, 10, 64)
		if err != nil {
			continue
		}
		t := time.UnixMicro(us)
		switch e.ID {
		case msgUnitStopping:
			if open != nil {
				return nil, fmt.Errorf("%s: etcd.service stopped twice without starting in between (%s)", n.Name, t.Format(time.StampMicro))
			}
			open = &outage{host: n.Name, down: t}
		case msgUnitStarted:
			if open != nil {
				open.up = t
				res = append(res, *open)
				open = nil
			}
		}
	}
	if open != nil {
		return nil, fmt.Errorf("%s: etcd.service stopped at %s and has not started since", n.Name, open.down.Format(time.StampMicro))
	}
	return res, nil
}

// overlapping names outages that overlap in time.
func overlapping(out []outage) []string {
	sort.Slice(out, func(i, j int) bool { return out[i].down.Before(out[j].down) })
	var bad []string
	for i := 1; i < len(out); i++ {
		if out[i].down.Before(out[i-1].up) {
			bad = append(bad, fmt.Sprintf("%s stopped %s before %s was ready again", out[i].host,
				out[i-1].up.Sub(out[i].down).Round(time.Millisecond), out[i-1].host))
		}
	}
	return bad
}

// simultaneousUpgrade is the step "8. upgrade to revision 2 on all three
// hosts at the same moment (dpkg -i): the package restarts them one at a
// time, never two together; apply confirms each; an application's client
// fails no write, the pinned clients' failures counted".
func (c *ClusterTest) simultaneousUpgrade() error {
	ctx := c.Ctx
	before := c.writerStats()
	leader, err := c.leader()
	if err != nil {
		return err
	}
	app, err := c.startAppWriter("writer-upgrade")
	if err != nil {
		return err
	}
	// Stopped on every path (the step's end stops it first, and checks it).
	defer app.stop()
	since := time.Now().Add(-time.Second)
	var mu sync.Mutex
	said := map[string]string{}
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make([]error, len(c.Members))
	for i, m := range c.Members {
		deb, err := glob(ctx, m, c.Pk.deb(c.Pk.V2))
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			out, err := m.Exec(ctx, "dpkg", "-i", deb)
			mu.Lock()
			said[m.Name] = out
			mu.Unlock()
			errs[i] = err
		}()
	}
	began := time.Now()
	close(start)
	wg.Wait()
	took := time.Since(began)
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	var all []outage
	for _, m := range c.Members {
		if v, _ := m.Exec(ctx, "dpkg-query", "-W", "-f=${Version}", "etcd"); !strings.HasSuffix(v, "-2") {
			return fmt.Errorf("%s has etcd %s", m.Name, v)
		}
		if !strings.Contains(said[m.Name], "restarted etcd.service (member "+m.Name+")") {
			return fmt.Errorf("%s: dpkg did not say the member was restarted:\n%s", m.Name, said[m.Name])
		}
		mine, err := outages(ctx, m, since)
		if err != nil {
			return err
		}
		if len(mine) != 1 {
			return fmt.Errorf("%s: etcd.service was restarted %d times by the upgrade, want once", m.Name, len(mine))
		}
		all = append(all, mine...)
		for _, line := range strings.Split(said[m.Name], "\n") {
			if strings.Contains(line, "maintenance lock") || strings.HasPrefix(line, "restarted ") {
				c.R.Logf("%s: %s", m.Name, strings.TrimSpace(line))
			}
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].down.Before(all[j].down) })
	for _, o := range all {
		c.R.Logf("%s out of service %s .. %s (%s)", o.host, o.down.Format("15:04:05.000"), o.up.Format("15:04:05.000"), o.up.Sub(o.down).Round(time.Millisecond))
	}
	if bad := overlapping(all); len(bad) > 0 {
		return fmt.Errorf("restarts overlapped: %s", strings.Join(bad, "; "))
	}
	// The leader's host lets the others go first when they queue within
	// its grace: logged, not asserted (the hosts' dpkg runs reach the
	// lock when they reach it).
	c.R.Logf("three dpkg -i at once took %s; the restarts never overlapped; the leader before, %s, restarted %s",
		took.Round(time.Millisecond), leader.Name, map[bool]string{true: "last", false: "before others"}[all[len(all)-1].host == leader.Name])
	if err := c.health(60 * time.Second); err != nil {
		return err
	}
	for _, m := range c.Members {
		if err := c.applyOnHost(m); err != nil {
			return err
		}
	}
	if err := c.writesContinue(10, 20*time.Second); err != nil {
		return err
	}
	after := c.writerStats()
	// The cluster suite's writer pins each client to one member (so that
	// every fault reaches some client): whoever's member restarts sees
	// it, and a write forwarded to a leader handing over is dropped by
	// raft and waits out its attempt; its failures are counted here and
	// its acknowledged writes checked at the end. An application's
	// client, with every endpoint, must lose nothing and fail nothing.
	c.R.Logf("pinned clients: %d writes acknowledged during the upgrade, %d failed, %d transient errors retried within the deadline",
		after.Acked-before.Acked, after.Failed-before.Failed, after.Retried-before.Retried)
	st, err := app.stop()
	if err != nil {
		return err
	}
	if err := app.verify(st); err != nil {
		return err
	}
	if st.Failed != 0 {
		return fmt.Errorf("%d writes of a client with every endpoint failed during the simultaneous upgrade (last: %s)", st.Failed, st.LastErr)
	}
	return nil
}

// applyOnHost runs apply for this host on the member itself, which must
// find nothing to restart after the upgrade.
func (c *ClusterTest) applyOnHost(m *testbed.Node) error {
	ctx := c.Ctx
	if _, err := m.Exec(ctx, "test", "-f", "/root/node.toml"); err != nil {
		// The member has no inventory of its own: copy control's.
		inv, err := c.Control.ReadFile(inventoryPath[1:])
		if err != nil {
			return err
		}
		if err := m.WriteFile("root/node.toml", inv, 0o644); err != nil {
			return err
		}
	}
	out, err := m.Exec(ctx, "etcd-installer", "apply", "/root/node.toml", "--this-host", m.Name)
	if err != nil {
		return err
	}
	c.R.Logf("%s", strings.TrimSpace(out))
	return nil
}

// upgradeWithoutQuorum is the step "8b. with etcd2 powered off, the
// package on etcd1 does not restart it (quorum): the old process serves
// on, dpkg says why and what to run".
func (c *ClusterTest) upgradeWithoutQuorum() error {
	ctx := c.Ctx
	n, off := c.member("etcd1"), c.member("etcd2")
	pid := func() string {
		out, _ := n.Exec(ctx, "systemctl", "show", "--property=MainPID", "--value", "etcd.service")
		return strings.TrimSpace(out)
	}
	before := pid()
	deb, err := glob(ctx, n, c.Pk.deb(c.Pk.V2))
	if err != nil {
		return err
	}
	off.PowerOff()
	out, derr := n.Exec(ctx, "dpkg", "-i", deb)
	if err := off.PowerOn(ctx); err != nil {
		return err
	}
	if derr != nil {
		return fmt.Errorf("the package must install even when the member cannot restart: %w", derr)
	}
	for _, want := range []string{"etcd.service not restarted: with etcd1 restarting, 1 of the 3 voting members would serve, and quorum is 2 (not serving: etcd2)",
		"the running etcd goes on serving", "once the cause is fixed, run: etcd-installer safe-restart"} {
		if !strings.Contains(out, want) {
			return fmt.Errorf("dpkg's output does not say %q:\n%s", want, out)
		}
	}
	if after := pid(); after != before || after == "0" {
		return fmt.Errorf("etcd on etcd1 was restarted without quorum to spare (pid %s, then %s)", before, after)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "not restarted") {
			c.R.Logf("dpkg on etcd1: %s", strings.TrimSpace(line))
		}
	}
	if err := c.health(90 * time.Second); err != nil {
		return err
	}
	// With etcd2 back, the command dpkg named restarts it.
	out, err = n.Exec(ctx, "etcd-installer", "safe-restart")
	if err != nil {
		return err
	}
	if after := pid(); after == before {
		return fmt.Errorf("safe-restart said %q but etcd1 runs pid %s still", strings.TrimSpace(out), after)
	}
	c.R.Logf("etcd1: %s", strings.TrimSpace(out))
	return c.health(60 * time.Second)
}
