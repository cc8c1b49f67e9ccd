package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	par "github.com/etcd-appliance/appliance/internal/parallel"

	"github.com/etcd-appliance/appliance/cluster"
	"github.com/etcd-appliance/appliance/workflow/doctor"
)

// ClusterTest provisions three hosts from a control host over SSH and
// breaks them in every way issue 6 lists, with a writer running through
// all of it.
type ClusterTest struct {
	Ctx     context.Context
	R       *Run
	TB      *Testbed
	Pk      Packages
	Control *Node
	Members []*Node
	// Writer is the e2e-writer binary built for the hosts.
	Writer string
}

// The cluster runs with TLS (the default for hosts that are not this
// machine) and auth; the certificates and the root password stay on the
// control host.
const (
	inventoryPath = "/root/cluster.toml"
	passwordPath  = "/root/etcd-root-password"
	operatorCerts = "/root/certs/_operator"
)

func (c *ClusterTest) ctl(argv ...string) (string, error) { return c.Control.Exec(c.Ctx, argv...) }

func inventoryText(name string, nodes []*Node, ssh bool, cluster string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "version = 1\n\n[cluster]\nname = %q\n%s", name, cluster)
	for _, n := range nodes {
		fmt.Fprintf(&b, "\n[[member]]\nname = %q\naddress = %q\n", n.Name, n.IP)
		if ssh {
			fmt.Fprintf(&b, "ssh = \"root@%s\"\n", n.IP)
		}
	}
	return b.String()
}

func parallel(nodes []*Node, f func(n *Node) error) error {
	return par.Each(nodes, func(_ int, n *Node) error { return f(n) })
}

func installDeb(ctx context.Context, n *Node, dir string, p Packages) error {
	deb, err := glob(ctx, n, p.deb(dir))
	if err != nil {
		return err
	}
	_, err = n.Exec(ctx, "dpkg", "-i", deb)
	return err
}

// Setup boots the hosts, installs the etcd package everywhere and gives
// the control host SSH access to the members, host keys checked.
func (c *ClusterTest) Setup() error {
	if err := c.R.Step("boot control and three member hosts", func() error {
		var err error
		if c.Control, err = c.TB.AddNode(c.Ctx, "control", 10); err != nil {
			return err
		}
		for i := range 3 {
			n, err := c.TB.AddNode(c.Ctx, fmt.Sprintf("etcd%d", i), 11+i)
			if err != nil {
				return err
			}
			c.Members = append(c.Members, n)
		}
		return nil
	}); err != nil {
		return err
	}
	if err := c.R.Step("install the etcd deb on every host", func() error {
		return parallel(append([]*Node{c.Control}, c.Members...), func(n *Node) error { return installDeb(c.Ctx, n, c.Pk.V1, c.Pk) })
	}); err != nil {
		return err
	}
	return c.R.Step("SSH: control's key on the members, their host keys in control's known_hosts", func() error {
		if _, err := c.ctl("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", "/root/.ssh/id_ed25519"); err != nil {
			return err
		}
		pub, err := c.Control.ReadFile("root/.ssh/id_ed25519.pub")
		if err != nil {
			return err
		}
		var known strings.Builder
		for _, m := range c.Members {
			if err := m.WriteFile("root/.ssh/authorized_keys", pub, 0o600); err != nil {
				return err
			}
			key, err := m.HostKey()
			if err != nil {
				return err
			}
			fmt.Fprintf(&known, "%s %s\n", m.IP, key)
			if _, err := m.Exec(c.Ctx, "systemctl", "restart", "ssh"); err != nil {
				return err
			}
		}
		if err := c.Control.WriteFile("root/.ssh/known_hosts", []byte(known.String()), 0o600); err != nil {
			return err
		}
		if err := c.Control.WriteFile(passwordPath[1:], []byte("e2e-"+fmt.Sprint(time.Now().UnixNano())+"\n"), 0o600); err != nil {
			return err
		}
		return c.Control.WriteFile(inventoryPath[1:], []byte(inventoryText("e2e", c.Members, true,
			fmt.Sprintf("auth = true\nroot_password_file = %q\n", passwordPath))), 0o644)
	})
}

// health runs `etcd-installer health` on the control host until it passes.
func (c *ClusterTest) health(d time.Duration) error {
	return Eventually(c.Ctx, d, func() error {
		_, err := c.ctl("etcd-installer", "health", inventoryPath)
		return err
	})
}

