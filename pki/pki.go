// Package pki issues the certificates an inventory needs: a cluster CA
// (ECDSA P-256), and for every host the leaves with the names and
// addresses the inventory gives it. It only computes bytes (with
// crypto/rand); package workflow/certs keeps them in a certificate
// directory, whose layout (DIR/ca.crt, DIR/HOST/*, DIR/_operator/*) is
// named here so that clients find the operator certificate.
package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/etcd-appliance/appliance/inventory"
)

// Validity of what is issued, and when a leaf is due for renewal.
const (
	CAValidity   = 10 * 365 * 24 * time.Hour
	LeafValidity = 365 * 24 * time.Hour
	RenewBefore  = 30 * 24 * time.Hour
)

// Usage of a leaf.
type Usage int

// Usages: a server certificate also authenticates its holder as a client
// (the node's readiness probe presents it when client certificates are
// required); peers authenticate both ways.
const (
	Server Usage = iota
	Peer
	Client
)

// Leaf describes one certificate a host needs.
type Leaf struct {
	// Name is the file name without extension: server, peer or client.
	Name       string
	Usage      Usage
	CommonName string
	// Unit is the subject's organizational unit, for certificates that
	// must not carry a common name.
	Unit     string
	DNSNames []string
	IPs      []net.IP
}

// PeerCN is the common name of every member's peer certificate, and the
// only one a peer listener accepts.
const PeerCN = "etcd-peer"

// OperatorCN is the common name of operator client certificates: with
// auth on, etcd takes it as the user name, and root may do everything.
const OperatorCN = "root"

// HostLeaves returns what one host needs, by the inventory's defaults and
// validation (defaulted, valid inventory).
func HostLeaves(inv *inventory.Inventory, h inventory.Host) []Leaf {
	dns, ips := sans(h)
	client := Leaf{Name: "client", Usage: Client, CommonName: OperatorCN}
	if h.Member != nil {
		return []Leaf{
			{Name: "server", Usage: Server, CommonName: h.Name, DNSNames: dns, IPs: ips},
			// Every member's peer certificate has one common name, the
			// one peer listeners accept (ETCD_PEER_CERT_ALLOWED_CN): other
			// certificates of the CA (clients, the operator's) are refused
			// there, and adding a member changes no member's settings.
			{Name: "peer", Usage: Peer, CommonName: PeerCN, Unit: "member " + h.Name, DNSNames: dns, IPs: ips},
			client,
		}
	}
	return []Leaf{
		{Name: "server", Usage: Server, CommonName: h.Name, DNSNames: dns, IPs: ips},
		// The proxy's certificate towards the members. etcd grpc-proxy
		// refuses one with a common name (with auth on etcd would take it
		// as a user, and every client of the proxy would act as that
		// user): the proxy names it in the organizational unit instead.
		{Name: "client", Usage: Client, Unit: "proxy " + h.Name},
	}
}

// leafNotAfter is a leaf's expiry: a year on, or the CA's expiry if
// sooner, since a leaf cannot outlive its CA (an adopted one may expire
// soon).
func leafNotAfter(now time.Time, ca *x509.Certificate) time.Time {
	if t := now.Add(LeafValidity); t.Before(ca.NotAfter) {
		return t
	}
	return ca.NotAfter
}

// OperatorDir is where a certificate directory keeps the workstation's
// client certificate (host names cannot start with '_').
const OperatorDir = "_operator"

// Dir is an inventory's certificate directory: flag when set, else certs/
// beside the inventory file (in inventoryDir).
func Dir(flag, inventoryDir string) string {
	if flag != "" {
		return flag
	}
	return filepath.Join(inventoryDir, "certs")
}

// OperatorFiles are the CA, client certificate and key of the operator in
// the certificate directory dir.
func OperatorFiles(dir string) (ca, cert, key string) {
	op := filepath.Join(dir, OperatorDir)
	return filepath.Join(op, "ca.crt"), filepath.Join(op, "client.crt"), filepath.Join(op, "client.key")
}

