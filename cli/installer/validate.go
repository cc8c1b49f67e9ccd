package installer

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/etcd-appliance/appliance/inventory"
)

func newValidateCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "validate INVENTORY",
		Short: "Check an inventory and report every problem at once",
		Example: `  etcd-installer validate prod.toml
  etcd-installer example static > prod.toml && etcd-installer validate prod.toml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			i, err := load(args[0])
			if err != nil {
				return err
			}
			n := len(i.Members)
			tls := "off"
			if i.TLSEnabled() {
				tls = "on"
			}
			for _, w := range inventory.Warnings(i) {
				fmt.Fprintln(e.stderr, "warning:", w)
			}
			fmt.Fprintf(e.stdout, "%s: valid: cluster %s, %d member(s) tolerating %d failure(s), %d proxy host(s), bootstrap %s, TLS %s\n",
				args[0], i.Cluster.Name, n, (n-1)/2, len(i.Proxies), i.Cluster.Bootstrap, tls)
			return nil
		},
	}
}
