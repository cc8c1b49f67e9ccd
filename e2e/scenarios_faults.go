package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/etcd-appliance/appliance/e2e/testbed"
)

// Scenarios of the cluster suite, faults under the writer: kills, power cuts, quorum loss, partitions.

// killLeader is the step "2. kill -9 of etcd on the leader's host: systemd restarts it, it rejoins".
func (c *ClusterTest) killLeader() error {
	ctx := c.Ctx
	l, err := c.leader()
	if err != nil {
		return err
	}
	c.R.Logf("leader %s", l.Name)
	if _, err := l.Sh(ctx, "kill -9 $(systemctl show --property=MainPID --value etcd)"); err != nil {
		return err
	}
	if err := c.writesContinue(20, 30*time.Second); err != nil {
		return err
	}
	if err := Eventually(ctx, 60*time.Second, func() error {
		out, _ := l.Exec(ctx, "systemctl", "show", "etcd", "--property=NRestarts,ActiveState")
		if !strings.Contains(out, "ActiveState=active") || strings.Contains(out, "NRestarts=0") {
			return fmt.Errorf("%s: %s", l.Name, strings.TrimSpace(out))
		}
		return nil
	}); err != nil {
		return err
	}
	return c.health(60 * time.Second)
}

// powerCutOne is the step "3. power cut of one host: the other two keep writing; back, it catches up".
func (c *ClusterTest) powerCutOne() error {
	ctx := c.Ctx
	l, err := c.leader()
	if err != nil {
		return err
	}
	victim := c.others(l)[0]
	victim.PowerOff()
	werr := c.writesContinue(30, 30*time.Second)
	if err := victim.PowerOn(ctx); err != nil {
		return err
	}
	if werr != nil {
		return werr
	}
	return c.health(60 * time.Second)
}

// quorumLoss is the step "4. two hosts down: writes fail with a clear error, serializable reads answer; both back: recovery".
func (c *ClusterTest) quorumLoss() error {
	ctx := c.Ctx
	survivor := c.Members[0]
	down := c.others(survivor)
	for _, n := range down {
		n.PowerOff()
	}
	defer func() {
		for _, n := range down {
			if !n.Running() {
				n.PowerOn(ctx)
			}
		}
	}()
	out, err := localctl(ctx, survivor, "--command-timeout=3s", "put", "e2e-noquorum", "x")
	if err == nil {
		return errors.New("a write succeeded with two of three members down")
	}
	if !strings.Contains(out, "context deadline exceeded") && !strings.Contains(out, "request timed out") && !strings.Contains(out, "no leader") {
		return fmt.Errorf("unclear error without quorum: %s", out)
	}
	c.R.Logf("write without quorum: %s", lastLine(out))
	if _, err := localctl(ctx, survivor, "get", "--consistency=s", "--prefix", "--keys-only", "--limit=1", "e2e/"); err != nil {
		return fmt.Errorf("serializable read without quorum: %w", err)
	}
	for _, n := range down {
		if err := n.PowerOn(ctx); err != nil {
			return err
		}
	}
	return c.health(90 * time.Second)
}

// powerCutAll is the step "5. all three power-cut, started again in reverse order: the cluster recovers by itself".
func (c *ClusterTest) powerCutAll() error {
	ctx := c.Ctx
	for _, n := range c.Members {
		n.PowerOff()
	}
	for i := len(c.Members) - 1; i >= 0; i-- {
		if err := c.Members[i].PowerOn(ctx); err != nil {
			return err
		}
	}
	if err := c.health(90 * time.Second); err != nil {
		return err
	}
	return c.writesContinue(20, 30*time.Second)
}

// leaderLinkDown is the step "6. leader's link down: a new leader on the majority side; link up: it rejoins".
func (c *ClusterTest) leaderLinkDown() error {
	l, err := c.leader()
	if err != nil {
		return err
	}
	if err := l.Isolate(); err != nil {
		return err
	}
	err = c.newLeaderBesides(l)
	if err == nil {
		err = c.writesContinue(20, 30*time.Second)
	}
	if rerr := l.Reconnect(); rerr != nil {
		return rerr
	}
	if err != nil {
		return err
	}
	return c.health(60 * time.Second)
}

// leaderSilentCut is the step "6. leader silently cut off (frames dropped, link up): new leader; healed: it rejoins".
func (c *ClusterTest) leaderSilentCut() error {
	l, err := c.leader()
	if err != nil {
		return err
	}
	for _, o := range c.others(l) {
		if err := c.TB.DropBetween(l, o); err != nil {
			return err
		}
	}
	if err := c.newLeaderBesides(l); err != nil {
		c.TB.HealPartitions()
		return err
	}
	if err := c.TB.HealPartitions(); err != nil {
		return err
	}
	return c.health(60 * time.Second)
}

// onePairDrop is the step "6. one-pair drop between the leader and a follower: writes go on; healed: all healthy".
func (c *ClusterTest) onePairDrop() error {
	l, err := c.leader()
	if err != nil {
		return err
	}
	cut := c.others(l)[0]
	if err := c.TB.DropBetween(l, cut); err != nil {
		return err
	}
	// Writes through the cut-off follower time out (it cannot reach
	// the leader, and pre-vote keeps it from disrupting the others);
	// through the other two they go on.
	before := c.writerStats()
	err = c.writesContinue(5, 30*time.Second)
	after := c.writerStats()
	c.TB.HealPartitions()
	if err != nil {
		return err
	}
	c.R.Logf("%s cut from %s: %d writes acknowledged in the cut, %d transient errors", l.Name, cut.Name, after.Acked-before.Acked, after.Retried-before.Retried)
	return c.health(60 * time.Second)
}

func (c *ClusterTest) newLeaderBesides(old *testbed.Node) error {
	return Eventually(c.Ctx, 30*time.Second, func() error {
		for _, m := range c.others(old) {
			out, err := localctl(c.Ctx, m, "endpoint", "status", "-w", "json")
			if err != nil {
				continue
			}
			var st []struct {
				Status struct {
					Header struct {
						MemberID uint64 `json:"member_id"`
					} `json:"header"`
					Leader uint64 `json:"leader"`
				} `json:"Status"`
			}
			if json.Unmarshal([]byte(out), &st) == nil && len(st) == 1 && st[0].Status.Leader == st[0].Status.Header.MemberID {
				c.R.Logf("new leader %s", m.Name)
				return nil
			}
		}
		return fmt.Errorf("no new leader besides %s", old.Name)
	})
}
