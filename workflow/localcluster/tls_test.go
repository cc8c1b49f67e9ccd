package localcluster_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcd-appliance/appliance/cluster"
	"github.com/etcd-appliance/appliance/internal/envfile"
	"github.com/etcd-appliance/appliance/internal/etcdtest"
	"github.com/etcd-appliance/appliance/inventory"
	"github.com/etcd-appliance/appliance/inventory/inventorytest"
	"github.com/etcd-appliance/appliance/layout"
	"github.com/etcd-appliance/appliance/pki"
	"github.com/etcd-appliance/appliance/workflow/apply"
	"github.com/etcd-appliance/appliance/workflow/backup"
	"github.com/etcd-appliance/appliance/workflow/certs"
	"github.com/etcd-appliance/appliance/workflow/localcluster"
	"github.com/etcd-appliance/appliance/workflow/localcluster/localclustertest"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

func mustLoadCA(t *testing.T, dir string) *pki.CA {
	t.Helper()
	ca, err := certs.LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func startTLS(t *testing.T, inv *inventory.Inventory) *localcluster.Cluster {
	t.Helper()
	lc := localclustertest.New(t, inv)
	if lc.Certs == "" {
		t.Fatal("TLS inventory without a certificate directory")
	}
	if err := lc.Start(context.Background(), time.Minute); err != nil {
		t.Fatal(err)
	}
	return lc
}

// clientWith connects with the cluster's CA and an optional client
// certificate, outside the operator's helpers, as any client would.
func clientWith(t *testing.T, lc *localcluster.Cluster, certPEM, keyPEM []byte) *clientv3.Client {
	t.Helper()
	caPEM, err := os.ReadFile(filepath.Join(lc.Certs, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if certPEM != nil {
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		// Offered whatever CAs the server names, as an attacker would.
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: lc.Inv.ClientURLs(), DialTimeout: 3 * time.Second, TLS: tc, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// handshakeAlert asks /version with a client certificate (or none) and
// returns the error the server's TLS layer gives.
func handshakeAlert(t *testing.T, lc *localcluster.Cluster, certPEM, keyPEM []byte) error {
	return getWith(t, lc, lc.Inv.ClientURLs()[0]+"/version", certPEM, keyPEM)
}

// getWith GETs url with the cluster's CA and a client certificate (or
// none).
func getWith(t *testing.T, lc *localcluster.Cluster, url string, certPEM, keyPEM []byte) error {
	t.Helper()
	caPEM, _ := os.ReadFile(filepath.Join(lc.Certs, "ca.crt"))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	tc := &tls.Config{RootCAs: pool}
	if certPEM != nil {
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		// Offered whatever CAs the server names, as an attacker would.
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get(url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}

// The peer port accepts members' peer certificates only: the operator's
// client certificate (CN root), a member's client certificate and a
// proxy's, all from the same CA, are refused there.
func TestPeerPortAcceptsPeerCertificatesOnly(t *testing.T) {
	inv := localclustertest.TLSInventory(t, 1, "")
	inv = inventorytest.Parse(t, localclustertest.TLSText(t, 3, "")+"[[proxy]]\nname = \"px\"\naddress = \"127.0.0.1\"\nlisten = \"127.0.0.1:"+
		fmt.Sprint(etcdtest.FreePorts(t, 1)[0])+"\"\n")
	lc := startTLS(t, inv)
	peer := inv.PeerURL(&inv.Members[0]) + "/members"
	read := func(p ...string) ([]byte, []byte) {
		c, _ := os.ReadFile(filepath.Join(append([]string{lc.Certs}, p...)...) + ".crt")
		k, _ := os.ReadFile(filepath.Join(append([]string{lc.Certs}, p...)...) + ".key")
		return c, k
	}
	if c, k := read("m1", "peer"); getWith(t, lc, peer, c, k) != nil {
		t.Fatalf("a member's peer certificate refused on the peer port: %v", getWith(t, lc, peer, c, k))
	}
	for _, who := range [][]string{{pki.OperatorDir, "client"}, {"m1", "client"}, {"m1", "server"}, {"px", "client"}} {
		c, k := read(who...)
		if err := getWith(t, lc, peer, c, k); err == nil {
			t.Errorf("%s read /members on the peer port", filepath.Join(who...))
		}
	}
}

// A cluster from before peer certificates shared one common name (each
// had its member's, and the peer port took any certificate of the CA)
// moves over with certs and apply: certificates reach every host before
// the first restart, the members restart one at a time, and no write
// fails.
func TestPeerCommonNameUpgrade(t *testing.T) {
	lc := startTLS(t, localclustertest.TLSInventory(t, 3, ""))
	ctx := context.Background()
	ca := mustLoadCA(t, lc.Certs)
	// The old state: peer certificates named after their member, and no
	// ETCD_PEER_CERT_ALLOWED_CN.
	if err := lc.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tg := range lc.Targets {
		leaf := pki.HostLeaves(lc.Inv, tg.Host)[1]
		leaf.CommonName, leaf.Unit = tg.Host.Name, ""
		crt, key, err := ca.Issue(leaf, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		for p, b := range map[string][]byte{"peer.crt": crt, "peer.key": key} {
			os.WriteFile(filepath.Join(lc.Certs, tg.Host.Name, p), b, 0o600)
		}
		os.WriteFile(tg.FS.Path(lc.Inv.TLS.PeerKeyFile), key, 0o600)
		os.WriteFile(tg.FS.Path(lc.Inv.TLS.PeerCertFile), crt, 0o644)
		conf := tg.FS.Path(layout.EtcdConf)
		b, _ := os.ReadFile(conf)
		os.WriteFile(conf, []byte(strings.Replace(string(b), "ETCD_PEER_CERT_ALLOWED_CN=etcd-peer\n", "", 1)), 0o640)
	}
	for _, tg := range lc.Targets {
		if err := tg.Services.Start(ctx, tg.Unit()); err != nil {
			t.Fatal(err)
		}
	}
	if err := lc.WaitReady(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	w := localclustertest.StartWriter(t, lc, lc.Inv.ClientURLs())
	acts, err := certs.Ensure(lc.Certs, lc.Inv, time.Now(), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	reissued := 0
	for _, a := range acts {
		if strings.HasSuffix(a.Path, "peer.crt") && strings.Contains(a.Action, "common name") {
			reissued++
		}
	}
	if reissued != 3 {
		t.Fatalf("certs re-issued %d peer certificates: %+v", reissued, acts)
	}
	src, err := certs.From(lc.Inv, lc.Certs)
	if err != nil {
		t.Fatal(err)
	}
	out := apply.All(ctx, lc.Inv, lc.Targets, apply.AllOptions{Options: apply.Options{Dial: lc.Dial}, Extra: src, WaitReady: true, Wait: time.Minute}, localclustertest.Log(t))
	for _, o := range out {
		if o.Err != nil || !o.Rolling {
			t.Errorf("%s: rolling=%v %v", o.Name, o.Rolling, o.Err)
		}
	}
	acked, failed := w.Finish()
	if len(failed) > 0 {
		t.Errorf("%d of %d writes failed during the move, first: %v", len(failed), len(acked)+len(failed), failed[0])
	}
	if cs := localclustertest.Status(t, lc); !cs.Healthy {
		t.Errorf("after the move: %s %v", cs.Verdict(), cs.Problems)
	}
}

func TestTLSClusterRefusesClientsWithoutAValidCertificate(t *testing.T) {
	inv := localclustertest.TLSInventory(t, 3, "")
	urls := inv.ClientURLs()
	for i := range inv.Members {
		urls = append(urls, inv.PeerURL(&inv.Members[i]))
	}
	for _, u := range urls {
		if !strings.HasPrefix(u, "https://") {
			t.Fatalf("TLS inventory renders %s", u)
		}
	}
	lc := startTLS(t, inv)
	if cs := localclustertest.Status(t, lc); !cs.Healthy {
		t.Fatalf("not healthy: %s %v", cs.Verdict(), cs.Problems)
	}
	// The operator's certificate works.
	ctx := context.Background()
	op, _ := os.ReadFile(filepath.Join(lc.Certs, pki.OperatorDir, "client.crt"))
	opKey, _ := os.ReadFile(filepath.Join(lc.Certs, pki.OperatorDir, "client.key"))
	if err := handshakeAlert(t, lc, op, opKey); err != nil {
		t.Fatalf("operator certificate refused: %v", err)
	}
	good := clientWith(t, lc, op, opKey)
	if _, err := good.Put(ctx, "k", "v"); err != nil {
		t.Fatalf("put with the operator certificate: %v", err)
	}

	other, _, err := pki.NewCA("other", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	otherCert, otherKey, _ := other.Issue(pki.OperatorLeaf(), time.Now())
	ca := mustLoadCA(t, lc.Certs)
	// Issued two years ago: valid for one, so expired a year ago.
	oldCert, oldKey, _ := ca.Issue(pki.OperatorLeaf(), time.Now().Add(-2*pki.LeafValidity))
	cases := []struct {
		name      string
		cert, key []byte
		alert     string
	}{
		{"no certificate", nil, nil, "certificate required"},
		{"another CA", otherCert, otherKey, "unknown certificate authority"},
		{"expired", oldCert, oldKey, "expired certificate"},
	}
	for _, c := range cases {
		err := handshakeAlert(t, lc, c.cert, c.key)
		if err == nil || !strings.Contains(err.Error(), c.alert) {
			t.Errorf("%s: HTTP error %v, want the TLS alert %q", c.name, err, c.alert)
		}
		// And an etcd client gets no data.
		cli := clientWith(t, lc, c.cert, c.key)
		gctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		_, err = cli.Get(gctx, "k")
		cancel()
		if err == nil {
			t.Errorf("%s: a client read the cluster", c.name)
		}
	}

	// Plain http to a TLS listener is no way around it.
	resp, err := http.Get(strings.Replace(lc.Inv.ClientURLs()[0], "https://", "http://", 1) + "/v3/kv/range")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain http served a range request")
		}
	}
}

// TestEtcdctlWithRenderedEnv runs the real etcdctl with nothing but the
// rendered /etc/etcd/etcdctl.env (paths mapped into the host's root).
func TestEtcdctlWithRenderedEnv(t *testing.T) {
	lc := startTLS(t, localclustertest.TLSInventory(t, 1, ""))
	tg := lc.Targets[0]
	b, err := tg.FS.ReadFile(layout.EtcdctlEnv)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := envfile.Parse(layout.EtcdctlEnv, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=" + os.Getenv("PATH")}
	seen := map[string]bool{}
	for _, e := range entries {
		v := e.Value
		if strings.HasPrefix(v, "/") {
			v = tg.FS.Path(v)
		}
		seen[e.Key] = true
		env = append(env, e.Key+"="+v)
	}
	for _, k := range []string{"ETCDCTL_ENDPOINTS", "ETCDCTL_CACERT", "ETCDCTL_CERT", "ETCDCTL_KEY"} {
		if !seen[k] {
			t.Errorf("etcdctl.env lacks %s", k)
		}
	}
	etcdctl := filepath.Join(etcdtest.BinDir(t), "etcdctl")
	run := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, etcdctl, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run("put", "greeting", "hello"); err != nil || strings.TrimSpace(out) != "OK" {
		t.Fatalf("etcdctl put: %v: %s", err, out)
	}
	if out, err := run("get", "greeting", "--print-value-only"); err != nil || strings.TrimSpace(out) != "hello" {
		t.Fatalf("etcdctl get: %v: %q", err, out)
	}
	if out, err := run("endpoint", "health"); err != nil || !strings.Contains(out, "is healthy") {
		t.Fatalf("etcdctl endpoint health: %v: %s", err, out)
	}
	// Without the certificate the same command fails.
	var noCert []string
	for _, e := range env {
		if !strings.HasPrefix(e, "ETCDCTL_CERT=") && !strings.HasPrefix(e, "ETCDCTL_KEY=") {
			noCert = append(noCert, e)
		}
	}
	env = append(noCert, "ETCDCTL_COMMAND_TIMEOUT=3s", "ETCDCTL_DIAL_TIMEOUT=2s")
	if out, err := run("get", "greeting"); err == nil {
		t.Fatalf("etcdctl without a client certificate read the cluster: %s", out)
	}
}

func TestAuthOnTLSCluster(t *testing.T) {
	const password = "correct horse battery staple"
	pwFile := filepath.Join(t.TempDir(), "root-password")
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	inv := localclustertest.TLSInventory(t, 3, fmt.Sprintf("auth = true\nroot_password_file = %q\n", pwFile))
	lc := startTLS(t, inv)
	ctx := context.Background()
	c, err := lc.Dial(inv.ClientURLs())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cli := c.(*cluster.Client).KV()
	if _, err := cli.Put(ctx, "before", "auth"); err != nil {
		t.Fatal(err)
	}
	// Without the password file here, auth is left off, saying why.
	elsewhere := *inv
	elsewhere.Cluster.RootPasswordFile = filepath.Join(t.TempDir(), "absent")
	if err := cluster.EnsureAuth(ctx, &elsewhere, c, localclustertest.Log(t)); !errors.Is(err, cluster.ErrNoPassword) {
		t.Fatalf("EnsureAuth without the password file: %v", err)
	}
	if st, err := cli.AuthStatus(ctx); err != nil || st.Enabled {
		t.Fatalf("auth enabled without a password: %v %v", st, err)
	}
	pw, err := cluster.ReadPassword(inv.Cluster.RootPasswordFile)
	if err != nil || pw != password {
		t.Fatalf("ReadPassword: %q %v", pw, err)
	}
	if err := cluster.ConfigureAuth(ctx, cli.Auth, password, localclustertest.Log(t)); err != nil {
		t.Fatal(err)
	}
	st, err := cli.AuthStatus(ctx)
	if err != nil || !st.Enabled {
		t.Fatalf("auth status %v %v", st, err)
	}
	// Idempotent.
	if err := cluster.ConfigureAuth(ctx, cli.Auth, password, localclustertest.Log(t)); err != nil {
		t.Fatalf("second ConfigureAuth: %v", err)
	}
	// The operator certificate's CN is root: reads, writes, and the
	// day-2 view keep working.
	if _, err := cli.Put(ctx, "after", "auth"); err != nil {
		t.Fatalf("root by certificate: %v", err)
	}
	if cs := localclustertest.Status(t, lc); !cs.Healthy {
		t.Fatalf("status with auth on: %s %v", cs.Verdict(), cs.Problems)
	}
	ca := mustLoadCA(t, lc.Certs)
	issue := func(cn string) *clientv3.Client {
		crt, key, err := ca.Issue(pki.Leaf{Name: "client", Usage: pki.Client, CommonName: cn}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return clientWith(t, lc, crt, key)
	}
	reader := issue(cluster.ReaderUser)
	if r, err := reader.Get(ctx, "before"); err != nil || len(r.Kvs) != 1 {
		t.Fatalf("reader get: %v %v", r, err)
	}
	if _, err := reader.Put(ctx, "x", "y"); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("reader put: %v, want permission denied", err)
	}
	// A certificate from the right CA for an unknown user gets nothing.
	if _, err := issue("mallory").Get(ctx, "before"); err == nil {
		t.Error("an unknown user read a key")
	}
	// The root password works too (with a certificate for the TLS layer
	// whose CN is not a user).
	crt, key, _ := ca.Issue(pki.Leaf{Name: "client", Usage: pki.Client, CommonName: "nobody"}, time.Now())
	caPEM, _ := os.ReadFile(filepath.Join(lc.Certs, "ca.crt"))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	pair, _ := tls.X509KeyPair(crt, key)
	pwCli, err := clientv3.New(clientv3.Config{Endpoints: inv.ClientURLs(), DialTimeout: 3 * time.Second, Logger: zap.NewNop(),
		TLS: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}}, Username: cluster.RootUser, Password: password})
	if err != nil {
		t.Fatal(err)
	}
	defer pwCli.Close()
	if _, err := pwCli.Put(ctx, "by", "password"); err != nil {
		t.Errorf("root by password: %v", err)
	}
	// Day-2 work that needs root keeps working as the operator: a backup
	// (snapshot and key-space hash) and EnsureAuth finding auth on.
	file := filepath.Join(t.TempDir(), "snap.db")
	info, err := backup.Save(ctx, inv, c, c.(*cluster.Client).Credentials(), backup.SaveOptions{Out: file}, localclustertest.Log(t))
	if err != nil || info.Revision == 0 {
		t.Errorf("backup with auth on: %+v %v", info, err)
	}
	if err := cluster.EnsureAuth(ctx, inv, c, localclustertest.Log(t)); err != nil {
		t.Errorf("EnsureAuth with auth on: %v", err)
	}
	// Restoring that backup over the running cluster brings back its keys
	// and its auth: the snapshot carries users, roles and the auth switch.
	if _, err := cli.Put(ctx, "after-backup", "gone on restore"); err != nil {
		t.Fatal(err)
	}
	if err := backup.Restore(ctx, lc.Inv, file, lc.Targets, backup.RestoreOptions{Dial: lc.Dial, Wait: time.Minute}, localclustertest.Log(t)); err != nil {
		t.Fatalf("restore with auth on: %v", err)
	}
	rc, err := lc.Dial(inv.ClientURLs())
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	rcli := rc.(*cluster.Client).KV()
	if r, err := rcli.Get(ctx, "by"); err != nil || len(r.Kvs) != 1 {
		t.Errorf("a key from before the backup after restore: %v %v", r, err)
	}
	if r, err := rcli.Get(ctx, "after-backup"); err != nil || len(r.Kvs) != 0 {
		t.Errorf("a key from after the backup survived the restore: %v %v", r, err)
	}
	if st, err := rcli.AuthStatus(ctx); err != nil || !st.Enabled {
		t.Errorf("auth after restore: %v %v", st, err)
	}
	if _, err := issue(cluster.ReaderUser).Put(ctx, "x", "y"); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("reader put after restore: %v, want permission denied", err)
	}
	bad, err := clientv3.New(clientv3.Config{Endpoints: inv.ClientURLs(), DialTimeout: 3 * time.Second, Logger: zap.NewNop(),
		TLS: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}}, Username: cluster.RootUser, Password: "wrong"})
	if err == nil {
		defer bad.Close()
		if _, err := bad.Get(ctx, "by"); err == nil {
			t.Error("a wrong root password read a key")
		}
	}
}

// A gRPC proxy rendered for a TLS cluster serves TLS with client
// certificates required, and reaches the members with its own client
// certificate.
func TestProxyOnTLSCluster(t *testing.T) {
	port := etcdtest.FreePorts(t, 1)[0]
	inv := inventorytest.Parse(t, fmt.Sprintf("%s[[proxy]]\nname = \"px\"\naddress = \"127.0.0.1\"\nlisten = \"127.0.0.1:%d\"\n",
		localclustertest.TLSText(t, 3, ""), port))
	lc := startTLS(t, inv)
	op := filepath.Join(lc.Certs, pki.OperatorDir)
	crt, _ := os.ReadFile(filepath.Join(op, "client.crt"))
	key, _ := os.ReadFile(filepath.Join(op, "client.key"))
	proxyURL := fmt.Sprintf("https://127.0.0.1:%d", port)

	c := clientWith(t, lc, crt, key)
	c.SetEndpoints(proxyURL)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Put(ctx, "via", "proxy"); err != nil {
		t.Fatalf("put through the TLS proxy: %v", err)
	}
	direct := clientWith(t, lc, crt, key)
	if r, err := direct.Get(ctx, "via"); err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "proxy" {
		t.Fatalf("the proxied put on the members: %v %v", r, err)
	}
	// The proxy asks for a client certificate like the members do.
	caPEM, _ := os.ReadFile(filepath.Join(lc.Certs, "ca.crt"))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get(proxyURL + "/version")
	if err == nil {
		resp.Body.Close()
		t.Fatal("the proxy answered a client without a certificate")
	}
	if !strings.Contains(err.Error(), "certificate required") && !strings.Contains(err.Error(), "bad certificate") {
		t.Errorf("no certificate at the proxy: %v", err)
	}
	px, _ := lc.Target("px")
	status := func() string {
		st, err := px.Services.State(ctx, px.Unit())
		if err != nil {
			t.Fatal(err)
		}
		return st.Status
	}
	if !etcdtest.Eventually(10*time.Second, 50*time.Millisecond, func() bool { return strings.HasSuffix(status(), "; members answer") }) {
		t.Errorf("proxy STATUS %q", status())
	}

	// With auth on, the proxy passes on a client's user and password; a
	// certificate alone names nobody through it.
	if err := cluster.ConfigureAuth(ctx, direct.Auth, "s3cret", localclustertest.Log(t)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	pool2 := x509.NewCertPool()
	pool2.AppendCertsFromPEM(caPEM)
	pair, _ := tls.X509KeyPair(crt, key)
	viaProxy := func(user, password string) error {
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{proxyURL}, DialTimeout: 3 * time.Second, Logger: zap.NewNop(),
			TLS: &tls.Config{RootCAs: pool2, Certificates: []tls.Certificate{pair}}, Username: user, Password: password})
		if err != nil {
			return err
		}
		defer cli.Close()
		_, err = cli.Put(ctx, "via", "proxy with auth")
		return err
	}
	if err := viaProxy(cluster.RootUser, "s3cret"); err != nil {
		t.Errorf("root with its password through the proxy: %v", err)
	}
	if err := viaProxy("", ""); err == nil {
		t.Error("a certificate alone wrote through the proxy with auth on")
	}
}
