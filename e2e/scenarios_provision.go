package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/etcd-appliance/appliance/e2e/testbed"
	"github.com/etcd-appliance/appliance/workflow/doctor"
)

// Scenarios of the cluster suite, provisioning: certificates, apply over SSH, what systemd and the cluster say, security, the writer.

// issueCerts is the step "etcd-installer certs on control: a CA and every host's certificates".
func (c *ClusterTest) issueCerts() error {
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
}

// applyOverSSH is the step "1. etcd-installer apply over SSH from control; healthy three-member cluster".
func (c *ClusterTest) applyOverSSH() error {
	start := time.Now()
	out, err := c.ctl("etcd-installer", "apply", inventoryPath)
	if err != nil {
		return err
	}
	c.R.Logf("%s", strings.TrimSpace(out))
	if err := c.health(60 * time.Second); err != nil {
		return err
	}
	applyTook := time.Since(start)
	c.R.Logf("apply to healthy: %s (target <= 15s)", applyTook.Round(10*time.Millisecond))
	if applyTook > 15*time.Second {
		return fmt.Errorf("apply to healthy took %s, target 15s", applyTook)
	}
	return nil
}

// unitStatus is the step "1. systemctl status shows our STATUS on every host; journald has the logs".
func (c *ClusterTest) unitStatus() error {
	ctx := c.Ctx
	return parallel(c.Members, func(m *testbed.Node) error {
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
}

// applyAgain is the step "1. apply again from control: nothing changes, nothing restarts".
func (c *ClusterTest) applyAgain() error {
	out, err := c.ctl("etcd-installer", "apply", inventoryPath)
	if err != nil {
		return err
	}
	if strings.Count(out, "no changes") != 3 {
		return fmt.Errorf("second apply changed something:\n%s", out)
	}
	return nil
}

// startWriter is the step "start the writer on control (through every fault below)".
func (c *ClusterTest) startWriter() error {
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
}

// security checks what issue 7 promises on the running cluster.
func (c *ClusterTest) security() error {
	ctx := c.Ctx
	// Each host holds its own certificates, keys readable by their users
	// only, and never the CA key.
	if err := parallel(c.Members, func(m *testbed.Node) error {
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
