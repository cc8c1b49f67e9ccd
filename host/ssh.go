package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"time"

	"github.com/etcd-appliance/appliance/internal/shquote"

	"github.com/skeema/knownhosts"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// ErrSSH is wrapped by connection and authentication failures.
var ErrSSH = errors.New("ssh")

// SSHConfig is how etcd-installer reaches hosts.
type SSHConfig struct {
	// KnownHosts are known_hosts files; default ~/.ssh/known_hosts. Host
	// keys are always verified.
	KnownHosts []string
	// KeyFile is a private key; default: the SSH agent, then the usual
	// ~/.ssh/id_* files.
	KeyFile string
	Timeout time.Duration
	// AsUser runs commands as the login user even when it is not root
	// (no sudo): for a host that only stores files, such as a backup
	// copy's.
	AsUser bool
	// KnownHostsSource, when set, is the known_hosts file KnownHosts is
	// written from, which a host key error tells to fix instead (apply
	// writes a member's /etc/etcd/backup-known_hosts from the operator's
	// known_hosts, and would undo an edit); KnownHostsThen is what to run
	// after fixing it.
	KnownHostsSource, KnownHostsThen string
}

// SSHRunner runs commands on one host over SSH. Commands other than
// root's run through `sudo -n`.
type SSHRunner struct {
	Host   string
	client *ssh.Client
	sudo   bool
}

// DialSSH connects to target ("[user@]host[:port]").
func DialSSH(target string, cfg SSHConfig) (*SSHRunner, error) {
	userName, hostPort := "", target
	if u, h, ok := strings.Cut(target, "@"); ok {
		userName, hostPort = u, h
	}
	if userName == "" {
		if u, err := user.Current(); err == nil {
			userName = u.Username
		}
	}
	if _, _, err := net.SplitHostPort(hostPort); err != nil {
		hostPort = net.JoinHostPort(strings.Trim(hostPort, "[]"), "22")
	}
	home, _ := os.UserHomeDir()
	files := cfg.KnownHosts
	if len(files) == 0 {
		files = []string{filepath.Join(home, ".ssh", "known_hosts")}
	}
	// skeema/knownhosts (a well-kept wrapper of x/crypto's) also says which
	// key types known_hosts holds for this host: negotiating those, not
	// x/crypto's default preference, avoids a false "host key changed"
	// when the server has several keys (every distribution generates
	// rsa, ecdsa and ed25519) and known_hosts holds one of them.
	db, err := knownhosts.NewDB(files...)
	if err != nil {
		return nil, fmt.Errorf("%w: reading known hosts %v: %w (add the host's key after checking its fingerprint: ssh-keyscan HOST >> ~/.ssh/known_hosts)", ErrSSH, files, err)
	}
	auth, err := sshAuth(cfg.KeyFile, home)
	if err != nil {
		return nil, err
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	check := db.HostKeyCallback()
	client, err := ssh.Dial("tcp", hostPort, &ssh.ClientConfig{
		User: userName, Auth: auth, Timeout: timeout,
		HostKeyAlgorithms: db.HostKeyAlgorithms(hostPort),
		HostKeyCallback: func(hostname string, remote net.Addr, key ssh.PublicKey) error {
			err := check(hostname, remote, key)
			switch {
			case knownhosts.IsHostUnknown(err) && cfg.KnownHostsSource != "":
				return fmt.Errorf("host key of %s (%s %s) is not in %s: check the fingerprint, then add it to %s: ssh-keyscan -p %s %s >> %s; then %s",
					hostname, key.Type(), ssh.FingerprintSHA256(key), strings.Join(files, ", "), cfg.KnownHostsSource, portOf(hostPort), hostOf(hostPort), cfg.KnownHostsSource, cfg.KnownHostsThen)
			case knownhosts.IsHostKeyChanged(err) && cfg.KnownHostsSource != "":
				return fmt.Errorf("host key of %s changed (%s %s is not the key %s holds): someone may be intercepting the connection, or the host was reinstalled; check, then replace it in %s: ssh-keygen -f %s -R %s; ssh-keyscan -p %s %s >> %s; then %s",
					hostname, key.Type(), ssh.FingerprintSHA256(key), files[0], cfg.KnownHostsSource, cfg.KnownHostsSource, knownhosts.Normalize(hostPort), portOf(hostPort), hostOf(hostPort), cfg.KnownHostsSource, cfg.KnownHostsThen)
			case knownhosts.IsHostUnknown(err):
				return fmt.Errorf("host key of %s (%s %s) is not in %s: check the fingerprint, then add it: ssh-keyscan -p %s %s >> %s",
					hostname, key.Type(), ssh.FingerprintSHA256(key), strings.Join(files, ", "), portOf(hostPort), hostOf(hostPort), files[0])
			case knownhosts.IsHostKeyChanged(err):
				return fmt.Errorf("host key of %s changed (%s %s is not the key %s holds): someone may be intercepting the connection, or the host was reinstalled; check, then fix %s",
					hostname, key.Type(), ssh.FingerprintSHA256(key), files[0], files[0])
			}
			return err
		},
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrSSH, target, err)
	}
	return &SSHRunner{Host: target, client: client, sudo: userName != "root" && !cfg.AsUser}, nil
}

// KnownHostsFor is a known_hosts file holding only target's keys, as
// the known_hosts files hold them (every key type there; a
// @cert-authority line as such): what a host that must reach target needs,
// and nothing of the operator's other hosts. A target they do not hold is
// an error that says how to add it.
func KnownHostsFor(target string, files []string) ([]byte, error) {
	hostPort := target
	if _, h, ok := strings.Cut(target, "@"); ok {
		hostPort = h
	}
	if _, _, err := net.SplitHostPort(hostPort); err != nil {
		hostPort = net.JoinHostPort(strings.Trim(hostPort, "[]"), "22")
	}
	if len(files) == 0 {
		home, _ := os.UserHomeDir()
		files = []string{filepath.Join(home, ".ssh", "known_hosts")}
	}
	db, err := knownhosts.NewDB(files...)
	if err != nil {
		return nil, fmt.Errorf("%w: reading known hosts %v: %w", ErrSSH, files, err)
	}
	keys := db.HostKeys(hostPort)
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: the host key of %s is not in %s: check its fingerprint, then add it: ssh-keyscan -p %s %s >> %s",
			ErrSSH, hostPort, strings.Join(files, ", "), portOf(hostPort), hostOf(hostPort), files[0])
	}
	var b bytes.Buffer
	for _, k := range keys {
		if k.Cert {
			if err := knownhosts.WriteKnownHostCA(&b, knownhosts.Normalize(hostPort), k.PublicKey); err != nil {
				return nil, err
			}
			continue
		}
		b.WriteString(knownhosts.Line([]string{hostPort}, k.PublicKey) + "\n")
	}
	return b.Bytes(), nil
}

