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

	"github.com/etcd-appliance/appliance/e2e/testbed"
	"github.com/etcd-appliance/appliance/e2e/writer"
	par "github.com/etcd-appliance/appliance/internal/parallel"

	"github.com/etcd-appliance/appliance/cluster"
)

// ClusterTest provisions three hosts from a control host over SSH and
// breaks them in every way issue 6 lists, with a writer running through
// all of it.
type ClusterTest struct {
	Ctx     context.Context
	R       *Run
	TB      *testbed.Testbed
	Pk      Packages
	Control *testbed.Node
	Members []*testbed.Node
	// Proxies are hosts for gRPC proxies, reached over SSH like members.
	Proxies []*testbed.Node
	// Writer is the e2e-writer binary built for the hosts.
	Writer string
	// Hosts names and places the hosts; the zero value is the cluster
	// suite's.
	Hosts HostNames
}

// HostNames name a suite's hosts: the control host, the member hosts
// (Prefix0, Prefix1, ...) and proxy hosts, on consecutive addresses from
// Octet.
type HostNames struct {
	Control, Prefix string
	Octet           int
	Proxies         []string
}

func (h HostNames) withDefaults() HostNames {
	if h.Control == "" {
		h = HostNames{Control: "control", Prefix: "etcd", Octet: 10}
	}
	return h
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

func inventoryText(name string, nodes []*testbed.Node, ssh bool, cluster string) string {
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

func parallel(nodes []*testbed.Node, f func(n *testbed.Node) error) error {
	return par.Each(nodes, func(_ int, n *testbed.Node) error { return f(n) })
}

func installDeb(ctx context.Context, n *testbed.Node, dir string, p Packages) error {
	deb, err := glob(ctx, n, p.deb(dir))
	if err != nil {
		return err
	}
	_, err = n.Exec(ctx, "dpkg", "-i", deb)
	return err
}

// Setup boots the hosts, installs the etcd package everywhere, gives the
// control host SSH access to the others and writes the cluster suite's
// inventory.
func (c *ClusterTest) Setup() error {
	if err := c.SetupHosts(); err != nil {
		return err
	}
	return c.R.Step("the inventory on control: TLS and auth", func() error {
		if err := c.Control.WriteFile(passwordPath[1:], []byte("e2e-"+fmt.Sprint(time.Now().UnixNano())+"\n"), 0o600); err != nil {
			return err
		}
		return c.Control.WriteFile(inventoryPath[1:], []byte(inventoryText("e2e", c.Members, true,
			fmt.Sprintf("auth = true\nroot_password_file = %q\n", passwordPath))), 0o644)
	})
}

// SetupHosts boots the hosts, installs the etcd package everywhere and
// gives the control host SSH access to the others, host keys checked.
func (c *ClusterTest) SetupHosts() error {
	h := c.Hosts.withDefaults()
	if err := c.R.Step(fmt.Sprintf("boot %s, three member hosts and %d proxy hosts", h.Control, len(h.Proxies)), func() error {
		var err error
		if c.Control, err = c.TB.AddNode(c.Ctx, h.Control, h.Octet); err != nil {
			return err
		}
		for i := range 3 {
			n, err := c.TB.AddNode(c.Ctx, fmt.Sprintf("%s%d", h.Prefix, i), h.Octet+1+i)
			if err != nil {
				return err
			}
			c.Members = append(c.Members, n)
		}
		for i, name := range h.Proxies {
			n, err := c.TB.AddNode(c.Ctx, name, h.Octet+4+i)
			if err != nil {
				return err
			}
			c.Proxies = append(c.Proxies, n)
		}
		return nil
	}); err != nil {
		return err
	}
	// The writer on the control host records each step with its
	// operations.
	c.R.OnStep = func(name string) { _ = c.Control.WriteFile("root/writer.step", []byte(name+"\n"), 0o644) }
	others := append(append([]*testbed.Node{}, c.Members...), c.Proxies...)
	if err := c.R.Step("install the etcd deb on every host", func() error {
		return parallel(append([]*testbed.Node{c.Control}, others...), func(n *testbed.Node) error { return installDeb(c.Ctx, n, c.Pk.V1, c.Pk) })
	}); err != nil {
		return err
	}
	return c.R.Step("SSH: control's key on the other hosts; control's known_hosts written by ssh (hashed) and ssh-keyscan -t ecdsa, as operators do", func() error {
		if _, err := c.ctl("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", "/root/.ssh/id_ed25519"); err != nil {
			return err
		}
		pub, err := c.Control.ReadFile("root/.ssh/id_ed25519.pub")
		if err != nil {
			return err
		}
		for _, m := range others {
			if err := m.WriteFile("root/.ssh/authorized_keys", pub, 0o600); err != nil {
				return err
			}
			if _, err := m.Exec(c.Ctx, "systemctl", "restart", "ssh"); err != nil {
				return err
			}
		}
		// Each host has three host keys; known_hosts holds one per host:
		// the one ssh negotiates, hashed (Debian's ssh_config), for most,
		// an ecdsa line from ssh-keyscan for the last.
		for _, m := range others[:len(others)-1] {
			if out, err := c.ctl("ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new", "root@"+m.IP, "true"); err != nil {
				return fmt.Errorf("ssh to %s: %w\n%s", m.Name, err, out)
			}
		}
		last := others[len(others)-1]
		if _, err := c.Control.Sh(c.Ctx, "ssh-keyscan -t ecdsa "+last.IP+" 2>/dev/null >> /root/.ssh/known_hosts"); err != nil {
			return err
		}
		known, _ := c.Control.ReadFile("root/.ssh/known_hosts")
		if n := strings.Count(string(known), "\n"); n != len(others) || !strings.HasPrefix(string(known), "|1|") {
			return fmt.Errorf("control's known_hosts: want one line per host, hashed by ssh:\n%s", known)
		}
		return nil
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
func (c *ClusterTest) leader() (*testbed.Node, error) {
	var l *testbed.Node
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

func (c *ClusterTest) member(name string) *testbed.Node {
	for _, m := range c.Members {
		if m.Name == name {
			return m
		}
	}
	return nil
}

func (c *ClusterTest) others(n *testbed.Node) []*testbed.Node {
	var out []*testbed.Node
	for _, m := range c.Members {
		if m != n {
			out = append(out, m)
		}
	}
	return out
}

func (c *ClusterTest) writerStats() writer.Stats {
	var s writer.Stats
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
func localctl(ctx context.Context, n *testbed.Node, args ...string) (string, error) {
	argv := append([]string{"etcdctl", "--endpoints=https://127.0.0.1:2379", "--cacert=/etc/etcd/pki/ca.crt",
		"--cert=/etc/etcd/pki/client.crt", "--key=/etc/etcd/pki/client.key"}, args...)
	return n.Exec(ctx, argv...)
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
