package installer

import (
	"crypto/tls"

	"github.com/spf13/cobra"

	inv "github.com/etcd-appliance/appliance/installer"
	"github.com/etcd-appliance/appliance/provision"
)

// clientFlags are how commands that talk to the cluster find its TLS
// material; by default the inventory's paths on this host.
type clientFlags struct {
	cacert, cert, key string
}

func (c *clientFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&c.cacert, "cacert", "", "cluster CA certificate (default: the inventory's ca_file)")
	cmd.Flags().StringVar(&c.cert, "cert", "", "client certificate (default: the inventory's client_cert_file)")
	cmd.Flags().StringVar(&c.key, "key", "", "client key (default: the inventory's client_key_file)")
}

func (c *clientFlags) tls(i *inv.Inventory) (*tls.Config, error) {
	pick := func(flag, def string) string {
		if flag != "" {
			return flag
		}
		return def
	}
	return provision.ClientTLS(i, pick(c.cacert, i.TLS.CAFile), pick(c.cert, i.TLS.ClientCertFile), pick(c.key, i.TLS.ClientKeyFile))
}

// dialer returns a function that connects to endpoints of the cluster.
func (c *clientFlags) dialer(i *inv.Inventory) func([]string) (provision.Membership, error) {
	return func(eps []string) (provision.Membership, error) {
		tc, err := c.tls(i)
		if err != nil {
			return nil, err
		}
		return provision.Dial(eps, tc)
	}
}
