package certs

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcd-appliance/appliance/inventory/inventorytest"
	"github.com/etcd-appliance/appliance/pki"
)

// certsInventory is three members and a proxy.
var certsInventory = inventorytest.Text("prod", "", []string{"10.0.0.10", "10.0.0.11", "10.0.0.12"}, nil) +
	"[[proxy]]\nname = \"proxy0\"\naddress = \"10.0.0.20\"\n"

func snapshotDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		m[rel] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func actions(acts []CertAction) map[string]string {
	m := map[string]string{}
	for _, a := range acts {
		m[a.Path] = a.Action
	}
	return m
}

func TestEnsureCertsLayoutPermissionsIdempotent(t *testing.T) {
	inv := inventorytest.Parse(t, certsInventory)
	dir := filepath.Join(t.TempDir(), "certs")
	now := time.Now()
	acts, err := Ensure(dir, inv, now, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range acts {
		if a.Action != "issued" {
			t.Errorf("first run: %s %s", a.Path, a.Action)
		}
	}
	want := []string{"ca.crt", "ca.key",
		"etcd0/ca.crt", "etcd0/server.crt", "etcd0/server.key", "etcd0/peer.crt", "etcd0/peer.key", "etcd0/client.crt", "etcd0/client.key",
		"proxy0/ca.crt", "proxy0/server.crt", "proxy0/server.key", "proxy0/client.crt", "proxy0/client.key",
		"_operator/ca.crt", "_operator/client.crt", "_operator/client.key"}
	first := snapshotDir(t, dir)
	for _, f := range want {
		if _, ok := first[f]; !ok {
			t.Errorf("%s missing", f)
		}
	}
	if _, ok := first["proxy0/peer.crt"]; ok {
		t.Error("a proxy got a peer certificate")
	}
	for f := range first {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		wantMode := fs.FileMode(0o644)
		if strings.HasSuffix(f, ".key") {
			wantMode = 0o600
		}
		if st.Mode().Perm() != wantMode {
			t.Errorf("%s mode %v, want %v", f, st.Mode().Perm(), wantMode)
		}
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, want 0700", st.Mode().Perm())
	}
	// The CA key is in no host's directory.
	caKey := first["ca.key"]
	for f, b := range first {
		if f != "ca.key" && bytes.Equal(b, caKey) {
			t.Errorf("the CA key is copied to %s", f)
		}
	}

	// A second run keeps everything, byte for byte.
	acts, err = Ensure(dir, inv, now.Add(time.Hour), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range acts {
		if !strings.HasPrefix(a.Action, "kept") {
			t.Errorf("second run: %s %s", a.Path, a.Action)
		}
	}
	if second := snapshotDir(t, dir); !sameFiles(first, second) {
		t.Error("a second run changed files")
	}

	// A moved member gets a new leaf; the others stay.
	moved := inventorytest.Parse(t, strings.Replace(certsInventory, "10.0.0.11", "10.0.0.31", 1))
	acts, err = Ensure(dir, moved, now, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := actions(acts)
	if got["etcd1/server.crt"] != "re-issued: names or addresses changed in the inventory" || got["etcd0/server.crt"] != "kept" {
		t.Errorf("after moving etcd1: %v", got)
	}

	// Near expiry, leaves are re-issued without being asked.
	acts, err = Ensure(dir, moved, now.Add(pki.LeafValidity-10*24*time.Hour), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a := actions(acts)["etcd0/peer.crt"]; !strings.HasPrefix(a, "re-issued: expires ") {
		t.Errorf("expiring leaf: %q", a)
	}
}

func sameFiles(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !bytes.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

func TestRenewKeepsCA(t *testing.T) {
	inv := inventorytest.Parse(t, certsInventory)
	dir := t.TempDir()
	if _, err := Ensure(dir, inv, time.Now(), false, nil); err != nil {
		t.Fatal(err)
	}
	before := snapshotDir(t, dir)
	acts, err := Ensure(dir, inv, time.Now(), true, nil)
	if err != nil {
		t.Fatal(err)
	}
	after := snapshotDir(t, dir)
	for _, f := range []string{"ca.crt", "ca.key", "etcd0/ca.crt", "_operator/ca.crt"} {
		if !bytes.Equal(before[f], after[f]) {
			t.Errorf("renew changed %s", f)
		}
	}
	for _, f := range []string{"etcd0/server.crt", "etcd0/server.key", "etcd2/peer.crt", "proxy0/client.crt", "_operator/client.crt"} {
		if bytes.Equal(before[f], after[f]) {
			t.Errorf("renew kept %s", f)
		}
	}
	if a := actions(acts)["etcd0/server.crt"]; a != "re-issued: renew" {
		t.Errorf("renew action %q", a)
	}
	ca, err := pki.LoadCA(after["ca.crt"], after["ca.key"])
	if err != nil {
		t.Fatal(err)
	}
	h, _ := inv.Host("etcd0")
	for _, l := range pki.HostLeaves(inv, h) {
		if r := ca.Check(after["etcd0/"+l.Name+".crt"], l, time.Now()); r != "" {
			t.Errorf("renewed %s: %s", l.Name, r)
		}
	}
}

func TestEnsureCertsWithoutCAKey(t *testing.T) {
	inv := inventorytest.Parse(t, certsInventory)
	dir := t.TempDir()
	if _, err := Ensure(dir, inv, time.Now(), false, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "ca.key")); err != nil {
		t.Fatal(err)
	}
	before := snapshotDir(t, dir)
	_, err := Ensure(dir, inv, time.Now(), true, nil)
	if !errors.Is(err, ErrCAKey) {
		t.Fatalf("err = %v, want ErrCAKey", err)
	}
	if !sameFiles(before, snapshotDir(t, dir)) {
		t.Error("a refused run changed files")
	}
}

func TestHostFiles(t *testing.T) {
	inv := inventorytest.Parse(t, certsInventory)
	dir := t.TempDir()
	if _, err := Ensure(dir, inv, time.Now(), false, nil); err != nil {
		t.Fatal(err)
	}
	caKey, _ := os.ReadFile(filepath.Join(dir, "ca.key"))
	type want struct {
		mode         fs.FileMode
		owner, group string
	}
	cases := map[string]map[string]want{
		"etcd1": {
			inv.TLS.CAFile: {0o644, "root", "root"}, inv.TLS.CertFile: {0o644, "root", "root"}, inv.TLS.KeyFile: {0o600, "etcd", "etcd"},
			inv.TLS.PeerCertFile: {0o644, "root", "root"}, inv.TLS.PeerKeyFile: {0o600, "etcd", "etcd"},
			inv.TLS.ClientCertFile: {0o644, "root", "root"}, inv.TLS.ClientKeyFile: {0o600, "root", "root"},
		},
		"proxy0": {
			inv.TLS.CAFile: {0o644, "root", "root"}, inv.TLS.CertFile: {0o644, "root", "root"}, inv.TLS.KeyFile: {0o600, "etcd", "etcd"},
			inv.TLS.ClientCertFile: {0o644, "root", "root"}, inv.TLS.ClientKeyFile: {0o600, "etcd", "etcd"},
		},
	}
	for host, files := range cases {
		got, err := HostFiles(dir, inv, host)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(files) {
			t.Errorf("%s: %d files, want %d", host, len(got), len(files))
		}
		for _, f := range got {
			w, ok := files[f.Path]
			if !ok {
				t.Errorf("%s: unexpected %s", host, f.Path)
				continue
			}
			if f.Mode != w.mode || f.Owner != w.owner || f.Group != w.group {
				t.Errorf("%s %s: %v %s:%s, want %v %s:%s", host, f.Path, f.Mode, f.Owner, f.Group, w.mode, w.owner, w.group)
			}
			if bytes.Equal(f.Data, caKey) {
				t.Errorf("%s gets the CA key as %s", host, f.Path)
			}
		}
		// Only this host's server key.
		own, _ := os.ReadFile(filepath.Join(dir, host, "server.key"))
		for _, f := range got {
			if f.Path == inv.TLS.KeyFile && !bytes.Equal(f.Data, own) {
				t.Errorf("%s: server key is not its own", host)
			}
		}
	}
	if _, err := HostFiles(t.TempDir(), inv, "etcd0"); err == nil || !strings.Contains(err.Error(), "etcd-installer certs") {
		t.Errorf("missing certificates: %v", err)
	}
}

// Certificates that no longer fit are not handed to a host: it would fail
// its handshakes with them.
func TestHostCertFilesRefusesStaleCertificates(t *testing.T) {
	dir := t.TempDir()
	inv := inventorytest.Parse(t, certsInventory)
	if _, err := Ensure(dir, inv, time.Now(), false, nil); err != nil {
		t.Fatal(err)
	}
	// The inventory moves etcd1 to another address.
	moved := inventorytest.Parse(t, strings.Replace(certsInventory, "10.0.0.11", "10.0.0.31", 1))
	_, err := HostFiles(dir, moved, "etcd1")
	if !errors.Is(err, ErrStaleCert) || !strings.Contains(err.Error(), "server.crt: names or addresses changed in the inventory") ||
		!strings.Contains(err.Error(), "peer.crt: names or addresses changed") || !strings.Contains(err.Error(), "etcd-installer certs") {
		t.Errorf("moved host: %v", err)
	}
	if _, err := HostFiles(dir, moved, "etcd0"); err != nil {
		t.Errorf("a host that did not move: %v", err)
	}
	// certs re-issues what changed; then they are handed out.
	if _, err := Ensure(dir, moved, time.Now(), false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := HostFiles(dir, moved, "etcd1"); err != nil {
		t.Errorf("after certs: %v", err)
	}

	ca := mustLoadCA(t, dir)
	h, _ := inv.Host("etcd2")
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, "etcd2", name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Expired: refused. Expiring in ten days: handed out (status warns).
	leaf := pki.HostLeaves(inv, h)[0]
	for _, c := range []struct {
		issued time.Time
		refuse bool
	}{{time.Now().Add(-pki.LeafValidity - time.Hour), true}, {time.Now().Add(-pki.LeafValidity + 10*24*time.Hour), false}} {
		crt, key, err := ca.Issue(leaf, c.issued)
		if err != nil {
			t.Fatal(err)
		}
		write("server.crt", crt)
		write("server.key", key)
		_, err = HostFiles(dir, inv, "etcd2")
		if got := errors.Is(err, ErrStaleCert) && strings.Contains(err.Error(), "server.crt: expired on"); got != c.refuse {
			t.Errorf("server certificate issued %s: %v", c.issued.Format(time.DateOnly), err)
		}
	}
	// A key that is not the certificate's.
	_, otherKey, _ := ca.Issue(leaf, time.Now())
	write("server.key", otherKey)
	if _, err := HostFiles(dir, inv, "etcd2"); !errors.Is(err, ErrStaleCert) || !strings.Contains(err.Error(), "server.key does not belong to server.crt") {
		t.Errorf("foreign key: %v", err)
	}
}

func mustLoadCA(t *testing.T, dir string) *pki.CA {
	t.Helper()
	ca, err := LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// A certificate directory someone else could have changed is refused
// before anything is read from it, with the fix; nothing is written.
func TestEnsureRefusesAnUntrustedDirectory(t *testing.T) {
	inv := inventorytest.Parse(t, certsInventory)
	for _, c := range []struct {
		name  string
		plant func(dir string)
		want  string
	}{
		{"world-writable directory", func(dir string) { os.Chmod(dir, 0o777) }, "others can change it"},
		{"CA key readable by others", func(dir string) { os.Chmod(filepath.Join(dir, "ca.key"), 0o644) }, "others can read the private key"},
		{"CA certificate writable by others", func(dir string) { os.Chmod(filepath.Join(dir, "ca.crt"), 0o666) }, "others can change it"},
		{"CA owned by another user", func(dir string) { os.Chown(filepath.Join(dir, "ca.crt"), 4242, 4242) }, "belongs to uid 4242"},
		{"CA key a symbolic link", func(dir string) {
			os.Rename(filepath.Join(dir, "ca.key"), filepath.Join(dir, "real.key"))
			os.Symlink("real.key", filepath.Join(dir, "ca.key"))
		}, "is a symbolic link"},
		{"a host key readable by others", func(dir string) { os.Chmod(filepath.Join(dir, "etcd1", "peer.key"), 0o644) }, "etcd1/peer.key has mode 0644"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := Ensure(dir, inv, time.Now(), false, nil); err != nil {
				t.Fatal(err)
			}
			c.plant(dir)
			before := snapshotDir(t, dir)
			_, err := Ensure(dir, inv, time.Now(), true, nil)
			if !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "fix: ") {
				t.Fatalf("got %v, want %q", err, c.want)
			}
			if !sameFiles(before, snapshotDir(t, dir)) {
				t.Error("files changed although the directory was refused")
			}
		})
	}
}

// An existing CA is adopted when its key is PKCS#8 (what openssl writes)
// or PKCS#1 RSA, and named; a certificate that is not a CA, an encrypted
// key or another certificate's key is refused with the fix.
func TestEnsureAdoptsOrRefusesAnExistingCA(t *testing.T) {
	inv := inventorytest.Parse(t, certsInventory)
	adopt := func(t *testing.T, keyArgs ...string) (string, error) {
		dir := t.TempDir()
		os.Chmod(dir, 0o700)
		args := append([]string{"req", "-x509", "-nodes", "-days", "400", "-subj", "/CN=corporate CA", "-keyout", filepath.Join(dir, "ca.key"), "-out", filepath.Join(dir, "ca.crt")}, keyArgs...)
		if out, err := exec.Command("openssl", args...).CombinedOutput(); err != nil {
			t.Fatalf("openssl: %v %s", err, out)
		}
		_, err := Ensure(dir, inv, time.Now(), false, nil)
		return dir, err
	}
	for _, c := range []struct {
		name string
		args []string
	}{
		{"ECDSA PKCS#8", []string{"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"}},
		{"RSA PKCS#8", []string{"-newkey", "rsa:2048"}},
		{"Ed25519 PKCS#8", []string{"-newkey", "ed25519"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir, err := adopt(t, c.args...)
			if err != nil {
				t.Fatal(err)
			}
			ca, err := LoadCA(dir)
			if err != nil {
				t.Fatal(err)
			}
			h, _ := inv.Host("etcd0")
			crt, _ := os.ReadFile(filepath.Join(dir, "etcd0", "server.crt"))
			if why := ca.Check(crt, pki.HostLeaves(inv, h)[0], time.Now()); why != "" {
				t.Errorf("leaf from the adopted CA: %s", why)
			}
		})
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o700)
	exec.Command("openssl", "req", "-x509", "-nodes", "-days", "30", "-subj", "/CN=leaf", "-addext", "basicConstraints=critical,CA:FALSE",
		"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-keyout", filepath.Join(dir, "ca.key"), "-out", filepath.Join(dir, "ca.crt")).Run()
	if _, err := Ensure(dir, inv, time.Now(), false, nil); !errors.Is(err, pki.ErrCAUnusable) || !strings.Contains(err.Error(), "not a CA certificate") {
		t.Errorf("a leaf as CA: %v", err)
	}
	exec.Command("openssl", "pkey", "-in", filepath.Join(dir, "ca.key"), "-aes256", "-passout", "pass:x", "-out", filepath.Join(dir, "enc.key")).Run()
	dir2 := t.TempDir()
	os.Chmod(dir2, 0o700)
	exec.Command("openssl", "req", "-x509", "-nodes", "-days", "30", "-subj", "/CN=ca", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
		"-keyout", filepath.Join(dir2, "own.key"), "-out", filepath.Join(dir2, "ca.crt")).Run()
	b, _ := os.ReadFile(filepath.Join(dir, "enc.key"))
	os.WriteFile(filepath.Join(dir2, "ca.key"), b, 0o600)
	if _, err := Ensure(dir2, inv, time.Now(), false, nil); !errors.Is(err, pki.ErrCAUnusable) || !strings.Contains(err.Error(), "encrypted") {
		t.Errorf("an encrypted key: %v", err)
	}
	b, _ = exec.Command("openssl", "genpkey", "-algorithm", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1").Output()
	os.WriteFile(filepath.Join(dir2, "ca.key"), b, 0o600)
	if _, err := Ensure(dir2, inv, time.Now(), false, nil); !errors.Is(err, pki.ErrCAUnusable) || !strings.Contains(err.Error(), "does not belong to ca.crt") {
		t.Errorf("another key: %v", err)
	}
}
