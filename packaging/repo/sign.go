// Package repo publishes packages as what package managers consume: a
// signed apt repository (pool, Packages, Release, InRelease, Release.gpg)
// and signed yum/dnf repositories per architecture (signed rpms,
// repodata/repomd.xml and repomd.xml.asc), with the public key in both
// forms and the snippets users drop into /etc/apt/sources.list.d and
// /etc/yum.repos.d. Index formats are written by the tools made for them
// (apt-ftparchive, createrepo_c), signatures by gpg and rpmsign, each run
// with argv.
package repo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/etcd-appliance/appliance/host"
)

// ErrSigning is wrapped by failures to set up or use the signing key.
var ErrSigning = errors.New("repository signing")

// Tools are the programs a repository build runs.
var Tools = []string{"gpg", "gpgconf", "rpmsign", "rpm", "apt-ftparchive", "createrepo_c", "gzip", "xz"}

// CheckTools says which tools are missing, and which Debian packages
// bring them.
func CheckTools() error {
	var missing []string
	for _, t := range Tools {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s not found; fix: apt-get install gnupg rpm apt-utils createrepo-c gzip xz-utils", ErrSigning, strings.Join(missing, ", "))
	}
	return nil
}

// Signer signs with one secret key held in a private GnuPG home (0700).
// The key never leaves that home: only public keys and signatures are
// written elsewhere. gpg finds its settings (batch mode, loopback
// pinentry, the passphrase file, the signing time) in the home's
// gpg.conf, so that no path is ever pasted into an rpm macro.
type Signer struct {
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
// 0700, and makes a test signature: a wrong passphrase or an unusable
// key is found before anything is built.
func OpenSigner(ctx context.Context, home, keyFile, passFile string) (*Signer, error) {
	for _, f := range []struct{ path, what string }{{keyFile, "the signing key"}, {passFile, "the passphrase file"}} {
		if f.path == "" {
			continue
		}
		fi, err := os.Stat(f.path)
		if err != nil {
			return nil, fmt.Errorf("%w: %s %s: %w", ErrSigning, f.what, f.path, err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("%w: %s %s has mode %04o: others can read it; fix: chmod 600 %s", ErrSigning, f.what, f.path, fi.Mode().Perm(), f.path)
		}
	}
	s := &Signer{home: home, passFile: passFile}
	if err := s.setup(time.Time{}); err != nil {
		return nil, err
	}
	if _, err := s.gpg(ctx, "--import", keyFile); err != nil {
		return nil, fmt.Errorf("%w: importing %s: %w", ErrSigning, keyFile, err)
	}
	if err := s.identify(ctx); err != nil {
		return nil, err
	}
	return s, s.testSign(ctx)
}

// ThrowawaySigner uses the test key in home, making one (RSA 3072, no
// passphrase) the first time: kept between runs, so that rebuilding
// gives the same signatures.
func ThrowawaySigner(ctx context.Context, home string) (*Signer, error) {
	s := &Signer{home: home, Throwaway: true}
	if err := s.setup(time.Time{}); err != nil {
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

// setup makes the home and writes its gpg.conf; a non-zero at fixes the
// time signatures carry.
func (s *Signer) setup(at time.Time) error {
	if err := os.MkdirAll(s.home, 0o700); err != nil {
		return fmt.Errorf("%w: %w", ErrSigning, err)
	}
	if err := os.Chmod(s.home, 0o700); err != nil {
		return fmt.Errorf("%w: %w", ErrSigning, err)
	}
	conf := "batch\nno-tty\nquiet\npinentry-mode loopback\n"
	if s.passFile != "" {
		abs, err := filepath.Abs(s.passFile)
		if err != nil {
			return err
		}
		if strings.ContainsAny(abs, "\n\r") {
			return fmt.Errorf("%w: the passphrase file's name has a line break", ErrSigning)
		}
		conf += "passphrase-file " + abs + "\n"
	}
	if !at.IsZero() {
		conf += "faked-system-time " + s.signTime(at) + "\n"
	}
	return os.WriteFile(filepath.Join(s.home, "gpg.conf"), []byte(conf), 0o600)
}

// run runs a tool with this signer's GnuPG home.
func (s *Signer) run(ctx context.Context, argv ...string) ([]byte, error) {
	return host.LocalRunner{Env: []string{"GNUPGHOME=" + s.home}}.Run(ctx, nil, argv...)
}

func (s *Signer) gpg(ctx context.Context, args ...string) ([]byte, error) {
	return s.run(ctx, append([]string{"gpg"}, args...)...)
}

// identify finds the one secret key of the home, checks that it signs
// with RSA (rpm 4.18 verifies nothing else that gpg makes
// deterministically) and notes when its newest signing key was made.
func (s *Signer) identify(ctx context.Context) error {
	out, err := s.gpg(ctx, "--with-colons", "--list-secret-keys")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSigning, err)
	}
	var fprs []string
	signs, afterSec := false, false
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(line, ":")
		switch f[0] {
		case "fpr":
			if afterSec && len(f) > 9 {
				fprs = append(fprs, f[9])
			}
			afterSec = false
			continue
		case "sec", "ssb":
			afterSec = f[0] == "sec"
		default:
			continue
		}
		// Field 12 holds the key's own capabilities in lower case.
		if len(f) < 12 || !strings.Contains(f[11], "s") {
			continue
		}
		signs = true
		if f[3] != "1" {
			return fmt.Errorf("%w: the signing key uses algorithm %s, not RSA: rpm cannot check its signatures; fix: sign with an RSA key (gpg --quick-gen-key NAME rsa3072 sign)", ErrSigning, f[3])
		}
		if sec, err := strconv.ParseInt(f[5], 10, 64); err == nil && time.Unix(sec, 0).After(s.created) {
			s.created = time.Unix(sec, 0)
		}
	}
	if len(fprs) != 1 || !signs {
		return fmt.Errorf("%w: want one secret key that can sign in the signing key file, found %d keys", ErrSigning, len(fprs))
	}
	s.fpr = fprs[0]
	return nil
}

// testSign signs a few bytes: a wrong or missing passphrase shows here.
func (s *Signer) testSign(ctx context.Context) error {
	in := filepath.Join(s.home, "test-signature.txt")
	if err := os.WriteFile(in, []byte("test\n"), 0o600); err != nil {
		return err
	}
	defer os.Remove(in)
	defer os.Remove(in + ".sig")
	if _, err := s.gpg(ctx, "--local-user", s.fpr, "--detach-sign", "--output", in+".sig", in); err != nil {
		hint := ""
		if s.passFile == "" {
			hint = "; if the key has a passphrase, name a file holding it (mode 0600) in " + PassphraseEnv
		}
		return fmt.Errorf("%w: the key cannot sign: %w%s", ErrSigning, err, hint)
	}
	return nil
}

// Fingerprint is the signing key's fingerprint.
func (s *Signer) Fingerprint() string { return s.fpr }

// Close stops the gpg-agent the home started.
func (s *Signer) Close() {
	_, _ = s.run(context.Background(), "gpgconf", "--kill", "gpg-agent")
}

// signTime is when signatures say they were made: the build's time
// (SOURCE_DATE_EPOCH), or the signing key's creation if later (gpg
// refuses a signature older than its key). RSA signatures of the same
// bytes at the same time are the same bytes: rebuilding repeats them.
func (s *Signer) signTime(at time.Time) string {
	if at.Before(s.created) {
		at = s.created
	}
	return strconv.FormatInt(at.Unix(), 10) + "!"
}

// Clearsign writes in, clearsigned, to out (apt's InRelease).
func (s *Signer) Clearsign(ctx context.Context, in, out string) error {
	_, err := s.gpg(ctx, "--local-user", s.fpr, "--digest-algo", "SHA512", "--clearsign", "--output", out, in)
	return wrap(err, "clearsigning "+in)
}

// Detach writes a detached signature of in to out, armored or not.
func (s *Signer) Detach(ctx context.Context, in, out string, armor bool) error {
	args := []string{"--local-user", s.fpr, "--digest-algo", "SHA512", "--detach-sign", "--output", out}
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

// safeMacro is what may stand in an rpm macro unescaped.
var safeMacro = regexp.MustCompile(`^[A-Za-z0-9/._+-]+$`)

// SignRPMs adds the key's signature to each rpm, in place. Only the gpg
// path, the fingerprint and the package's file name reach rpm, each
// checked to hold no macro or shell syntax; the GnuPG home and the
// passphrase file reach gpg through the environment and gpg.conf.
func (s *Signer) SignRPMs(ctx context.Context, paths ...string) error {
	gpgPath, err := exec.LookPath("gpg")
	if err != nil {
		return wrap(err, "finding gpg for rpmsign")
	}
	if !safeMacro.MatchString(gpgPath) || !safeMacro.MatchString(s.fpr) {
		return fmt.Errorf("%w: gpg at %q cannot be named in an rpm macro", ErrSigning, gpgPath)
	}
	for _, p := range paths {
		// rpm expands macros in the names it derives from the package's
		// path (its signature file): it runs in the package's directory
		// and sees a bare name that holds no macro syntax.
		name := filepath.Base(p)
		if !safeMacro.MatchString(name) {
			return fmt.Errorf("%w: %q cannot be handed to rpmsign", ErrSigning, name)
		}
		r := host.LocalRunner{Dir: filepath.Dir(p), Env: []string{"GNUPGHOME=" + s.home}}
		if _, err := r.Run(ctx, nil, "rpmsign", "--addsign", "--define", "__gpg "+gpgPath, "--define", "_gpg_name "+s.fpr,
			"--define", "_gpg_digest_algo sha256", "--", name); err != nil {
			return wrap(err, "signing "+name)
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
