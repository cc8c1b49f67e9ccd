package installer

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	inv "github.com/etcd-appliance/appliance/installer"
	"github.com/etcd-appliance/appliance/pki"
	"github.com/etcd-appliance/appliance/provision"
)

// clientFlags are how commands that talk to the cluster prove who they
// are. Without flags: on a host, the inventory's certificate paths; on
// the operator's machine, the operator certificate in the inventory's
// certificate directory; with auth but without TLS, root and the password
// file the inventory names.
type clientFlags struct {
	cacert, cert, key string
	certs             string
}

func (c *clientFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&c.cacert, "cacert", "", "cluster CA certificate (default: the inventory's ca_file on a host, else DIR/_operator/ca.crt of --certs)")
	cmd.Flags().StringVar(&c.cert, "cert", "", "client certificate (default: the inventory's client_cert_file on a host, else DIR/_operator/client.crt)")
	cmd.Flags().StringVar(&c.key, "key", "", "client key (default: the inventory's client_key_file on a host, else DIR/_operator/client.key)")
	addCertsFlag(cmd, &c.certs)
}

func addCertsFlag(cmd *cobra.Command, dir *string) {
	if cmd.Flags().Lookup("certs") == nil {
		cmd.Flags().StringVar(dir, "certs", "", "certificate directory of `etcd-installer certs` (default: certs/ beside the inventory)")
	}
}

// certsDir is the inventory's certificate directory: the flag, else certs/
// beside the inventory.
func certsDir(flag string, i *inv.Inventory) string {
	if flag != "" {
		return flag
	}
	return filepath.Join(i.Dir, "certs")
}

func readable(paths ...string) bool {
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return false
		}
		f.Close()
	}
	return true
}

// namesUser reports whether the certificate at path has a common name,
// which etcd takes as the user when auth is on.
func namesUser(path string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	cert, err := pki.ParseCert(b)
	return err == nil && cert.Subject.CommonName != ""
}

// files picks the CA, certificate and key to connect with.
func (c *clientFlags) files(i *inv.Inventory) (ca, cert, key string) {
	pick := func(flag, def string) string {
		if flag != "" {
			return flag
		}
		return def
	}
	host := [3]string{i.TLS.CAFile, i.TLS.ClientCertFile, i.TLS.ClientKeyFile}
	// A proxy host's client certificate has no common name: with auth on
	// it names no user, so the operator's certificate serves better.
	if c.cacert == "" && c.cert == "" && c.key == "" && (!readable(host[:]...) || !namesUser(host[1])) {
		op := filepath.Join(certsDir(c.certs, i), provision.OperatorDir)
		if o := [3]string{filepath.Join(op, "ca.crt"), filepath.Join(op, "client.crt"), filepath.Join(op, "client.key")}; readable(o[:]...) {
			host = o
		}
	}
	return pick(c.cacert, host[0]), pick(c.cert, host[1]), pick(c.key, host[2])
}

func (c *clientFlags) tls(i *inv.Inventory) (*tls.Config, error) {
	if !i.TLSEnabled() {
		return nil, nil
	}
	ca, cert, key := c.files(i)
	tc, err := provision.ClientTLS(i, ca, cert, key)
	if err != nil {
		return nil, fmt.Errorf("%w; fix: run this on a host of the cluster, or where `etcd-installer certs %s` wrote its directory (--certs), or name the files with --cacert, --cert and --key",
			err, i.Source)
	}
	return tc, nil
}

// credentials are the TLS configuration and, for auth without TLS, root's
// password from the inventory's root_password_file when this machine has
// it.
func (c *clientFlags) credentials(i *inv.Inventory) (provision.Credentials, error) {
	tc, err := c.tls(i)
	if err != nil {
		return provision.Credentials{}, err
	}
	cr := provision.Credentials{TLS: tc}
	if i.Cluster.Auth && tc == nil {
		pw, err := provision.ReadPassword(i.Cluster.RootPasswordFile)
		switch {
		case err == nil:
			cr.Username, cr.Password = provision.RootUser, pw
		case !errors.Is(err, os.ErrNotExist):
			return cr, err
		}
	}
	return cr, nil
}

// dialer returns a function that connects to endpoints of the cluster.
func (c *clientFlags) dialer(i *inv.Inventory) func([]string) (provision.Membership, error) {
	return func(eps []string) (provision.Membership, error) {
		cr, err := c.credentials(i)
		if err != nil {
			return nil, err
		}
		return provision.DialWith(eps, cr)
	}
}
