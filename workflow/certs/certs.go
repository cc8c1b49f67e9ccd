// Package certs keeps an inventory's certificate directory complete on
// the operator's machine (Ensure: the cluster CA, whose key never leaves
// it, and every host's and the operator's certificates) and hands each
// host exactly its own files, refusing ones that no longer fit (HostFiles).
package certs

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/etcd-appliance/appliance/internal/atomicfile"
	"github.com/etcd-appliance/appliance/inventory"
	"github.com/etcd-appliance/appliance/pki"
	"github.com/etcd-appliance/appliance/render"
	"github.com/etcd-appliance/appliance/workflow"
)

// ErrCAKey means the CA key is missing, so nothing can be issued.
var ErrCAKey = errors.New("CA key missing")

// CertAction is what EnsureCerts did with one file.
type CertAction struct {
	Path   string // relative to the certificate directory
	Action string // issued, kept, re-issued: REASON
}

// Ensure keeps the certificate directory of an inventory complete: the
// CA (ca.crt, ca.key: the key never leaves this directory), and for every
// host DIR/HOST/{ca,server,peer,client}.crt and keys, and the operator's
// DIR/_operator/client.crt. Valid material is kept; missing, foreign,
// outdated (names changed) or expiring leaves are issued again. With
// renew, every leaf is issued again; the CA never is. Every file written
// goes through plan: a dry run lists what would be issued.
func Ensure(dir string, inv *inventory.Inventory, now time.Time, renew bool, plan *workflow.Plan) ([]CertAction, error) {
	var acts []CertAction
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := plan.Do("", "create "+dir+" (0700)", func() error { return os.MkdirAll(dir, 0o700) }); err != nil {
			return nil, err
		}
	} else if err := Trusted(dir); err != nil {
		return nil, err
	}
	caCert, caKey := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	var ca *pki.CA
	certPEM, cerr := os.ReadFile(caCert)
	keyPEM, kerr := os.ReadFile(caKey)
	switch {
	case cerr == nil && kerr == nil:
		var err error
		if ca, err = pki.LoadCA(certPEM, keyPEM); err != nil {
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
		acts = append(acts, CertAction{"ca.crt", fmt.Sprintf("kept: the existing CA %q, SHA-256 %s, valid until %s",
			ca.Cert.Subject.String(), pki.Fingerprint(ca.Cert), ca.Cert.NotAfter.Format(time.DateOnly))})
	case errors.Is(cerr, fs.ErrNotExist) && errors.Is(kerr, fs.ErrNotExist):
		c, k, err := pki.NewCA(inv.Cluster.Name, now)
		if err != nil {
			return nil, err
		}
		if err := plan.Do("", "create the cluster CA "+caCert+" and its key "+caKey, func() error {
			if err := write(caKey, k, 0o600); err != nil {
				return err
			}
			return write(caCert, c.PEM, 0o644)
		}); err != nil {
			return nil, err
		}
		ca = c
		acts = append(acts, CertAction{"ca.crt", "issued"})
	case errors.Is(kerr, fs.ErrNotExist):
		return nil, fmt.Errorf("%w: %s exists without ca.key, so no certificate can be issued; restore the key, or start over in an empty directory (every host then needs the new certificates)",
			ErrCAKey, caCert)
	default:
		return nil, errors.Join(cerr, kerr)
	}

	ensure := func(sub string, l pki.Leaf) error {
		crt := filepath.Join(dir, sub, l.Name+".crt")
		key := filepath.Join(dir, sub, l.Name+".key")
		rel := filepath.Join(sub, l.Name+".crt")
		old, err := os.ReadFile(crt)
		oldKey, kerr := os.ReadFile(key)
		why := ""
		switch {
		case err != nil || kerr != nil:
			why = "issued"
		case !pki.SameKeyPair(old, oldKey):
			why = "re-issued: the key does not match"
		case renew:
			why = "re-issued: renew"
		default:
			if r := ca.Check(old, l, now); r != "" {
				why = "re-issued: " + r
			}
		}
		if why == "" {
			acts = append(acts, CertAction{rel, "kept"})
			return nil
		}
		what := "issue " + crt
		if r, ok := strings.CutPrefix(why, "re-issued: "); ok {
			what = "re-issue " + crt + " (" + r + ")"
		}
		if err := plan.Do("", what, func() error {
			c, k, err := ca.Issue(l, now)
			if err != nil {
				return err
			}
			if err := write(key, k, 0o600); err != nil {
				return err
			}
			return write(crt, c, 0o644)
		}); err != nil {
			return err
		}
		acts = append(acts, CertAction{rel, why})
		return nil
	}
	for _, h := range inv.Hosts() {
		for _, l := range pki.HostLeaves(inv, h) {
			if err := ensure(h.Name, l); err != nil {
				return acts, err
			}
		}
		if err := copyCA(dir, h.Name, ca.PEM, plan); err != nil {
			return acts, err
		}
	}
	if err := ensure(pki.OperatorDir, pki.OperatorLeaf()); err != nil {
		return acts, err
	}
	return acts, copyCA(dir, pki.OperatorDir, ca.PEM, plan)
}