func (c *ClusterTest) status() (cluster.ClusterStatus, error) {
	var cs cluster.ClusterStatus
	out, err := c.ctl("etcd-installer", "status", inventoryPath, "-o", "json")
	if jerr := json.Unmarshal([]byte(out), &cs); jerr != nil {
		if err == nil {
			err = jerr
		}
		return cs, err
	}
	return cs, nil
}

// leader returns the member host that leads, as its peers see it.
func (c *ClusterTest) leader() (*Node, error) {
	var l *Node
	err := Eventually(c.Ctx, 30*time.Second, func() error {
		cs, err := c.status()
		if err != nil {
			return err
		}
		for _, r := range cs.Rows {
			if r.Leader {
				l = c.member(r.Name)
				return nil
			}
		}
		return errors.New("no leader")
	})
	return l, err
}

func (c *ClusterTest) member(name string) *Node {
	for _, m := range c.Members {
		if m.Name == name {
			return m
		}
	}
	return nil
}

func (c *ClusterTest) others(n *Node) []*Node {
	var out []*Node
	for _, m := range c.Members {
		if m != n {
			out = append(out, m)
		}
	}
	return out
}

func (c *ClusterTest) writerStats() WriterStats {
	var s WriterStats
	b, _ := c.Control.ReadFile("root/writer.json")
	json.Unmarshal(b, &s)
	return s
}

// writesContinue waits until the writer has n more acknowledged writes.
func (c *ClusterTest) writesContinue(n int64, d time.Duration) error {
	start := c.writerStats().Acked
	return Eventually(c.Ctx, d, func() error {
		if s := c.writerStats(); s.Acked < start+n {
			return fmt.Errorf("writes stalled: %d acknowledged since (last error: %s)", s.Acked-start, s.LastErr)
		}
		return nil
	})
}

func (c *ClusterTest) endpoints() string {
	var eps []string
	for _, m := range c.Members {
		eps = append(eps, "https://"+m.IP+":2379")
	}
	return strings.Join(eps, ",")
}

// operatorTLS are the TLS flags of clients on the control host.
func operatorTLS() []string {
	return []string{"--cacert", operatorCerts + "/ca.crt", "--cert", operatorCerts + "/client.crt", "--key", operatorCerts + "/client.key"}
}

// localctl runs etcdctl on a member host against that member only, with
// the host's certificates.
func localctl(ctx context.Context, n *Node, args ...string) (string, error) {
	argv := append([]string{"etcdctl", "--endpoints=https://127.0.0.1:2379", "--cacert=/etc/etcd/pki/ca.crt",
		"--cert=/etc/etcd/pki/client.crt", "--key=/etc/etcd/pki/client.key"}, args...)
	return n.Exec(ctx, argv...)
}

