package cluster_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/etcd-appliance/appliance/cluster"
	"github.com/etcd-appliance/appliance/inventory/inventorytest"
	"github.com/etcd-appliance/appliance/pki"
	"github.com/etcd-appliance/appliance/workflow/certs"
)

// On a member host the host's client certificate (CN root) is used; on a
// proxy host its client certificate names no user, so the operator's is;
// on a host of another cluster the operator's files of this inventory.
func TestClientFilesSkipsAProxysCertificate(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "host")
	hostPKI := filepath.Join(root, "/etc/etcd/pki")
	os.MkdirAll(hostPKI, 0o700)
	text := inventorytest.Three("") + `[[proxy]]
name = "gw"
address = "10.0.0.20"
`
	i := inventorytest.Parse(t, text)
	i.Dir = dir
	dirCerts := filepath.Join(dir, "certs")
	if _, err := certs.Ensure(dirCerts, i, time.Now(), false, nil); err != nil {
		t.Fatal(err)
	}
	place := func(host string) {
		for _, f := range []string{"ca.crt", "client.crt", "client.key"} {
			b, err := os.ReadFile(filepath.Join(dirCerts, host, f))
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(hostPKI, f), b, 0o600)
		}
	}
	operator := filepath.Join(dirCerts, pki.OperatorDir, "client.crt")
	for _, c := range []struct {
		host, want string
	}{{"etcd1", filepath.Join(hostPKI, "client.crt")}, {"gw", operator}} {
		place(c.host)
		if _, cert, _ := (cluster.ClientFiles{Root: root}).Resolve(i); cert != c.want {
			t.Errorf("on %s: client certificate %s, want %s", c.host, cert, c.want)
		}
	}
	// On a host of another cluster (its files at the same default paths,
	// another CA), this inventory's operator files are the ones that fit.
	other := inventorytest.Parse(t, inventorytest.Three(""))
	other.Dir = filepath.Join(dir, "other")
	if _, err := certs.Ensure(filepath.Join(other.Dir, "certs"), other, time.Now(), false, nil); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"ca.crt", "client.crt", "client.key"} {
		b, err := os.ReadFile(filepath.Join(other.Dir, "certs", "etcd1", f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(hostPKI, f), b, 0o600)
	}
	if ca, cert, _ := (cluster.ClientFiles{Root: root}).Resolve(i); cert != operator || ca != filepath.Join(dirCerts, pki.OperatorDir, "ca.crt") {
		t.Errorf("on a host of another cluster: %s and %s, want the operator's %s", ca, cert, operator)
	}
	// On a host of this cluster whose CA file is a bundle (another CA and
	// this one, written by hand): still this cluster's CA, so its files.
	otherCA, err := os.ReadFile(filepath.Join(hostPKI, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	place("etcd1")
	thisCA, err := os.ReadFile(filepath.Join(hostPKI, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(hostPKI, "ca.crt"), append(append(otherCA, '\n'), thisCA...), 0o600)
	if _, cert, _ := (cluster.ClientFiles{Root: root}).Resolve(i); cert != filepath.Join(hostPKI, "client.crt") {
		t.Errorf("on a host of this cluster with a CA bundle: %s, want the host's", cert)
	}
	// Flags win.
	cf := cluster.ClientFiles{Cert: "/x.crt", Key: "/x.key", CA: "/ca.crt"}
	if _, cert, _ := cf.Resolve(i); cert != "/x.crt" {
		t.Errorf("--cert: %s", cert)
	}
}