// ErrUntrusted means a certificate directory could have been changed by
// someone else: its CA would sign whatever they planted.
var ErrUntrusted = errors.New("certificate directory not trusted")

// Trusted checks that the certificate directory dir and the CA material
// in it are only this user's: owned by them (or root), the directory and
// certificates writable by no one else, private keys readable by no one
// else, and none of them a symbolic link.
func Trusted(dir string) error {
	uid := os.Geteuid()
	check := func(p string, private bool) error {
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		st, _ := fi.Sys().(*syscall.Stat_t)
		fix := fmt.Sprintf("chown %d %s && chmod go-w %s", uid, p, p)
		if private {
			fix = fmt.Sprintf("chown %d %s && chmod 600 %s", uid, p, p)
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("%w: %s is a symbolic link; fix: put the file itself there", ErrUntrusted, p)
		case st != nil && int(st.Uid) != uid && st.Uid != 0:
			return fmt.Errorf("%w: %s belongs to uid %d, not to you (%d): they could have planted it; fix: check it, then %s", ErrUntrusted, p, st.Uid, uid, fix)
		case fi.Mode().Perm()&0o022 != 0:
			return fmt.Errorf("%w: %s has mode %04o: others can change it; fix: check it, then %s", ErrUntrusted, p, fi.Mode().Perm(), fix)
		case private && fi.Mode().Perm()&0o077 != 0:
			return fmt.Errorf("%w: %s has mode %04o: others can read the private key; fix: %s, and issue a new CA if others may have copied it", ErrUntrusted, p, fi.Mode().Perm(), fix)
		}
		return nil
	}
	errs := []error{check(dir, false), check(filepath.Join(dir, "ca.crt"), false), check(filepath.Join(dir, "ca.key"), true)}
	keys, _ := filepath.Glob(filepath.Join(dir, "*", "*.key"))
	for _, k := range keys {
		errs = append(errs, check(filepath.Dir(k), false), check(k, true))
	}
	return errors.Join(errs...)
}

// copyCA puts the CA certificate into a host's directory, unless it is
// there already.
func copyCA(dir, sub string, caPEM []byte, plan *workflow.Plan) error {
	p := filepath.Join(dir, sub, "ca.crt")
	if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, caPEM) {
		return nil
	}
	return plan.Do("", "copy the CA certificate to "+p, func() error { return write(p, caPEM, 0o644) })
}

func write(p string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	_, err := atomicfile.Write(p, data, atomicfile.Options{Mode: mode, UID: -1, GID: -1})
	return err
}

// HostFiles are a host's certificates and keys from a certificate
// directory, placed where the inventory's [tls] paths say, each readable
// by who uses it: the etcd service (server, peer, a proxy's keys) or root
// (a member host's client key, for etcdctl). etcd reads certificates at
// every handshake, so renewed files need no restart.
func HostFiles(dir string, inv *inventory.Inventory, host string) ([]render.File, error) {
	h, ok := inv.Host(host)
	if !ok {
		return nil, fmt.Errorf("no host %s", host)
	}
	t := inv.TLS
	type item struct {
		src, dst     string
		mode         fs.FileMode
		owner, group string
	}
	items := []item{
		{"ca.crt", t.CAFile, 0o644, "root", "root"},
		{"server.crt", t.CertFile, 0o644, "root", "root"},
		{"server.key", t.KeyFile, 0o600, "etcd", "etcd"},
		{"client.crt", t.ClientCertFile, 0o644, "root", "root"},
		{"client.key", t.ClientKeyFile, 0o600, "root", "root"},
	}
	if h.Member != nil {
		items = append(items,
			item{"peer.crt", t.PeerCertFile, 0o644, "root", "root"},
			item{"peer.key", t.PeerKeyFile, 0o600, "etcd", "etcd"})
	} else {
		// The proxy itself (User=etcd) uses its client key.
		items[4].owner, items[4].group = "etcd", "etcd"
	}
	var files []render.File
	read := map[string][]byte{}
	for _, it := range items {
		b, err := os.ReadFile(filepath.Join(dir, host, it.src))
		if err != nil {
			return nil, fmt.Errorf("%w: run `etcd-installer certs %s --dir %s` first", err, inv.Source, dir)
		}
		read[it.src] = b
		files = append(files, render.File{Path: it.dst, Data: b, Mode: it.mode, Owner: it.owner, Group: it.group, Secret: strings.HasSuffix(it.src, ".key")})
	}
	if err := checkHostLeaves(inv, h, read, time.Now()); err != nil {
		return nil, fmt.Errorf("%s: %w; fix: run `etcd-installer certs %s --dir %s` (it re-issues exactly these), then apply again",
			host, err, inv.Source, dir)
	}
	return files, nil
}