// OperatorLeaf is the client certificate of the operator's workstation.
func OperatorLeaf() Leaf {
	return Leaf{Name: "client", Usage: Client, CommonName: OperatorCN}
}

// sans lists every name and address a host may be reached by, plus
// localhost and the loopback addresses for local clients.
func sans(h inventory.Host) ([]string, []net.IP) {
	dnsSet := map[string]bool{"localhost": true}
	var ips []net.IP
	addIP := func(ip net.IP) {
		for _, x := range ips {
			if x.Equal(ip) {
				return
			}
		}
		ips = append(ips, ip)
	}
	addIP(net.ParseIP("127.0.0.1"))
	addIP(net.ParseIP("::1"))
	for _, a := range []string{h.Address, h.Name, ipOf(h)} {
		if a == "" {
			continue
		}
		if ip := net.ParseIP(a); ip != nil {
			addIP(ip)
		} else {
			dnsSet[a] = true
		}
	}
	if h.Proxy != nil {
		if host, _, err := net.SplitHostPort(h.Proxy.Listen); err == nil {
			if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
				addIP(ip)
			}
		}
	}
	dns := make([]string, 0, len(dnsSet))
	for d := range dnsSet {
		dns = append(dns, d)
	}
	sort.Strings(dns)
	return dns, ips
}

func ipOf(h inventory.Host) string {
	if h.Member != nil {
		return h.Member.IP
	}
	return ""
}

// CA is a certificate authority with its key.
type CA struct {
	Cert *x509.Certificate
	// Key signs leaves: an ECDSA key of ours, or an adopted CA's ECDSA,
	// RSA or Ed25519 key.
	Key crypto.Signer
	PEM []byte
}

// NewCA creates the cluster CA.
func NewCA(cluster string, now time.Time) (*CA, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "etcd cluster " + cluster + " CA", Organization: []string{"etcd appliance"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SubjectKeyId:          keyID(&key.PublicKey),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, _ := x509.ParseCertificate(der)
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return &CA{Cert: cert, Key: key, PEM: encodeCert(der)}, keyPEM, nil
}

// ErrCAUnusable means a CA certificate or key cannot sign leaves.
var ErrCAUnusable = errors.New("CA unusable")

// LoadCA parses a CA certificate and its key: SEC 1 ("EC PRIVATE KEY"),
// PKCS#8 ("PRIVATE KEY": ECDSA, RSA or Ed25519) or PKCS#1 ("RSA PRIVATE
// KEY"). An encrypted key, a key of another certificate, or a certificate
// that is not a CA is refused with the fix.
func LoadCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := ParseCert(certPEM)
	if err != nil {
		return nil, err
	}
	if !cert.IsCA || cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("%w: ca.crt (%s) is not a CA certificate (no CA basic constraint or certSign usage); fix: use a CA certificate, or start over in an empty directory",
			ErrCAUnusable, cert.Subject)
	}
	b, _ := pem.Decode(keyPEM)
	if b == nil {
		return nil, fmt.Errorf("%w: ca.key holds no PEM block; fix: put the CA's private key there in PEM", ErrCAUnusable)
	}
	if b.Type == "ENCRYPTED PRIVATE KEY" || b.Headers["Proc-Type"] != "" {
		return nil, fmt.Errorf("%w: ca.key is encrypted; fix: decrypt it into a file only you can read (openssl pkey -in ca.key -out ca.key.plain), and keep the encrypted copy offline", ErrCAUnusable)
	}
	var key any
	switch b.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(b.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	default:
		err = fmt.Errorf("a %q block is not a private key", b.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: ca.key: %v; fix: write the key as PEM (openssl pkey -in ca.key -out ca.key.pem)", ErrCAUnusable, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: ca.key holds a %T, which cannot sign", ErrCAUnusable, key)
	}
	if pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("%w: ca.key does not belong to ca.crt; fix: put the matching key there, or start over in an empty directory", ErrCAUnusable)
	}
	return &CA{Cert: cert, Key: signer, PEM: certPEM}, nil
}

// Fingerprint is the SHA-256 fingerprint of a certificate, as openssl
// x509 -fingerprint -sha256 prints it.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(parts, ":")
}

