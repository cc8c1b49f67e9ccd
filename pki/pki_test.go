package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/etcd-appliance/appliance/inventory"
	"github.com/etcd-appliance/appliance/inventory/inventorytest"
)

// inventoryText names its members by IPv4, DNS name and IPv6, with a
// proxy listening on an address of its own.
var inventoryText = inventorytest.Text("prod", "", []string{"10.0.0.10", "etcd1.example.com", "fd00::12"}, nil) +
	"[[proxy]]\nname = \"proxy0\"\naddress = \"10.0.0.20\"\nlisten = \"10.0.0.21:23790\"\n"

func testInventory(t *testing.T) *inventory.Inventory {
	t.Helper()
	inv, err := inventory.Parse("prod.toml", []byte(inventoryText))
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

var now = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func leaves(t *testing.T, inv *inventory.Inventory, host string) map[string]Leaf {
	t.Helper()
	h, ok := inv.Host(host)
	if !ok {
		t.Fatalf("no host %s", host)
	}
	m := map[string]Leaf{}
	for _, l := range HostLeaves(inv, h) {
		m[l.Name] = l
	}
	return m
}

func ipStrings(ips []net.IP) []string {
	var s []string
	for _, ip := range ips {
		s = append(s, ip.String())
	}
	slices.Sort(s)
	return s
}

func TestSANsCoverEveryNameAndAddress(t *testing.T) {
	inv := testInventory(t)
	ca, _, err := NewCA("prod", now)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		host, leaf string
		dns, ips   []string
	}{
		{"etcd0", "server", []string{"etcd0", "localhost"}, []string{"10.0.0.10", "127.0.0.1", "::1"}},
		{"etcd0", "peer", []string{"etcd0", "localhost"}, []string{"10.0.0.10", "127.0.0.1", "::1"}},
		{"etcd1", "server", []string{"etcd1", "etcd1.example.com", "localhost"}, []string{"127.0.0.1", "::1"}},
		{"etcd2", "peer", []string{"etcd2", "localhost"}, []string{"127.0.0.1", "::1", "fd00::12"}},
		// A proxy answers on its listen address too.
		{"proxy0", "server", []string{"localhost", "proxy0"}, []string{"10.0.0.20", "10.0.0.21", "127.0.0.1", "::1"}},
	}
	for _, c := range cases {
		l, ok := leaves(t, inv, c.host)[c.leaf]
		if !ok {
			t.Fatalf("%s has no %s leaf", c.host, c.leaf)
		}
		certPEM, _, err := ca.Issue(l, now)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := ParseCert(certPEM)
		if err != nil {
			t.Fatal(err)
		}
		dns := slices.Clone(cert.DNSNames)
		slices.Sort(dns)
		if !slices.Equal(dns, c.dns) {
			t.Errorf("%s %s DNS SANs = %v, want %v", c.host, c.leaf, dns, c.dns)
		}
		if got := ipStrings(cert.IPAddresses); !slices.Equal(got, c.ips) {
			t.Errorf("%s %s IP SANs = %v, want %v", c.host, c.leaf, got, c.ips)
		}
		// Verifiable for each name as a TLS client would.
		pool := x509.NewCertPool()
		pool.AddCert(ca.Cert)
		for _, name := range append(c.dns, c.ips...) {
			if err := cert.VerifyHostname(name); err != nil {
				t.Errorf("%s %s: %v", c.host, c.leaf, err)
			}
		}
		if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("%s %s does not verify as a server: %v", c.host, c.leaf, err)
		}
	}
}

