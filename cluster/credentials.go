package cluster

import (
	"bytes"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/etcd-appliance/appliance/inventory"
	"github.com/etcd-appliance/appliance/pki"
)

// ClientFiles say how a client proves who it is. Empty fields are chosen
// per inventory: on a host, the inventory's certificate paths; on the
// operator's machine, the operator certificate in the certificate
// directory; with auth but without TLS, root and the password file the
// inventory names.
type ClientFiles struct {
	CA, Cert, Key string
	// CertsDir is the certificate directory ("" for certs/ beside the
	// inventory).
	CertsDir string
	// Root is where the host's files are ("" for /; tests use another).
	Root string
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

// sameCA reports whether two CA files share a certificate: the same CA
// whatever their encoding, or a bundle that holds it.
func sameCA(a, b string) bool {
	certs := func(p string) [][]byte {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		var out [][]byte
		for {
			var blk *pem.Block
			blk, data = pem.Decode(data)
			if blk == nil {
				return out
			}
			if blk.Type == "CERTIFICATE" {
				out = append(out, blk.Bytes)
			}
		}
	}
	other := certs(b)
	for _, x := range certs(a) {
		for _, y := range other {
			if bytes.Equal(x, y) {
				return true
			}
		}
	}
	return false
}

// Resolve picks the CA, certificate and key to connect with.
func (c ClientFiles) Resolve(inv *inventory.Inventory) (ca, cert, key string) {
	pick := func(flag, def string) string {
		if flag != "" {
			return flag
		}
		return def
	}
	host := [3]string{filepath.Join("/", c.Root, inv.TLS.CAFile), filepath.Join("/", c.Root, inv.TLS.ClientCertFile), filepath.Join("/", c.Root, inv.TLS.ClientKeyFile)}
	// A proxy host's client certificate has no common name: with auth on
	// it names no user, so the operator's certificate serves better. And
	// the host's files sit at paths every inventory shares: on a host of
	// another cluster they are that cluster's (another CA), while the
	// operator's files beside this inventory are made for it.
	if c.CA == "" && c.Cert == "" && c.Key == "" {
		oca, ocert, okey := pki.OperatorFiles(pki.Dir(c.CertsDir, inv.Dir))
		if readable(oca, ocert, okey) && (!readable(host[:]...) || !namesUser(host[1]) || !sameCA(host[0], oca)) {
			host = [3]string{oca, ocert, okey}
		}
	}
	return pick(c.CA, host[0]), pick(c.Cert, host[1]), pick(c.Key, host[2])
}

// TLS is the client TLS configuration (nil when the inventory has no TLS).
func (c ClientFiles) TLS(inv *inventory.Inventory) (*tls.Config, error) {
	if !inv.TLSEnabled() {
		return nil, nil
	}
	ca, cert, key := c.Resolve(inv)
	tc, err := ClientTLS(inv, ca, cert, key)
	if err != nil {
		return nil, fmt.Errorf("%w; fix: run this on a host of the cluster, or where `etcd-installer certs %s` wrote its directory (--certs), or name the files with --cacert, --cert and --key",
			err, inv.Source)
	}
	return tc, nil
}

// Credentials are the TLS configuration and, for auth without TLS, root's
// password from the inventory's root_password_file when this machine has
// it.
func (c ClientFiles) Credentials(inv *inventory.Inventory) (Credentials, error) {
	tc, err := c.TLS(inv)
	if err != nil {
		return Credentials{}, err
	}
	cr := Credentials{TLS: tc}
	if inv.Cluster.Auth && tc == nil {
		pw, err := ReadPassword(inv.Cluster.RootPasswordFile)
		switch {
		case err == nil:
			cr.Username, cr.Password = RootUser, pw
		case !errors.Is(err, os.ErrNotExist):
			return cr, err
		}
	}
	return cr, nil
}

// Dialer connects to endpoints of the inventory's cluster with these
// credentials.
func (c ClientFiles) Dialer(inv *inventory.Inventory) Dialer {
	return func(eps []string) (Membership, error) {
		cr, err := c.Credentials(inv)
		if err != nil {
			return nil, err
		}
		return DialWith(eps, cr)
	}
}
