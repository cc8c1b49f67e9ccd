package repo

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/etcd-appliance/appliance/host"
)

// A release signed with the operator's key (passphrase-protected, from
// the environment): the key is used, checked for its mode, and neither it
// nor its passphrase reaches the repository or the output.
func TestReleaseWithTheOperatorsKey(t *testing.T) {
	ctx := context.Background()
	r := host.LocalRunner{}
	keyHome := filepath.Join(t.TempDir(), "gnupg")
	os.MkdirAll(keyHome, 0o700)
	pass := filepath.Join(t.TempDir(), "pass")
	os.WriteFile(pass, []byte("correct horse battery staple\n"), 0o600)
	gpg := []string{"gpg", "--batch", "--homedir", keyHome, "--pinentry-mode", "loopback", "--passphrase-file", pass}
	if _, err := r.Run(ctx, nil, append(gpg, "--quick-gen-key", "Release Signer <release@example.invalid>", "rsa3072", "sign", "never")...); err != nil {
		t.Fatal(err)
	}
	secret, err := r.Run(ctx, nil, append(gpg, "--armor", "--export-secret-keys")...)
	if err != nil || !bytes.Contains(secret, []byte("PRIVATE KEY")) {
		t.Fatalf("exporting the test key: %v", err)
	}
	r.Run(ctx, nil, "gpgconf", "--homedir", keyHome, "--kill", "gpg-agent")
	keyFile := filepath.Join(t.TempDir(), "signing.asc")
	os.WriteFile(keyFile, secret, 0o644)
	t.Setenv(KeyEnv, keyFile)
	t.Setenv(PassphraseEnv, pass)

	dist := filepath.Dir(pkgs(t, "genuine")[0])
	out := filepath.Join(t.TempDir(), "repo")
	work := filepath.Join(t.TempDir(), "work")
	var so, se bytes.Buffer
	if err := Release(ctx, dist, out, "http://127.0.0.1:1/etcd", work, date, &so, &se); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a world-readable secret key was used: %v", err)
	}
	os.Chmod(keyFile, 0o600)
	so.Reset()
	se.Reset()
	if err := Release(ctx, dist, out, "http://127.0.0.1:1/etcd", work, date, &so, &se); err != nil {
		t.Fatalf("%v\n%s", err, se.String())
	}
	if strings.Contains(se.String(), "THROW-AWAY") || !strings.Contains(so.String(), "signed by ") {
		t.Errorf("output: %s\n%s", so.String(), se.String())
	}
	filepath.WalkDir(out, func(p string, d os.DirEntry, _ error) error {
		if b, err := os.ReadFile(p); err == nil && !d.IsDir() && (bytes.Contains(b, []byte("PRIVATE KEY")) || bytes.Contains(b, []byte("correct horse"))) {
			t.Errorf("%s holds the secret key or its passphrase", p)
		}
		return nil
	})
	if ents, _ := os.ReadDir(work); len(ents) != 0 {
		t.Errorf("the GnuPG home with the imported key was left in %s: %v", work, ents)
	}
	// The repository's key is the operator's.
	fpr := func(out []byte) string {
		for _, l := range strings.Split(string(out), "\n") {
			if f := strings.Split(l, ":"); f[0] == "fpr" && len(f) > 9 {
				return f[9]
			}
		}
		return ""
	}
	shown, _ := r.Run(ctx, nil, "gpg", "--batch", "--homedir", keyHome, "--with-colons", "--show-keys", filepath.Join(out, RPMKey))
	mine, _ := r.Run(ctx, nil, "gpg", "--batch", "--homedir", keyHome, "--with-colons", "--list-keys")
	if fpr(shown) == "" || fpr(shown) != fpr(mine) {
		t.Errorf("the repository's public key %q is not the operator's %q", fpr(shown), fpr(mine))
	}
	r.Run(ctx, nil, "gpgconf", "--homedir", keyHome, "--kill", "gpg-agent")
	if out, err := apt(t, t.TempDir(), out, filepath.Join(out, Keyring), "update"); err != nil {
		t.Errorf("apt-get update: %v\n%s", err, out)
	}
}
