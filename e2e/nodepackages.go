package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/etcd-appliance/appliance/e2e/testbed"
)

// NodePackages checks issue 6's 11: on fresh hosts, installing the etcd
// package and each host's etcd-node package brings up a cluster.
func (c *ClusterTest) NodePackages() {
	ctx := c.Ctx
	c.R.Step("11. etcd-node packages from an inventory bring up a cluster on fresh hosts", func() error {
		var nodes []*testbed.Node
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
		err := parallel(nodes, func(n *testbed.Node) error {
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
			// What each host says of its member, for whoever reads this.
			for _, n := range nodes {
				out, _ := n.Sh(ctx, "systemctl status --no-pager -n 0 etcd; journalctl -u etcd --no-pager -o cat | tail -25")
				err = fmt.Errorf("%w\n--- %s:\n%s", err, n.Name, out)
			}
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