func TestKeyUsageAndValidity(t *testing.T) {
	inv := testInventory(t)
	ca, caKey, err := NewCA("prod", now)
	if err != nil {
		t.Fatal(err)
	}
	if !ca.Cert.IsCA || ca.Cert.KeyUsage&x509.KeyUsageCertSign == 0 || !ca.Cert.MaxPathLenZero {
		t.Errorf("CA: IsCA=%v usage=%v maxPathLenZero=%v", ca.Cert.IsCA, ca.Cert.KeyUsage, ca.Cert.MaxPathLenZero)
	}
	if got := ca.Cert.NotAfter.Sub(now); got < 9*365*24*time.Hour {
		t.Errorf("CA valid for %s only", got)
	}
	if k, ok := ca.Cert.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("CA key is %T, want ECDSA P-256", ca.Cert.PublicKey)
	}
	if _, err := LoadCA(ca.PEM, caKey); err != nil {
		t.Errorf("LoadCA of a fresh CA: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	type want struct {
		server, client bool
		cn             string
	}
	cases := map[string]map[string]want{
		"etcd0":  {"server": {true, true, "etcd0"}, "peer": {true, true, PeerCN}, "client": {false, true, OperatorCN}},
		"proxy0": {"server": {true, true, "proxy0"}, "client": {false, true, ""}},
	}
	for host, byLeaf := range cases {
		ls := leaves(t, inv, host)
		if len(ls) != len(byLeaf) {
			t.Errorf("%s has %d leaves, want %d", host, len(ls), len(byLeaf))
		}
		for name, w := range byLeaf {
			certPEM, keyPEM, err := ca.Issue(ls[name], now)
			if err != nil {
				t.Fatal(err)
			}
			if !SameKeyPair(certPEM, keyPEM) {
				t.Errorf("%s %s: key does not match", host, name)
			}
			cert, _ := ParseCert(certPEM)
			if cert.Subject.CommonName != w.cn {
				t.Errorf("%s %s CN = %q, want %q", host, name, cert.Subject.CommonName, w.cn)
			}
			if cert.IsCA {
				t.Errorf("%s %s is a CA", host, name)
			}
			if d := cert.NotAfter.Sub(now); d < 364*24*time.Hour || d > 366*24*time.Hour {
				t.Errorf("%s %s valid for %s, want a year", host, name, d)
			}
			if cert.NotBefore.After(now) {
				t.Errorf("%s %s not valid yet at issue time", host, name)
			}
			for usage, ok := range map[x509.ExtKeyUsage]bool{x509.ExtKeyUsageServerAuth: w.server, x509.ExtKeyUsageClientAuth: w.client} {
				_, err := cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}})
				if (err == nil) != ok {
					t.Errorf("%s %s usage %v: verify error %v, want usable=%v", host, name, usage, err, ok)
				}
			}
		}
	}
	// Another CA's key is refused for this CA's certificate.
	_, otherKey, _ := NewCA("other", now)
	if _, err := LoadCA(ca.PEM, otherKey); err == nil {
		t.Error("LoadCA accepted a key of another CA")
	}
}

func TestCheckReasons(t *testing.T) {
	inv := testInventory(t)
	ca, _, _ := NewCA("prod", now)
	other, _, _ := NewCA("other", now)
	l := leaves(t, inv, "etcd0")["server"]
	good, _, _ := ca.Issue(l, now)
	if r := ca.Check(good, l, now); r != "" {
		t.Errorf("fresh leaf: %q", r)
	}
	foreign, _, _ := other.Issue(l, now)
	moved := l
	moved.IPs = append(slices.Clone(l.IPs), net.ParseIP("10.0.0.99"))
	cases := []struct {
		name string
		cert []byte
		leaf Leaf
		at   time.Time
		want string
	}{
		{"other CA", foreign, l, now, "not signed by this CA"},
		{"address added", good, moved, now, "names or addresses changed in the inventory"},
		{"29 days left", good, l, now.Add(LeafValidity - 29*24*time.Hour), "expires 2027-11-22 (in 29 days)"},
		{"31 days left", good, l, now.Add(LeafValidity - 31*24*time.Hour), ""},
		{"garbage", []byte("x"), l, now, "unreadable: no PEM certificate"},
	}
	for _, c := range cases {
		if got := ca.Check(c.cert, c.leaf, c.at); got != c.want {
			t.Errorf("%s: Check = %q, want %q", c.name, got, c.want)
		}
	}
	cert, _ := ParseCert(good)
	if w := Expiring("etcd0 server", cert, now); w != "" {
		t.Errorf("fresh: %q", w)
	}
	if w := Expiring("etcd0 server", cert, cert.NotAfter.Add(-10*24*time.Hour)); w != "etcd0 server expires on 2027-11-22, in 10 days: renew it with `etcd-installer certs renew`" {
		t.Errorf("expiring: %q", w)
	}
	if w := Expiring("etcd0 server", cert, cert.NotAfter.Add(time.Hour)); w != "etcd0 server expired on 2027-11-22: renew it with `etcd-installer certs renew`" {
		t.Errorf("expired: %q", w)
	}
}
