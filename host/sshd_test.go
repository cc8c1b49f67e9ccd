package host

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// realSSHD runs OpenSSH's sshd on loopback with the three host keys every
// distribution generates (ssh-keygen -A: rsa, ecdsa, ed25519), accepting
// the client key it returns. It returns the port, the client key file and
// the directory holding hk_TYPE.pub.
func realSSHD(t *testing.T) (port int, clientKey, dir string) {
	t.Helper()
	if _, err := os.Stat("/usr/sbin/sshd"); err != nil {
		t.Fatalf("this test needs OpenSSH's sshd (apt-get install openssh-server; .ci/run installs it): %v", err)
	}
	if os.Geteuid() != 0 {
		t.Fatal("sshd needs root to run as a login server")
	}
	dir = t.TempDir()
	for _, typ := range []string{"rsa", "ecdsa", "ed25519"} {
		keygen(t, typ, filepath.Join(dir, "hk_"+typ))
	}
	clientKey = filepath.Join(dir, "id_ed25519")
	keygen(t, "ed25519", clientKey)
	pub, _ := os.ReadFile(clientKey + ".pub")
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command("/usr/sbin/sshd", "-D", "-f", "/dev/null", "-p", strconv.Itoa(port), "-o", "ListenAddress=127.0.0.1",
		"-h", filepath.Join(dir, "hk_rsa"), "-h", filepath.Join(dir, "hk_ecdsa"), "-h", filepath.Join(dir, "hk_ed25519"),
		"-o", "AuthorizedKeysFile="+filepath.Join(dir, "authorized_keys"), "-o", "PermitRootLogin=prohibit-password",
		"-o", "StrictModes=no", "-o", "PidFile="+filepath.Join(dir, "pid"), "-E", filepath.Join(dir, "log"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			c.Close()
			return port, clientKey, dir
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "log"))
			t.Fatalf("sshd does not listen on %d: %v\n%s", port, err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func keygen(t *testing.T, typ, file string) {
	t.Helper()
	if out, err := exec.Command("ssh-keygen", "-q", "-t", typ, "-N", "", "-f", file).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -t %s: %v %s", typ, err, out)
	}
}

// knownLine is a known_hosts line for [127.0.0.1]:port with the host key
// of one type.
func knownLine(t *testing.T, dir, typ string, port int) string {
	t.Helper()
	pub, err := os.ReadFile(filepath.Join(dir, "hk_"+typ+".pub"))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(pub))
	return fmt.Sprintf("[127.0.0.1]:%d %s %s\n", port, f[0], f[1])
}

// A real host has three host keys; the operator's known_hosts holds one of
// them, in whatever form ssh wrote it. Every such known_hosts must let the
// client in, and a key that is not the host's must be refused as changed.
func TestSSHToARealServerWithThreeHostKeys(t *testing.T) {
	port, clientKey, dir := realSSHD(t)
	target := fmt.Sprintf("root@127.0.0.1:%d", port)
	kh := t.TempDir()

	// known_hosts written by ssh itself, hashed as Debian's ssh_config asks.
	bySSH := filepath.Join(kh, "by-ssh")
	out, err := exec.Command("ssh", "-F", "/dev/null", "-p", strconv.Itoa(port), "-i", clientKey, "-o", "BatchMode=yes",
		"-o", "UserKnownHostsFile="+bySSH, "-o", "StrictHostKeyChecking=accept-new", "-o", "HashKnownHosts=yes",
		"root@127.0.0.1", "true").CombinedOutput()
	if err != nil {
		t.Fatalf("ssh writing known_hosts: %v %s", err, out)
	}
	written, _ := os.ReadFile(bySSH)
	if !bytes.HasPrefix(written, []byte("|1|")) {
		t.Fatalf("ssh did not write a hashed entry: %q", written)
	}
	cases := map[string]string{"written by ssh (hashed)": string(written)}
	for _, typ := range []string{"ed25519", "ecdsa", "rsa"} {
		cases["only "+typ] = knownLine(t, dir, typ, port)
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(kh, strings.ReplaceAll(name, " ", "-"))
			if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			r, err := DialSSH(target, SSHConfig{KeyFile: clientKey, KnownHosts: []string{file}})
			if err != nil {
				t.Fatalf("known_hosts %q: %v", content, err)
			}
			defer r.Close()
			// What a backup copy's host gets of these: this host's keys
			// only (here beside another host's line), enough to reach it.
			withOther := filepath.Join(kh, strings.ReplaceAll(name, " ", "-")+"-and-another")
			os.WriteFile(withOther, []byte("10.9.9.9 "+strings.Fields(knownLine(t, dir, "ed25519", port))[1]+" "+strings.Fields(knownLine(t, dir, "ed25519", port))[2]+"\n"+content), 0o600)
			only, err := KnownHostsFor(target, []string{withOther})
			if err != nil || bytes.Contains(only, []byte("10.9.9.9")) {
				t.Fatalf("KnownHostsFor: %q %v", only, err)
			}
			onlyFile := filepath.Join(kh, strings.ReplaceAll(name, " ", "-")+"-only")
			os.WriteFile(onlyFile, only, 0o600)
			r2, err := DialSSH(target, SSHConfig{KeyFile: clientKey, KnownHosts: []string{onlyFile}, AsUser: true})
			if err != nil {
				t.Fatalf("with KnownHostsFor's %q: %v", only, err)
			}
			r2.Close()
			if out, err := r.Run(context.Background(), nil, "echo", "hello"); err != nil || string(out) != "hello\n" {
				t.Errorf("run: %q %v", out, err)
			}
		})
	}

	// Another host's key under this name: refused as changed, whatever
	// types the server offers.
	other := t.TempDir()
	keygen(t, "ed25519", filepath.Join(other, "hk_ed25519"))
	wrong := filepath.Join(kh, "wrong")
	os.WriteFile(wrong, []byte(knownLine(t, other, "ed25519", port)), 0o600)
	if _, err := DialSSH(target, SSHConfig{KeyFile: clientKey, KnownHosts: []string{wrong}}); err == nil || !strings.Contains(err.Error(), "changed") {
		t.Errorf("a key that is not the host's: %v", err)
	}
	// An unknown host: refused with the command that adds it.
	empty := filepath.Join(kh, "empty")
	os.WriteFile(empty, nil, 0o600)
	if _, err := DialSSH(target, SSHConfig{KeyFile: clientKey, KnownHosts: []string{empty}}); err == nil || !strings.Contains(err.Error(), "ssh-keyscan -p "+strconv.Itoa(port)) {
		t.Errorf("an unknown host: %v", err)
	}
	if _, err := KnownHostsFor(target, []string{empty}); err == nil || !strings.Contains(err.Error(), "ssh-keyscan -p "+strconv.Itoa(port)) {
		t.Errorf("KnownHostsFor an unknown host: %v", err)
	}
}
