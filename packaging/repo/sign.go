// Package repo publishes packages as what package managers consume: a
// signed apt repository (pool, Packages, Release, InRelease, Release.gpg)
// and signed yum/dnf repositories per architecture (signed rpms,
// repodata/repomd.xml and repomd.xml.asc), with the public key in both
// forms and the snippets users drop into /etc/apt/sources.list.d and
// /etc/yum.repos.d. Index formats are written by the tools made for them
// (apt-ftparchive, createrepo_c), signatures by gpg and rpmsign, each run
// with argv through a host.Runner.
package repo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/etcd-appliance/appliance/host"
)

// ErrSigning is wrapped by failures to set up or use the signing key.
var ErrSigning = errors.New("repository signing")

// Signer signs with one secret key held in a private GnuPG home. The key
// never leaves that home: only public keys and signatures are written
// elsewhere.
type Signer struct {
	r        host.Runner
	home     string
	passFile string
	fpr      string
	created  time.Time
	// Throwaway marks a key made here for tests: nothing signed with it
	// is fit to publish.
	Throwaway bool
}

// OpenSigner imports the armored secret key at keyFile (with the
// passphrase in passFile, "" for none) into the GnuPG home dir, created
// 0700.
func OpenSigner(ctx context.Context, r host.Runner, home, keyFile, passFile string) (*Signer, error) {
	if fi, err := os.Stat(keyFile); err != nil {
		return nil, fmt.Errorf("%w: the signing key %s: %w", ErrSigning, keyFile, err)
	} else if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: the signing key %s has mode %04o: others can read a secret key; fix: chmod 600 %s", ErrSigning, keyFile, fi.Mode().Perm(), keyFile)
	}
	s := &Signer{r: r, home: home, passFile: passFile}
	if err := s.mkHome(); err != nil {
		return nil, err
	}
	if _, err := s.gpg(ctx, "--import", keyFile); err != nil {
		return nil, fmt.Errorf("%w: importing %s: %w", ErrSigning, keyFile, err)
	}
	return s, s.identify(ctx)
}

// ThrowawaySigner uses the test key in home, making one (RSA 3072, no
// passphrase) the first time: kept between runs, so that rebuilding
// gives the same signatures.
func ThrowawaySigner(ctx context.Context, r host.Runner, home string) (*Signer, error) {
	s := &Signer{r: r, home: home, Throwaway: true}
	if err := s.mkHome(); err != nil {
		return nil, err
	}
	if s.identify(ctx) == nil {
		return s, nil
	}
	if _, err := s.gpg(ctx, "--passphrase", "", "--quick-gen-key",
		"etcd appliance TEST repository key (throw-away, do not trust) <test@etcd-appliance.invalid>", "rsa3072", "sign", "never"); err != nil {
		return nil, fmt.Errorf("%w: making a throw-away key: %w", ErrSigning, err)
	}
	return s, s.identify(ctx)
}

func (s *Signer) mkHome() error {
	if err := os.MkdirAll(s.home, 0o700); err != nil {
		return fmt.Errorf("%w: %w", ErrSigning, err)
	}
	return os.Chmod(s.home, 0o700)
}

// identify finds the one secret key of the home and its creation time.
func (s *Signer) identify(ctx context.Context) error {
	out, err := s.gpg(ctx, "--with-colons", "--list-secret-keys")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSigning, err)
	}
	var fprs []string
	inSec := false
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(line, ":")
		switch {
		case f[0] == "sec" && len(f) > 5:
			inSec = true
			if sec, err := strconv.ParseInt(f[5], 10, 64); err == nil {
				s.created = time.Unix(sec, 0)
			}
		case f[0] == "fpr" && inSec && len(f) > 9:
			fprs = append(fprs, f[9])
			inSec = false
		case f[0] == "ssb":
			inSec = false
		}
	}
	if len(fprs) != 1 {
		return fmt.Errorf("%w: want one secret key in the signing key file, found %d", ErrSigning, len(fprs))
	}
	s.fpr = fprs[0]
	return nil
}

