package node

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/spf13/pflag"
	"go.etcd.io/etcd/client/pkg/v3/transport"
)

// proxyDefaultListen is grpc-proxy's default --listen-addr.
const proxyDefaultListen = "127.0.0.1:23790"

// proxyFlags are the few grpc-proxy flags the readiness probe needs.
type proxyFlags struct {
	listen                     string
	serverCert, serverKey, sCA string // the proxy's own listener
	clientCert, clientKey, cCA string // towards the members
}

func parseProxyFlags(args []string) proxyFlags {
	var f proxyFlags
	fs := pflag.NewFlagSet("grpc-proxy", pflag.ContinueOnError)
	fs.ParseErrorsAllowlist.UnknownFlags = true
	fs.SetOutput(io.Discard)
	fs.StringVar(&f.listen, "listen-addr", proxyDefaultListen, "")
	fs.StringVar(&f.serverCert, "cert-file", "", "")
	fs.StringVar(&f.serverKey, "key-file", "", "")
	fs.StringVar(&f.sCA, "trusted-ca-file", "", "")
	fs.StringVar(&f.clientCert, "cert", "", "")
	fs.StringVar(&f.clientKey, "key", "", "")
	fs.StringVar(&f.cCA, "cacert", "", "")
	// grpc-proxy itself reports bad flags; the probe only reads these.
	_ = fs.Parse(args)
	return f
}

// healthURL and client ask the proxy's own listener, as a client of the
// proxy would: with TLS, the proxy's client certificate (a certificate
// from the cluster CA, which the listener requires) and the CA.
func (f proxyFlags) healthURL() string {
	addr := f.listen
	// A proxy on every interface is asked on loopback, a name its
	// certificate carries.
	if host, port, err := net.SplitHostPort(addr); err == nil {
		if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
	}
	if f.serverCert != "" {
		return "https://" + addr + "/health"
	}
	return "http://" + addr + "/health"
}

func (f proxyFlags) client() (*http.Client, error) {
	tr := &http.Transport{DisableKeepAlives: true}
	if f.serverCert != "" {
		ca := f.sCA
		if ca == "" {
			ca = f.cCA
		}
		info := transport.TLSInfo{CertFile: f.clientCert, KeyFile: f.clientKey, TrustedCAFile: ca}
		if f.clientCert == "" {
			info.CertFile, info.KeyFile = f.serverCert, f.serverKey
		}
		cfg, err := info.ClientConfig()
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig = cfg
	}
	return &http.Client{Transport: tr, Timeout: 3 * time.Second}, nil
}

// proxyHealth asks /health once: whether the listener answers, and what
// the proxy says about the members behind it.
func proxyHealth(ctx context.Context, c *http.Client, url string) (answered bool, members string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err.Error()
	}
	resp, err := c.Do(req)
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	var h struct {
		Health string `json:"health"`
		Reason string `json:"reason"`
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(body, &h) != nil {
		return true, fmt.Sprintf("unexpected answer (HTTP %d)", resp.StatusCode)
	}
	if h.Health == "true" {
		return true, "members answer"
	}
	if h.Reason == "" {
		h.Reason = fmt.Sprintf("HTTP %d", resp.StatusCode)
	}
	return true, "members do not answer the proxy: " + h.Reason
}

// proxyStatus keeps STATUS= saying whether the proxy's listener answers
// and whether the members answer through it. READY=1 is upstream's: the
// proxy sends it once its listeners serve, and exits before that on a bad
// TLS set-up. Readiness does not wait for the members: a proxy started
// while the cluster is down must not fail its start and flap.
func proxyStatus(ctx context.Context, args []string, n Notifier, poll, refresh time.Duration) {
	f := parseProxyFlags(args)
	l := &lifecycle{n: n}
	c, err := f.client()
	if err != nil {
		l.setStatus("cannot check the proxy's listener: %v", err)
		return
	}
	url := f.healthURL()
	seen := false
	for {
		answered, members := proxyHealth(ctx, c, url)
		switch {
		case answered:
			seen = true
			l.setStatus("serving on %s; %s", f.listen, members)
		case seen:
			l.setStatus("not answering on %s: %s", f.listen, members)
		}
		wait := poll
		if seen {
			wait = refresh
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}
