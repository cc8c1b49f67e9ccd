// Package repotest has what repository tests share: an operator's signing
// key made for the test, and apt-get run against one repository only.
package repotest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// OperatorKey makes an RSA signing key, exports it armored to a 0600 file
// and returns its path; with a passphrase, also the 0600 file holding it.
func OperatorKey(t testing.TB, passphrase string) (keyFile, passFile string) {
	t.Helper()
	dir := t.TempDir()
	home := filepath.Join(dir, "gnupg")
	os.MkdirAll(home, 0o700)
	passFile = filepath.Join(dir, "pass")
	os.WriteFile(passFile, []byte(passphrase+"\n"), 0o600)
	gpg := func(args ...string) []byte {
		t.Helper()
		out, err := exec.Command("gpg", append([]string{"--batch", "--homedir", home, "--pinentry-mode", "loopback", "--passphrase-file", passFile}, args...)...).Output()
		if err != nil {
			t.Fatalf("gpg %v: %v", args, err)
		}
		return out
	}
	gpg("--quick-gen-key", "Operator <ops@example.invalid>", "rsa3072", "sign", "never")
	keyFile = filepath.Join(dir, "ops.asc")
	os.WriteFile(keyFile, gpg("--armor", "--export-secret-keys"), 0o600)
	exec.Command("gpgconf", "--homedir", home, "--kill", "gpg-agent").Run()
	if passphrase == "" {
		passFile = ""
	}
	return keyFile, passFile
}

// Apt runs apt-get (or apt-cache, when the first argument is "apt-cache")
// against the repository at dir only, with its own state under root and
// the keyring given: what a host's apt does, checks included. It returns
// the combined output.
func Apt(t testing.TB, root, dir, keyring string, args ...string) (string, error) {
	t.Helper()
	for _, d := range []string{"sources", "lists/partial", "cache/archives/partial", "work"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	os.WriteFile(filepath.Join(root, "status"), nil, 0o644)
	os.WriteFile(filepath.Join(root, "sources", "test.sources"),
		[]byte("Types: deb\nURIs: file://"+dir+"\nSuites: stable\nComponents: main\nSigned-By: "+keyring+"\n"), 0o644)
	prog := "apt-get"
	if len(args) > 0 && args[0] == "apt-cache" {
		prog, args = "apt-cache", args[1:]
	}
	opts := []string{"-q", "-o", "Dir::Etc::SourceList=/dev/null", "-o", "Dir::Etc::SourceParts=" + root + "/sources",
		"-o", "Dir::State::Lists=" + root + "/lists", "-o", "Dir::Cache=" + root + "/cache", "-o", "Dir::State::status=" + root + "/status",
		"-o", "APT::Architecture=amd64", "-o", "APT::Architectures=amd64", "-o", "Debug::NoLocking=1", "-o", "APT::Sandbox::User=root",
		"-o", "Acquire::Languages=none"}
	cmd := exec.Command(prog, append(opts, args...)...)
	cmd.Dir = filepath.Join(root, "work")
	out, err := cmd.CombinedOutput()
	return string(out), err
}