// Fingerprint is the signing key's fingerprint.
func (s *Signer) Fingerprint() string { return s.fpr }

// Close stops the gpg-agent the home started.
func (s *Signer) Close() {
	_, _ = s.r.Run(context.Background(), nil, "gpgconf", "--homedir", s.home, "--kill", "gpg-agent")
}

// gpg runs gpg on the signer's home, never asking anyone anything.
func (s *Signer) gpg(ctx context.Context, args ...string) ([]byte, error) {
	argv := []string{"gpg", "--batch", "--no-tty", "--quiet", "--homedir", s.home, "--pinentry-mode", "loopback"}
	if s.passFile != "" {
		argv = append(argv, "--passphrase-file", s.passFile)
	}
	return s.r.Run(ctx, nil, append(argv, args...)...)
}

// signTime is when signatures say they were made: the build's time
// (SOURCE_DATE_EPOCH), or the key's creation if later (gpg refuses a
// signature older than its key). RSA signatures of the same bytes at the
// same time are the same bytes: rebuilding repeats them.
func (s *Signer) signTime(at time.Time) string {
	if at.Before(s.created) {
		at = s.created
	}
	return strconv.FormatInt(at.Unix(), 10) + "!"
}

// Clearsign writes in, clearsigned, to out (apt's InRelease).
func (s *Signer) Clearsign(ctx context.Context, in, out string, at time.Time) error {
	_ = os.Remove(out)
	_, err := s.gpg(ctx, "--faked-system-time", s.signTime(at), "--local-user", s.fpr, "--digest-algo", "SHA512", "--clearsign", "--output", out, in)
	return wrap(err, "clearsigning "+in)
}

// Detach writes a detached signature of in to out, armored or not.
func (s *Signer) Detach(ctx context.Context, in, out string, armor bool, at time.Time) error {
	_ = os.Remove(out)
	args := []string{"--faked-system-time", s.signTime(at), "--local-user", s.fpr, "--digest-algo", "SHA512", "--detach-sign", "--output", out}
	if armor {
		args = append(args, "--armor")
	}
	_, err := s.gpg(ctx, append(args, in)...)
	return wrap(err, "signing "+in)
}

// Export writes the public key to out: binary (an apt keyring for
// Signed-By) or armored (for rpm --import and gpgkey=).
func (s *Signer) Export(ctx context.Context, out string, armor bool) error {
	args := []string{"--export"}
	if armor {
		args = append(args, "--armor")
	}
	data, err := s.gpg(ctx, append(args, s.fpr)...)
	if err != nil {
		return wrap(err, "exporting the public key")
	}
	return os.WriteFile(out, data, 0o644)
}

// SignRPMs adds the key's signature to each rpm, in place, with rpmsign
// driving this signer's gpg.
func (s *Signer) SignRPMs(ctx context.Context, at time.Time, paths ...string) error {
	gpgPath, err := exec.LookPath("gpg")
	if err != nil {
		return wrap(err, "finding gpg for rpmsign")
	}
	gpgCmd := []string{gpgPath, "gpg", "--batch", "--no-tty", "--no-verbose", "--no-armor", "--homedir", s.home,
		"--pinentry-mode", "loopback", "--faked-system-time", s.signTime(at), "--digest-algo", "sha256"}
	if s.passFile != "" {
		gpgCmd = append(gpgCmd, "--passphrase-file", s.passFile)
	}
	gpgCmd = append(gpgCmd, "-u", s.fpr, "-sbo", "%{__signature_filename}", "%{__plaintext_filename}")
	for _, p := range paths {
		argv := []string{"rpmsign", "--addsign", "--define", "_gpg_name " + s.fpr, "--define", "_gpg_path " + s.home, "--define", "__gpg " + gpgPath,
			"--define", "__gpg_sign_cmd " + strings.Join(gpgCmd, " "), p}
		if _, err := s.r.Run(ctx, nil, argv...); err != nil {
			return wrap(err, "signing "+filepath.Base(p))
		}
	}
	return nil
}

func wrap(err error, what string) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %s: %w", ErrSigning, what, err)
}
