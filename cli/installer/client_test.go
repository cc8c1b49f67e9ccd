package installer

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	inv "github.com/etcd-appliance/appliance/installer"
	"github.com/etcd-appliance/appliance/provision"
)

// On a member host the host's client certificate (CN root) is used; on a
// proxy host its client certificate names no user, so the operator's is.
func TestClientFilesSkipsAProxysCertificate(t *testing.T) {
	dir := t.TempDir()
	hostPKI := filepath.Join(dir, "pki")
	os.MkdirAll(hostPKI, 0o700)
	text := `version = 1
[cluster]
name = "c"
[tls]
ca_file = "` + hostPKI + `/ca.crt"
client_cert_file = "` + hostPKI + `/client.crt"
client_key_file = "` + hostPKI + `/client.key"
[[member]]
name = "etcd0"
address = "10.0.0.10"
[[member]]
name = "etcd1"
address = "10.0.0.11"
[[member]]
name = "etcd2"
address = "10.0.0.12"
[[proxy]]
name = "gw"
address = "10.0.0.20"
`
	i, err := inv.Parse(filepath.Join(dir, "c.toml"), []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	i.Dir = dir
	certs := filepath.Join(dir, "certs")
	if _, err := provision.EnsureCerts(certs, i, time.Now(), false); err != nil {
		t.Fatal(err)
	}
	place := func(host string) {
		for _, f := range []string{"ca.crt", "client.crt", "client.key"} {
			b, err := os.ReadFile(filepath.Join(certs, host, f))
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(hostPKI, f), b, 0o600)
		}
	}
	operator := filepath.Join(certs, provision.OperatorDir, "client.crt")
	for _, c := range []struct {
		host, want string
	}{{"etcd1", filepath.Join(hostPKI, "client.crt")}, {"gw", operator}} {
		place(c.host)
		var cf clientFlags
		if _, cert, _ := cf.files(i); cert != c.want {
			t.Errorf("on %s: client certificate %s, want %s", c.host, cert, c.want)
		}
	}
	// Flags win.
	cf := clientFlags{cert: "/x.crt", key: "/x.key", cacert: "/ca.crt"}
	if _, cert, _ := cf.files(i); cert != "/x.crt" {
		t.Errorf("--cert: %s", cert)
	}
}