// Scenarios runs issue 6's checks 1 to 9 in order.
func (c *ClusterTest) Scenarios() {
	ctx := c.Ctx
	var applyTook time.Duration
	if c.R.Step("etcd-installer certs on control: a CA and every host's certificates", func() error {
		out, err := c.ctl("etcd-installer", "certs", inventoryPath)
		if err != nil {
			return err
		}
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, " issued, ") {
				c.R.Logf("%s", l)
			}
		}
		if strings.Contains(out, "PRIVATE KEY") {
			return errors.New("certs printed key material")
		}
		mode, err := c.ctl("stat", "-c", "%a", "/root/certs/ca.key")
		if err != nil || strings.TrimSpace(mode) != "600" {
			return fmt.Errorf("ca.key mode %q: %v", mode, err)
		}
		return nil
	}) != nil {
		return
	}
	if c.R.Step("1. etcd-installer apply over SSH from control; healthy three-member cluster", func() error {
		start := time.Now()
		out, err := c.ctl("etcd-installer", "apply", inventoryPath)
		if err != nil {
			return err
		}
		c.R.Logf("%s", strings.TrimSpace(out))
		if err := c.health(60 * time.Second); err != nil {
			return err
		}
		applyTook = time.Since(start)
		c.R.Logf("apply to healthy: %s (target <= 15s)", applyTook.Round(10*time.Millisecond))
		if applyTook > 15*time.Second {
			return fmt.Errorf("apply to healthy took %s, target 15s", applyTook)
		}
		return nil
	}) != nil {
		return
	}
	c.R.Step("1. systemctl status shows our STATUS on every host; journald has the logs", func() error {
		return parallel(c.Members, func(m *Node) error {
			out, _ := m.Exec(ctx, "systemctl", "status", "--no-pager", "etcd")
			if err := expect(out, "Status: \"serving: "+m.Name, m.Name+" systemctl status"); err != nil {
				return err
			}
			logs, err := m.Exec(ctx, "journalctl", "-u", "etcd", "--no-pager", "-o", "cat")
			if err != nil {
				return err
			}
			return expect(logs, "member is ready", m.Name+" journal")
		})
	})
	c.R.Step("1. apply again from control: nothing changes, nothing restarts", func() error {
		out, err := c.ctl("etcd-installer", "apply", inventoryPath)
		if err != nil {
			return err
		}
		if strings.Count(out, "no changes") != 3 {
			return fmt.Errorf("second apply changed something:\n%s", out)
		}
		return nil
	})
	c.R.Step("TLS and auth: certificates in place, clients without one refused, auth on, etcdctl works on hosts without flags", func() error {
		return c.security()
	})
	if c.R.Step("start the writer on control (through every fault below)", func() error {
		wb, err := os.ReadFile(c.Writer)
		if err != nil {
			return err
		}
		if err := c.Control.WriteFile("usr/local/bin/e2e-writer", wb, 0o755); err != nil {
			return err
		}
		argv := append([]string{"systemd-run", "--unit", "e2e-writer", "/usr/local/bin/e2e-writer", "--endpoints", c.endpoints()}, operatorTLS()...)
		if _, err := c.ctl(argv...); err != nil {
			return err
		}
		return c.writesContinue(20, 20*time.Second)
	}) != nil {
		return
	}

	c.fault("2. kill -9 of etcd on the leader's host: systemd restarts it, it rejoins", func() error {
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
	})

	c.fault("3. power cut of one host: the other two keep writing; back, it catches up", func() error {
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
	})

	c.fault("4. two hosts down: writes fail with a clear error, serializable reads answer; both back: recovery", func() error {
		survivor := c.Members[0]
		down := c.others(survivor)
		for _, n := range down {
			n.PowerOff()
		}
		defer func() {
			for _, n := range down {
				if _, err := n.initPID(); err != nil {
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
	})

	c.fault("5. all three power-cut, started again in reverse order: the cluster recovers by itself", func() error {
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
	})

	c.fault("6. leader's link down: a new leader on the majority side; link up: it rejoins", func() error {
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
	})

	c.fault("6. leader silently cut off (frames dropped, link up): new leader; healed: it rejoins", func() error {
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
	})

	c.fault("6. one-pair drop between the leader and a follower: writes go on; healed: all healthy", func() error {
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
	})

	c.fault("certs renew on control, apply: every host gets new certificates, nothing restarts, members serve the new ones", func() error {
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
	})

	c.fault("a tuning change applied from control: members restart one at a time, the leader last; no failed write", func() error {
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
		before := c.writerStats()
		out, err := c.ctl("etcd-installer", "apply", inventoryPath)
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
		if strings.Count(out, "(rolling)") != 3 || len(order) != 3 {
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
	})

	c.fault("7. member remove etcd2, then member add back: learner, promoted", func() error {
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
	})

	c.fault("8. rolling upgrade to revision 2, host by host, each confirmed by apply: no failed write", func() error {
		before := c.writerStats()
		for _, m := range c.Members {
			if err := installDeb(ctx, m, c.Pk.V2, c.Pk); err != nil {
				return err
			}
			out, err := m.Exec(ctx, "etcd-installer", "apply", "/root/node.toml", "--host", m.Name)
			if err != nil {
				// The member has no inventory of its own: copy control's.
				inv, _ := c.Control.ReadFile(inventoryPath[1:])
				m.WriteFile("root/node.toml", inv, 0o644)
				if out, err = m.Exec(ctx, "etcd-installer", "apply", "/root/node.toml", "--host", m.Name); err != nil {
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
	})

	c.fault("9. dpkg -r etcd keeps the data dir; reinstalled and applied, the member rejoins with its data", func() error {
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
	})

	c.R.Step("no acknowledged write was lost through all of it", func() error {
		if _, err := c.ctl("touch", "/root/writer.stop"); err != nil {
			return err
		}
		if err := Eventually(ctx, 20*time.Second, func() error {
			out, _ := c.ctl("systemctl", "is-active", "e2e-writer")
			if strings.TrimSpace(out) == "active" {
				return errors.New("writer still running")
			}
			return nil
		}); err != nil {
			return err
		}
		out, err := c.ctl(append([]string{"/usr/local/bin/e2e-writer", "verify", "--endpoints", c.endpoints()}, operatorTLS()...)...)
		c.R.Logf("%s; %d writes missed their 10 s deadline, %d transient errors retried", strings.TrimSpace(out), c.writerStats().Failed, c.writerStats().Retried)
		return err
	})

	c.fault("a gRPC proxy on control under systemd: certs, apply --host; READY, our STATUS, clients through it with TLS and auth", func() error {
		inv, err := c.Control.ReadFile(inventoryPath[1:])
		if err != nil {
			return err
		}
		const proxyInv = "/root/proxy.toml"
		text := string(inv) + fmt.Sprintf("\n[[proxy]]\nname = \"gw\"\naddress = %q\n", c.Control.IP)
		if err := c.Control.WriteFile(proxyInv[1:], []byte(text), 0o644); err != nil {
			return err
		}
		if out, err := c.ctl("etcd-installer", "certs", proxyInv, "--dir", "/root/certs"); err != nil {
			return fmt.Errorf("%w\n%s", err, out)
		}
		if out, err := c.ctl("etcd-installer", "apply", proxyInv, "--host", "gw", "--certs", "/root/certs"); err != nil {
			return fmt.Errorf("%w\n%s", err, out)
		}
		active, _, _, status := unitState(ctx, c.Control, "etcd-grpc-proxy.service")
		if active != "active" {
			return fmt.Errorf("etcd-grpc-proxy is %s: %s", active, status)
		}
		if err := Eventually(ctx, 20*time.Second, func() error {
			_, _, _, status = unitState(ctx, c.Control, "etcd-grpc-proxy.service")
			if !strings.HasPrefix(status, "serving on "+c.Control.IP+":23790; ") {
				return fmt.Errorf("proxy STATUS %q", status)
			}
			return nil
		}); err != nil {
			return err
		}
		c.R.Logf("proxy STATUS: %s", status)
		pw, err := c.Control.ReadFile(passwordPath[1:])
		if err != nil {
			return err
		}
		via := append([]string{"etcdctl", "--endpoints=https://" + c.Control.IP + ":23790", "--dial-timeout=3s", "--command-timeout=5s"}, operatorTLS()...)
		if out, err := c.ctl(append(via, "--user", "root:"+strings.TrimSpace(string(pw)), "put", "proxy/key", "through gw")...); err != nil {
			return fmt.Errorf("put through the proxy with root's password: %w\n%s", err, out)
		}
		if out, err := c.ctl(append(via, "put", "proxy/cert-only", "x")...); err == nil {
			return fmt.Errorf("a certificate alone wrote through the proxy with auth on:\n%s", out)
		}
		if out, err := localctl(ctx, c.Members[1], "get", "proxy/key", "--print-value-only"); err != nil || strings.TrimSpace(out) != "through gw" {
			return fmt.Errorf("the proxied put on %s: %q %v", c.Members[1].Name, out, err)
		}
		if _, err := c.ctl("systemctl", "stop", "etcd-grpc-proxy"); err != nil {
			return err
		}
		return nil
	})

	// After the writer: a restore rolls the key space back by design.
	c.fault("backup on control, restore over the running cluster (real hosts, SSH, systemd): the backup's keys, later keys gone", func() error {
		put := func(k, v string) error {
			_, err := localctl(ctx, c.Members[0], "put", k, v)
			return err
		}
		if err := put("restore/before", "kept"); err != nil {
			return err
		}
		if out, err := c.ctl("etcd-installer", "backup", inventoryPath, "--out", "/root/e2e.db"); err != nil {
			return fmt.Errorf("%w\n%s", err, out)
		}
		if err := put("restore/after", "gone"); err != nil {
			return err
		}
		start := time.Now()
		out, err := c.ctl("etcd-installer", "restore", inventoryPath, "/root/e2e.db", "--yes")
		if err != nil {
			return fmt.Errorf("%w\n%s", err, out)
		}
		took := time.Since(start)
		if err := c.health(60 * time.Second); err != nil {
			return err
		}
		return parallel(c.Members, func(m *Node) error {
			if out, err := localctl(ctx, m, "get", "--prefix", "restore/", "--keys-only", "--consistency=s"); err != nil {
				return err
			} else if !strings.Contains(out, "restore/before") || strings.Contains(out, "restore/after") {
				return fmt.Errorf("%s after restore: keys %q", m.Name, strings.Fields(out))
			}
			if out, err := m.Sh(ctx, "stat -c '%a %U' /var/lib/etcd/"+m.Name+"; ls -d /var/lib/etcd/"+m.Name+".pre-restore-*"); err != nil ||
				!strings.HasPrefix(out, "700 etcd\n") {
				return fmt.Errorf("%s: restored data dir mode/owner or kept old dir: %q %v", m.Name, out, err)
			}
			if m == c.Members[0] {
				c.R.Logf("restore of 3 members over SSH to healthy: %s", took.Round(10*time.Millisecond))
			}
			return nil
		})
	})
}

// security checks what issue 7 promises on the running cluster.
func (c *ClusterTest) security() error {
	ctx := c.Ctx
	// Each host holds its own certificates, keys readable by their users
	// only, and never the CA key.
	if err := parallel(c.Members, func(m *Node) error {
		out, err := m.Sh(ctx, "stat -c '%n %a %U:%G' /etc/etcd/pki/*")
		if err != nil {
			return err
		}
		for _, want := range []string{"/etc/etcd/pki/ca.crt 644 root:root", "/etc/etcd/pki/server.key 600 etcd:etcd",
			"/etc/etcd/pki/peer.key 600 etcd:etcd", "/etc/etcd/pki/client.key 600 root:root"} {
			if !strings.Contains(out, want) {
				return fmt.Errorf("%s: want %q in\n%s", m.Name, want, out)
			}
		}
		if strings.Contains(out, "ca.key") {
			return fmt.Errorf("%s holds the CA key", m.Name)
		}
		own, _ := c.Control.ReadFile("root/certs/" + m.Name + "/server.key")
		got, _ := m.ReadFile("etc/etcd/pki/server.key")
		if len(own) == 0 || string(own) != string(got) {
			return fmt.Errorf("%s does not hold its own server key", m.Name)
		}
		// Nothing listens in plain text on the client port.
		if out, err := m.Exec(ctx, "etcdctl", "--endpoints=http://127.0.0.1:2379", "--dial-timeout=2s", "--command-timeout=3s", "get", "x"); err == nil {
			return fmt.Errorf("%s answers plain http: %s", m.Name, out)
		}
		// etcdctl.env: no flags needed on a host.
		out, err = m.Exec(ctx, "etcdctl", "endpoint", "health")
		if err != nil || strings.Count(out, "https://") != 3 || strings.Count(out, "is healthy") != 3 {
			return fmt.Errorf("%s: etcdctl without flags: %v\n%s", m.Name, err, out)
		}
		return nil
	}); err != nil {
		return err
	}
	m := c.Members[0]
	out, err := m.Exec(ctx, "etcdctl", "auth", "status")
	if err != nil || !strings.Contains(out, "Authentication Status: true") {
		return fmt.Errorf("auth status: %v\n%s", err, out)
	}
	if out, err := m.Exec(ctx, "etcdctl", "user", "list"); err != nil || !strings.Contains(out, "root") || !strings.Contains(out, "reader") {
		return fmt.Errorf("users: %v\n%s", err, out)
	}
	// The root password (on control only) works; a wrong one does not.
	pw, err := c.Control.ReadFile(passwordPath[1:])
	if err != nil {
		return err
	}
	base := []string{"etcdctl", "--endpoints", c.endpoints(), "--cacert", operatorCerts + "/ca.crt",
		"--cert", "/root/certs/etcd0/server.crt", "--key", "/root/certs/etcd0/server.key", "--command-timeout=5s"}
	if out, err := c.ctl(append(base, "--user", "root:"+strings.TrimSpace(string(pw)), "put", "e2e-auth", "by-password")...); err != nil {
		return fmt.Errorf("root by password: %w\n%s", err, out)
	}
	if out, err := c.ctl(append(base, "--user", "root:wrong", "get", "e2e-auth")...); err == nil {
		return fmt.Errorf("a wrong password read a key: %s", out)
	}
	// etcd0's server certificate names a user that does not exist.
	if out, err := c.ctl(append(base, "get", "e2e-auth")...); err == nil || !strings.Contains(out, "permission denied") && !strings.Contains(out, "user name not found") {
		return fmt.Errorf("a certificate of no user: %v %s", err, out)
	}
	// No client certificate: refused at the TLS layer.
	if out, err := c.ctl("etcdctl", "--endpoints", c.endpoints(), "--cacert", operatorCerts+"/ca.crt", "--dial-timeout=2s", "--command-timeout=3s", "get", "x"); err == nil {
		return fmt.Errorf("a client without a certificate read a key: %s", out)
	}
	// status from control, as the operator certificate (CN root).
	cs, err := c.status()
	if err != nil || !cs.Healthy {
		return fmt.Errorf("status with TLS and auth: %v %+v", err, cs.Problems)
	}
	for _, r := range cs.Rows {
		if r.CertExpires == nil || time.Until(*r.CertExpires) < 300*24*time.Hour {
			return fmt.Errorf("%s serves a certificate expiring %v", r.Name, r.CertExpires)
		}
	}
	// doctor on every host over SSH finds the certificates fine.
	out, _ = c.ctl("etcd-installer", "doctor", inventoryPath, "-o", "json")
	var fs []doctor.Finding
	if err := json.Unmarshal([]byte(out), &fs); err != nil {
		return fmt.Errorf("doctor: %w\n%s", err, out)
	}
	ok := map[string]bool{}
	for _, f := range fs {
		if f.Check == "certificates" {
			if f.Level != doctor.OK.String() {
				return fmt.Errorf("doctor on %s: %s", f.Host, f.Message)
			}
			ok[f.Host] = true
		}
	}
	if len(ok) != len(c.Members) {
		return fmt.Errorf("doctor checked certificates on %d hosts: %v", len(ok), ok)
	}
	return nil
}

// fault runs a fault-injection step on a healthy cluster: a step that
// failed must not make the next one fail.
func (c *ClusterTest) fault(name string, f func() error) {
	c.R.Step(name, func() error {
		if err := c.health(90 * time.Second); err != nil {
			return fmt.Errorf("not healthy before the step: %w", err)
		}
		return f()
	})
}

func (c *ClusterTest) newLeaderBesides(old *Node) error {
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

// NodePackages checks issue 6's 11: on fresh hosts, installing the etcd
// package and each host's etcd-node package brings up a cluster.
func (c *ClusterTest) NodePackages() {
	ctx := c.Ctx
	c.R.Step("11. etcd-node packages from an inventory bring up a cluster on fresh hosts", func() error {
		var nodes []*Node
		for i := range 3 {
			n, err := c.TB.AddNode(ctx, fmt.Sprintf("pkg%d", i), 21+i)
			if err != nil {
				return err
			}
			nodes = append(nodes, n)
		}
		if err := c.Control.WriteFile("root/pkgs/nodes.toml", []byte(inventoryText("pkgs", nodes, false, "")), 0o644); err != nil {
			return err
		}
		// With TLS: the packages carry each host's certificates.
		if out, err := c.ctl("etcd-installer", "certs", "/root/pkgs/nodes.toml"); err != nil {
			return fmt.Errorf("%w\n%s", err, out)
		}
		if out, err := c.ctl("etcd-installer", "package", "/root/pkgs/nodes.toml", "--out", "/root/node-pkgs"); err != nil {
			return fmt.Errorf("%w\n%s", err, out)
		}
		start := time.Now()
		err := parallel(nodes, func(n *Node) error {
			src := filepath.Join(c.Control.Root(), "root/node-pkgs", fmt.Sprintf("etcd-node-%s_1.0-1_all.deb", n.Name))
			b, err := os.ReadFile(src)
			if err != nil {
				return err
			}
			if err := n.WriteFile("root/node.deb", b, 0o644); err != nil {
				return err
			}
			if err := installDeb(ctx, n, c.Pk.V1, c.Pk); err != nil {
				return err
			}
			_, err = n.Exec(ctx, "dpkg", "-i", "/root/node.deb")
			return err
		})
		if err != nil {
			return err
		}
		if err := Eventually(ctx, 60*time.Second, func() error {
			_, err := c.ctl("etcd-installer", "health", "/root/pkgs/nodes.toml")
			return err
		}); err != nil {
			return err
		}
		c.R.Logf("dpkg -i to healthy: %s", time.Since(start).Round(10*time.Millisecond))
		// Removing a node package stops and disables its unit.
		if _, err := nodes[0].Exec(ctx, "dpkg", "-r", "etcd-node-"+nodes[0].Name); err != nil {
			return err
		}
		if a, e, _, _ := unitState(ctx, nodes[0], "etcd.service"); a == "active" || e == "enabled" {
			return fmt.Errorf("after removing the node package: %s, %s", a, e)
		}
		return nil
	})
}

// BuildWriter builds e2e-writer for the hosts.
func BuildWriter(dir string) (string, error) {
	p := filepath.Join(dir, "e2e-writer")
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags", "-s -w", "-o", p, "./e2e/cmd/writer")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building e2e-writer: %w: %s", err, out)
	}
	return p, nil
}