// ErrStaleCert means a host's certificate in the certificate directory no
// longer fits the inventory, the CA or the calendar.
var ErrStaleCert = errors.New("certificate does not fit")

// checkHostLeaves refuses to hand a host certificates it would fail with:
// names or addresses the inventory no longer gives it, another CA, a key
// that is not the certificate's, or an expired one. Certificates that
// only expire soon are handed out: status and doctor warn about them.
func checkHostLeaves(inv *inventory.Inventory, h inventory.Host, files map[string][]byte, t time.Time) error {
	caCert, err := pki.ParseCert(files["ca.crt"])
	if err != nil {
		return fmt.Errorf("%w: ca.crt: %w", ErrStaleCert, err)
	}
	ca := &pki.CA{Cert: caCert}
	var errs []error
	for _, l := range pki.HostLeaves(inv, h) {
		crt, key := files[l.Name+".crt"], files[l.Name+".key"]
		if c, err := pki.ParseCert(crt); err == nil && !c.NotAfter.After(t) {
			errs = append(errs, fmt.Errorf("%w: %s.crt: expired on %s", ErrStaleCert, l.Name, c.NotAfter.Format(time.DateOnly)))
			continue
		}
		// Check with its "expiring soon" margin moved out of the way: those
		// are handed out.
		if why := ca.Check(crt, l, t.Add(-pki.RenewBefore)); why != "" {
			errs = append(errs, fmt.Errorf("%w: %s.crt: %s", ErrStaleCert, l.Name, why))
		} else if !pki.SameKeyPair(crt, key) {
			errs = append(errs, fmt.Errorf("%w: %s.key does not belong to %s.crt", ErrStaleCert, l.Name, l.Name))
		}
	}
	return errors.Join(errs...)
}

// LoadCA reads the CA of the certificate directory dir, key included.
func LoadCA(dir string) (*pki.CA, error) {
	c, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		return nil, err
	}
	k, err := os.ReadFile(filepath.Join(dir, "ca.key"))
	if err != nil {
		return nil, err
	}
	return pki.LoadCA(c, k)
}

// Source hands hosts their certificates from an inventory's certificate
// directory.
type Source func(host string) ([]render.File, error)

// From is the Source of the certificate directory dirFlag (certs/ beside
// the inventory when empty): nil when TLS is off, or when the default
// directory does not exist (apply then expects the files on the hosts).
// A named directory without a CA is an error.
func From(inv *inventory.Inventory, dirFlag string) (Source, error) {
	if !inv.TLSEnabled() {
		return nil, nil
	}
	dir := pki.Dir(dirFlag, inv.Dir)
	if _, err := os.Stat(filepath.Join(dir, "ca.crt")); err != nil {
		if dirFlag != "" {
			return nil, fmt.Errorf("--certs %s: no ca.crt there; fix: run `etcd-installer certs %s --dir %s` first", dir, inv.Source, dir)
		}
		return nil, nil
	}
	return func(host string) ([]render.File, error) {
		fs, err := HostFiles(dir, inv, host)
		if err != nil {
			return nil, fmt.Errorf("certificates for %s: %w", host, err)
		}
		return fs, nil
	}, nil
}

// For is host's files from the Source; none from a nil Source.
func (s Source) For(host string) ([]render.File, error) {
	if s == nil {
		return nil, nil
	}
	return s(host)
}