func subject(l Leaf) pkix.Name {
	n := pkix.Name{CommonName: l.CommonName, Organization: []string{"etcd appliance"}}
	if l.Unit != "" {
		n.OrganizationalUnit = []string{l.Unit}
	}
	return n
}

// Issue signs a new leaf and returns its certificate and key in PEM.
func (ca *CA) Issue(l Leaf, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:   serial(),
		Subject:        subject(l),
		NotBefore:      now.Add(-time.Hour),
		NotAfter:       leafNotAfter(now, ca.Cert),
		KeyUsage:       x509.KeyUsageDigitalSignature,
		DNSNames:       l.DNSNames,
		IPAddresses:    l.IPs,
		AuthorityKeyId: ca.Cert.SubjectKeyId,
	}
	switch l.Usage {
	case Server, Peer:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	case Client:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return encodeCert(der), keyPEM, nil
}

// Check reports why an existing leaf must be issued again: not from this
// CA, names or addresses that differ from what the inventory gives, or
// expiring within RenewBefore. It returns "" when the leaf is fine.
func (ca *CA) Check(certPEM []byte, l Leaf, now time.Time) string {
	cert, err := ParseCert(certPEM)
	if err != nil {
		return "unreadable: " + err.Error()
	}
	if err := cert.CheckSignatureFrom(ca.Cert); err != nil {
		return "not signed by this CA"
	}
	if cert.Subject.CommonName != l.CommonName {
		if l.CommonName == "" {
			return fmt.Sprintf("common name %s, want none (etcd grpc-proxy refuses a client certificate with one)", cert.Subject.CommonName)
		}
		return fmt.Sprintf("common name %s, want %s", cert.Subject.CommonName, l.CommonName)
	}
	if !sameStrings(cert.DNSNames, l.DNSNames) || !sameIPs(cert.IPAddresses, l.IPs) {
		return "names or addresses changed in the inventory"
	}
	if left := cert.NotAfter.Sub(now); left < RenewBefore {
		return fmt.Sprintf("expires %s (in %d days)", cert.NotAfter.Format("2006-01-02"), int(left.Hours()/24))
	}
	return ""
}

// ParseCert parses one PEM certificate.
func ParseCert(b []byte) (*x509.Certificate, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(blk.Bytes)
}

// Expiring returns a warning when cert expires within RenewBefore.
func Expiring(what string, cert *x509.Certificate, now time.Time) string {
	left := cert.NotAfter.Sub(now)
	switch {
	case left <= 0:
		return fmt.Sprintf("%s expired on %s: renew it with `etcd-installer certs renew`", what, cert.NotAfter.Format("2006-01-02"))
	case left < RenewBefore:
		return fmt.Sprintf("%s expires on %s, in %d days: renew it with `etcd-installer certs renew`", what, cert.NotAfter.Format("2006-01-02"), int(left.Hours()/24))
	}
	return ""
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	return n
}

func keyID(pub *ecdsa.PublicKey) []byte {
	der, _ := x509.MarshalPKIXPublicKey(pub)
	sum := sha256.Sum256(der)
	return sum[:20]
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func encodeKey(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

func sameStrings(a, b []string) bool {
	a, b = append([]string(nil), a...), append([]string(nil), b...)
	sort.Strings(a)
	sort.Strings(b)
	return strings.Join(a, ",") == strings.Join(b, ",")
}

func sameIPs(a, b []net.IP) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		found := false
		for _, y := range b {
			found = found || x.Equal(y)
		}
		if !found {
			return false
		}
	}
	return true
}

// SameKeyPair reports whether a key belongs to a certificate.
func SameKeyPair(certPEM, keyPEM []byte) bool {
	cert, err := ParseCert(certPEM)
	if err != nil {
		return false
	}
	b, _ := pem.Decode(keyPEM)
	if b == nil {
		return false
	}
	k, err := x509.ParseECPrivateKey(b.Bytes)
	if err != nil {
		return false
	}
	return bytes.Equal(keyID(&k.PublicKey), keyID(cert.PublicKey.(*ecdsa.PublicKey)))
}
