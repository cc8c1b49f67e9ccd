package host

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// sshServer is a minimal SSH server on loopback that runs each exec
// request with /bin/sh -c, enough to test the client end to end.
func sshServer(t *testing.T, clientKey ssh.PublicKey) (addr string, hostKey ssh.Signer) {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	hostKey, _ = ssh.NewSignerFromKey(priv)
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
		if string(k.Marshal()) == string(clientKey.Marshal()) {
			return nil, nil
		}
		return nil, io.EOF
	}}
	cfg.AddHostKey(hostKey)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go serveSSH(c, cfg)
		}
	}()
	return l.Addr().String(), hostKey
}

func serveSSH(c net.Conn, cfg *ssh.ServerConfig) {
	_, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		ch, reqs, err := nc.Accept()
		if err != nil {
			continue
		}
		go func() {
			defer ch.Close()
			for req := range reqs {
				if req.Type != "exec" {
					req.Reply(false, nil)
					continue
				}
				n := binary.BigEndian.Uint32(req.Payload)
				cmd := exec.Command("/bin/sh", "-c", string(req.Payload[4:4+n]))
				cmd.Stdin, cmd.Stdout, cmd.Stderr = ch, ch, ch.Stderr()
				req.Reply(true, nil)
				code := 0
				if err := cmd.Run(); err != nil {
					code = 1
					if ee, ok := err.(*exec.ExitError); ok {
						code = ee.ExitCode()
					}
				}
				status := make([]byte, 4)
				binary.BigEndian.PutUint32(status, uint32(code))
				ch.SendRequest("exit-status", false, status)
				return
			}
		}()
	}
}

func TestSSHRunner(t *testing.T) {
	_, cpriv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(cpriv)
	addr, hostKey := sshServer(t, signer.PublicKey())
	dir := t.TempDir()
	keyPEM, _ := ssh.MarshalPrivateKey(cpriv, "")
	keyFile := filepath.Join(dir, "id")
	os.WriteFile(keyFile, pemEncode(keyPEM), 0o600)
	known := filepath.Join(dir, "known_hosts")
	os.WriteFile(known, []byte(knownhosts.Line([]string{knownhosts.Normalize(addr)}, hostKey.PublicKey())+"\n"), 0o600)

	r, err := DialSSH("root@"+addr, SSHConfig{KnownHosts: []string{known}, KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	hostile := `a b; echo pwned "$HOME" $(id) 'q' \n`
	out, err := r.Run(context.Background(), nil, "printf", "%s", hostile)
	if err != nil || string(out) != hostile {
		t.Errorf("argv not preserved: %q %v", out, err)
	}
	out, err = r.Run(context.Background(), strings.NewReader("from stdin"), "cat")
	if err != nil || string(out) != "from stdin" {
		t.Errorf("stdin: %q %v", out, err)
	}
	_, err = r.Run(context.Background(), nil, "ls", "/no/such/dir")
	var ce *CommandError
	if !asCommandError(err, &ce) || !strings.Contains(ce.Stderr, "No such file") {
		t.Errorf("stderr not captured: %v", err)
	}

	// An unknown host key is refused with the fix.
	os.WriteFile(known, nil, 0o600)
	_, err = DialSSH("root@"+addr, SSHConfig{KnownHosts: []string{known}, KeyFile: keyFile})
	if err == nil || !strings.Contains(err.Error(), "is not in") || !strings.Contains(err.Error(), "ssh-keyscan") {
		t.Errorf("unknown host key: %v", err)
	}
	// A changed host key is refused.
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	otherSigner, _ := ssh.NewSignerFromKey(other)
	os.WriteFile(known, []byte(knownhosts.Line([]string{knownhosts.Normalize(addr)}, otherSigner.PublicKey())+"\n"), 0o600)
	_, err = DialSSH("root@"+addr, SSHConfig{KnownHosts: []string{known}, KeyFile: keyFile})
	if err == nil || !strings.Contains(err.Error(), "changed") {
		t.Errorf("changed host key: %v", err)
	}
}

func asCommandError(err error, target **CommandError) bool {
	ce, ok := err.(*CommandError)
	if ok {
		*target = ce
	}
	return ok
}

func pemEncode(b *pem.Block) []byte { return pem.EncodeToMemory(b) }