func hostOf(hp string) string { h, _, _ := net.SplitHostPort(hp); return h }
func portOf(hp string) string { _, p, _ := net.SplitHostPort(hp); return p }

func sshAuth(keyFile, home string) ([]ssh.AuthMethod, error) {
	var methods []ssh.AuthMethod
	if keyFile != "" {
		s, err := loadKey(keyFile)
		if err != nil {
			return nil, err
		}
		return []ssh.AuthMethod{ssh.PublicKeys(s)}, nil
	}
	if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" {
		if conn, err := net.Dial("unix", sock); err == nil {
			methods = append(methods, ssh.PublicKeysCallback(agent.NewClient(conn).Signers))
		}
	}
	var signers []ssh.Signer
	for _, name := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
		if s, err := loadKey(filepath.Join(home, ".ssh", name)); err == nil {
			signers = append(signers, s)
		}
	}
	if len(signers) > 0 {
		methods = append(methods, ssh.PublicKeys(signers...))
	}
	if len(methods) == 0 {
		return nil, fmt.Errorf("%w: no SSH agent (SSH_AUTH_SOCK) and no key in ~/.ssh: pass --ssh-key FILE", ErrSSH)
	}
	return methods, nil
}

func loadKey(p string) (ssh.Signer, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	s, err := ssh.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("%w: key %s: %w (an encrypted key needs the SSH agent)", ErrSSH, p, err)
	}
	return s, nil
}

// Close closes the connection.
func (r *SSHRunner) Close() error { return r.client.Close() }

// Run implements Runner. The remote side gets argv quoted for its shell,
// so no argument is ever interpreted.
func (r *SSHRunner) Run(ctx context.Context, stdin io.Reader, argv ...string) ([]byte, error) {
	if len(argv) == 0 {
		return nil, fmt.Errorf("%w: empty command", ErrCommand)
	}
	s, err := r.client.NewSession()
	if err != nil {
		return nil, &CommandError{Host: r.Host, Argv: argv, Err: err}
	}
	defer s.Close()
	full := argv
	if r.sudo {
		full = append([]string{"sudo", "-n", "--"}, argv...)
	}
	quoted := make([]string, len(full))
	for i, a := range full {
		quoted[i] = shquote.Quote(a)
	}
	var out, errb bytes.Buffer
	s.Stdin, s.Stdout, s.Stderr = stdin, &out, &errb
	done := make(chan error, 1)
	go func() { done <- s.Run(strings.Join(quoted, " ")) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = s.Signal(ssh.SIGKILL)
		s.Close()
		err = ctx.Err()
	}
	if err != nil {
		return out.Bytes(), &CommandError{Host: r.Host, Argv: argv, Stderr: errb.String(), Err: err}
	}
	return out.Bytes(), nil
}
