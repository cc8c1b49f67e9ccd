package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/etcd-appliance/appliance/e2e/testbed"
	"github.com/etcd-appliance/appliance/e2e/writer"
)

// Scenarios of the cluster suite, after the writer: its verification, a gRPC proxy, backup and restore.

// noWriteLost is the step "no acknowledged write was lost through all of it".
func (c *ClusterTest) noWriteLost() error {
	ctx := c.Ctx
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
	return c.verifyWriter("writer", c.writerStats(), append([]string{"--endpoints", c.endpoints()}, operatorTLS()...))
}

// verifyWriter runs the writer's checker on the control host and reports
// what it checked; a violation's drawing is copied next to the test's
// work files.
func (c *ClusterTest) verifyWriter(name string, st writer.Stats, args []string) error {
	viz := "/root/" + name + "-violation.html"
	if !st.Start.IsZero() {
		args = append(args, "--start", st.Start.Format(time.RFC3339Nano))
	}
	out, err := c.ctl(append([]string{"/usr/local/bin/e2e-writer", "verify", "--viz", viz}, args...)...)
	// The summary is the JSON line; the rest is the writer's notes.
	var sum writer.Summary
	line := ""
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "{") {
			line = l
		}
	}
	if jerr := json.Unmarshal([]byte(line), &sum); jerr != nil {
		return fmt.Errorf("verify: %v %v\n%s", err, jerr, out)
	}
	c.R.Logf("%s: %d operations checked (%d with unknown outcome that took effect, %d unknown that did not), linearizable check %.2fs; "+
		"%d watch events from %d watchers against %d history events; %d writes acknowledged, %d missed their 10 s deadline",
		name, sum.Ops, sum.Unknown, sum.Dropped, sum.CheckSeconds, sum.WatchEvents, sum.Watchers, sum.HistoryEvents, st.Acked, st.Failed)
	// Each write whose outcome was unknown: when, through which member,
	// why (a stall shows here with its member and time).
	for _, f := range sum.Failed {
		c.R.Logf("%s: unknown outcome: %s", name, f)
	}
	if err == nil {
		return nil
	}
	for _, v := range sum.Violations {
		c.R.Logf("VIOLATION %s", v)
	}
	if sum.Visualization != "" {
		if b, rerr := c.Control.ReadFile(strings.TrimPrefix(viz, "/")); rerr == nil {
			dst := filepath.Join(c.TB.Dir, name+"-violation.html")
			if werr := os.WriteFile(dst, b, 0o644); werr == nil {
				c.R.Logf("the checker's drawing of the violation: %s", dst)
			}
		}
	}
	return fmt.Errorf("%d violations: %w", len(sum.Violations), err)
}

// proxyOnControl is the step "a gRPC proxy on control under systemd: certs, apply --host; READY, our STATUS, clients through it with TLS and auth".
func (c *ClusterTest) proxyOnControl() error {
	ctx := c.Ctx
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
}

// backupRestore is the step "backup on control, restore over the running cluster (real hosts, SSH, systemd): the backup's keys, later keys gone".
func (c *ClusterTest) backupRestore() error {
	ctx := c.Ctx
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
	return parallel(c.Members, func(m *testbed.Node) error {
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
}

// afterRestore is the step "after the restore: clients and watchers again
// on the restored cluster, their history checked". A restore rewinds the
// cluster to the backup by design, so the history that runs through it is
// not linearizable; the restored cluster must serve one that is.
func (c *ClusterTest) afterRestore() error {
	const name = "writer-restored"
	files := []string{"--prefix", "e2e-restored/", "--history", "/root/" + name + "-history.jsonl", "--watches", "/root/" + name + "-watch"}
	argv := append(append([]string{"systemd-run", "--unit", name, "/usr/local/bin/e2e-writer", "--endpoints", c.endpoints(),
		"--stats", "/root/" + name + ".json", "--stop", "/root/" + name + ".stop", "--max-ops", "600"}, files...), operatorTLS()...)
	if out, err := c.ctl(argv...); err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	if err := Eventually(c.Ctx, 90*time.Second, func() error {
		if out, _ := c.ctl("systemctl", "is-active", name); strings.TrimSpace(out) == "active" {
			return errors.New(name + " still running")
		}
		return nil
	}); err != nil {
		return err
	}
	var st writer.Stats
	b, _ := c.Control.ReadFile("root/" + name + ".json")
	_ = json.Unmarshal(b, &st)
	return c.verifyWriter(name, st, append([]string{"--endpoints", c.endpoints()}, append(files, operatorTLS()...)...))
}
