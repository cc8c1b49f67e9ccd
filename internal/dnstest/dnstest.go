// Package dnstest serves DNS records with a real dnsmasq on loopback, for
// tests of what etcd's SRV lookups find.
package dnstest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Dnsmasq serves the dnsmasq configuration conf (records only: no
// upstream, no hosts file) on a loopback port until the test ends, and
// returns a resolver that asks it, once it answers.
func Dnsmasq(t testing.TB, conf []byte) *net.Resolver {
	t.Helper()
	path := filepath.Join(t.TempDir(), "dnsmasq.conf")
	if err := os.WriteFile(path, conf, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("dnsmasq", "--test", "--conf-file="+path).CombinedOutput(); err != nil {
		t.Fatalf("dnsmasq --test: %v\n%s", err, out)
	}
	// The port is free when picked but may be taken before dnsmasq binds
	// it (any process's outgoing UDP socket may get it): then dnsmasq
	// exits saying so, and another port is tried.
	var lastOut string
	for range 5 {
		res, out, inUse := start(t, path)
		if res != nil {
			return res
		}
		if !inUse {
			t.Fatalf("dnsmasq did not serve:\n%s", out)
		}
		lastOut = out
	}
	t.Fatalf("dnsmasq found no free port in 5 tries:\n%s", lastOut)
	return nil
}

// start runs dnsmasq on a free port and returns a resolver once it
// answers; or, if it exited, its output and whether the port was taken.
func start(t testing.TB, path string) (*net.Resolver, string, bool) {
	t.Helper()
	l, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.LocalAddr().(*net.UDPAddr).Port
	l.Close()
	var out strings.Builder
	cmd := exec.Command("dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--bind-interfaces",
		"--listen-address=127.0.0.1", fmt.Sprintf("--port=%d", port), "--pid-file=", "--user=root", "--conf-file="+path)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", fmt.Sprintf("127.0.0.1:%d", port))
	}}
	// Ready once it answers: poll with a deadline.
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-exited:
			return nil, out.String(), strings.Contains(out.String(), "Address already in use")
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		_, err := res.LookupHost(ctx, "ready.invalid")
		cancel()
		// Any answer will do (dnsmasq refuses names it does not hold):
		// only a timeout or a refused connection means it is not up.
		var dnsErr *net.DNSError
		if err == nil || (errors.As(err, &dnsErr) && !dnsErr.IsTimeout && !strings.Contains(err.Error(), "refused")) {
			return res, "", false
		}
		if time.Now().After(deadline) {
			t.Fatalf("dnsmasq on port %d does not answer: %v", port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
