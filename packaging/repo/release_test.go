package repo

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	if err := Release(ctx, dist, out, "http://127.0.0.1:1/etcd", work, date, time.Now(), &so, &se); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a world-readable secret key was used: %v", err)
	}
	os.Chmod(keyFile, 0o600)
	so.Reset()
	se.Reset()
	if err := Release(ctx, dist, out, "http://127.0.0.1:1/etcd", work, date, time.Now(), &so, &se); err != nil {
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

// After an adversarial review: paths with spaces and rpm macro syntax are
// data, never code; a failed rebuild (a wrong passphrase) leaves the
// published repository as it was; a rebuild replaces everything planted
// in the directory without following a link; --out cannot swallow --dist.
func TestReleaseHostileDirectories(t *testing.T) {
	ctx := context.Background()
	r := host.LocalRunner{}
	base := filepath.Join(t.TempDir(), "my keys")
	keyHome := filepath.Join(base, "gnupg")
	os.MkdirAll(keyHome, 0o700)
	pass := filepath.Join(base, "pass phrase")
	os.WriteFile(pass, []byte("s3cret\n"), 0o600)
	gpg := []string{"gpg", "--batch", "--homedir", keyHome, "--pinentry-mode", "loopback", "--passphrase-file", pass}
	if _, err := r.Run(ctx, nil, append(gpg, "--quick-gen-key", "Release Signer <release@example.invalid>", "rsa3072", "sign", "never")...); err != nil {
		t.Fatal(err)
	}
	secret, _ := r.Run(ctx, nil, append(gpg, "--armor", "--export-secret-keys")...)
	r.Run(ctx, nil, "gpgconf", "--homedir", keyHome, "--kill", "gpg-agent")
	keyFile := filepath.Join(base, "signing key.asc")
	os.WriteFile(keyFile, secret, 0o600)
	t.Setenv(KeyEnv, keyFile)
	t.Setenv(PassphraseEnv, pass)

	dist := filepath.Dir(pkgs(t, "genuine")[0])
	canary := filepath.Join(t.TempDir(), "macro-ran")
	out := filepath.Join(t.TempDir(), "re po %(touch "+canary+")")
	work := filepath.Join(t.TempDir(), "work dir")
	if err := Release(ctx, dist, out, "http://127.0.0.1:1/etcd", work, date, time.Now(), io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(canary); err == nil {
		t.Fatal("an rpm macro in the repository's path ran")
	}
	inRelease, _ := os.ReadFile(filepath.Join(out, "dists/stable/InRelease"))

	// Planted: a stale package and a link to a file outside.
	victim := filepath.Join(t.TempDir(), "victim")
	os.WriteFile(victim, []byte("keep me"), 0o644)
	os.WriteFile(filepath.Join(out, "pool/main/e/etcdtest/evil_9_all.deb"), []byte("evil"), 0o644)
	os.Remove(filepath.Join(out, RPMKey))
	os.Symlink(victim, filepath.Join(out, RPMKey))

	// A wrong passphrase: refused before anything changes.
	bad := filepath.Join(base, "wrong")
	os.WriteFile(bad, []byte("nope\n"), 0o600)
	t.Setenv(PassphraseEnv, bad)
	if err := Release(ctx, dist, out, "http://127.0.0.1:1/etcd", work, date, time.Now(), io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "cannot sign") {
		t.Fatalf("a wrong passphrase: %v", err)
	}
	if now, _ := os.ReadFile(filepath.Join(out, "dists/stable/InRelease")); !bytes.Equal(now, inRelease) {
		t.Error("a failed rebuild changed the published InRelease")
	}
	t.Setenv(PassphraseEnv, pass)
	if err := Release(ctx, dist, out, "http://127.0.0.1:1/etcd", work, date, time.Now(), io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(victim); string(data) != "keep me" {
		t.Error("the rebuild wrote through a planted link")
	}
	if _, err := os.Stat(filepath.Join(out, "pool/main/e/etcdtest/evil_9_all.deb")); err == nil {
		t.Error("a planted package survived the rebuild")
	}
	if ents, _ := os.ReadDir(work); len(ents) != 0 {
		t.Errorf("GnuPG homes left in %s: %v", work, ents)
	}
	if err := Release(ctx, dist, dist, "http://127.0.0.1:1/etcd", work, date, time.Now(), io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "which is replaced as a whole") {
		t.Errorf("--out equal to --dist: %v", err)
	}
	// A directory that is not a repository built here (a home, say) is
	// never replaced.
	home := t.TempDir()
	os.WriteFile(filepath.Join(home, ".profile"), []byte("mine"), 0o644)
	if err := Release(ctx, dist, home, "http://127.0.0.1:1/etcd", work, date, time.Now(), io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "nothing was done") {
		t.Errorf("--out a non-empty foreign directory: %v", err)
	}
	if data, _ := os.ReadFile(filepath.Join(home, ".profile")); string(data) != "mine" {
		t.Error("a foreign directory was replaced")
	}
	// apt's verifier accepts the rebuilt InRelease with the keyring (apt
	// itself cannot take a file: URI with spaces).
	if o, err := r.Run(ctx, nil, "gpgv", "--keyring", filepath.Join(out, Keyring), filepath.Join(out, "dists/stable/InRelease")); err != nil {
		t.Errorf("gpgv on the rebuilt InRelease: %v %s", err, o)
	}
}
