package node

import (
	"context"
	"crypto/tls"
	"errors"
	"expvar"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver"
)

// readyzPath asks etcd's own readiness checks (no corruption alarm,
// serializable and linearizable reads answer) but not "non_learner": a
// learner is ready when it serves, and member add waits for exactly that.
const readyzPath = "/readyz?exclude=non_learner"

// readinessProbe asks the member's own client listener, over the network,
// whether it serves. ReadyNotify alone fires before the client port answers.
type readinessProbe struct {
	url    string
	client *http.Client
	// inProcess is used where the listener cannot be asked: unix sockets,
	// or a client certificate the server itself rejects.
	inProcess func(ctx context.Context) error
	// tlsFailures counts handshake failures; after a few the probe falls
	// back to the in-process checks rather than never becoming ready.
	tlsFailures int
}

func newReadinessProbe(cfg *embed.Config, srv *etcdserver.EtcdServer) (*readinessProbe, error) {
	p := &readinessProbe{inProcess: func(ctx context.Context) error { return readyInProcess(ctx, srv) }}
	urls := cfg.ListenClientHttpUrls
	if len(urls) == 0 {
		urls = cfg.ListenClientUrls
	}
	if len(urls) == 0 {
		return p, nil
	}
	u := urls[0]
	if u.Scheme != "http" && u.Scheme != "https" {
		return p, nil // unix sockets
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		return nil, fmt.Errorf("client URL %s: %w", u.String(), err)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip.To4() == nil {
			host = "::1"
		}
	}
	target := url.URL{Scheme: u.Scheme, Host: net.JoinHostPort(host, port), Path: "/readyz", RawQuery: "exclude=non_learner"}
	tr := &http.Transport{DisableKeepAlives: true}
	if u.Scheme == "https" {
		tc := &tls.Config{}
		if !cfg.ClientTLSInfo.Empty() {
			tc, err = cfg.ClientTLSInfo.ClientConfig()
			if err != nil {
				return nil, fmt.Errorf("client TLS for the readiness probe: %w", err)
			}
		}
		// The probe dials this process's own listener on a local address
		// and sends no secret, so the server name need not match the
		// certificate's SANs (which may not list 127.0.0.1).
		tc.InsecureSkipVerify = true
		tr.TLSClientConfig = tc
	}
	p.url = target.String()
	p.client = &http.Client{Transport: tr, Timeout: 5 * time.Second}
	return p, nil
}

// check returns nil once the member answers 200 on /readyz.
func (p *readinessProbe) check(ctx context.Context) error {
	if p.client == nil || p.tlsFailures >= 3 {
		return p.inProcess(ctx)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		var certErr *tls.CertificateVerificationError
		var alert tls.AlertError
		if errors.As(err, &certErr) || errors.As(err, &alert) {
			p.tlsFailures++
		}
		return err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %d: %s", p.url, resp.StatusCode, oneLine(string(body)))
	}
	return nil
}

// readyInProcess runs the checks /readyz runs (etcdhttp/health.go), for
// listeners the probe cannot reach.
func readyInProcess(ctx context.Context, srv *etcdserver.EtcdServer) error {
	for _, a := range srv.Alarms() {
		if a.Alarm == pb.AlarmType_CORRUPT {
			return errors.New("corruption alarm active")
		}
	}
	ctx = srv.AuthStore().WithRoot(ctx)
	for _, serializable := range []bool{true, false} {
		if _, err := srv.Range(ctx, &pb.RangeRequest{KeysOnly: true, Limit: 1, Serializable: serializable}); err != nil {
			return err
		}
	}
	return nil
}

// alive reports whether the local member works, without asking its peers:
// the raft node goroutine answers a status request (the "raft.status"
// expvar calls raft.Node.Status, which goes through that goroutine) and the
// backend answers a serializable read. Neither needs quorum, so a member
// that lost its peers stays alive for the watchdog.
func alive(ctx context.Context, srv *etcdserver.EtcdServer) error {
	select {
	case <-srv.StopNotify():
		return errors.New("etcd server stopped")
	default:
	}
	raftc := make(chan struct{})
	go func() {
		if v := expvar.Get("raft.status"); v != nil {
			_ = v.String()
		}
		close(raftc)
	}()
	select {
	case <-raftc:
	case <-ctx.Done():
		return fmt.Errorf("raft node does not answer: %w", ctx.Err())
	}
	ctx = srv.AuthStore().WithRoot(ctx)
	return backendAlive(ctx, func() error {
		_, err := srv.Range(ctx, &pb.RangeRequest{KeysOnly: true, Limit: 1, Serializable: true})
		return err
	}, defragmenting)
}

// backendAlive runs read, which does not return while a defragmentation
// holds the backend (it waits on the backend's locks, not on ctx). A read
// that has not answered by ctx's end counts as alive while the backend is
// defragmenting: a defragmentation stops reads for its whole duration
// (seconds per GiB), and a watchdog that stopped pinging then would have
// systemd kill the member mid-way, every time it is defragmented.
func backendAlive(ctx context.Context, read func() error, defragmenting func() bool) error {
	errc := make(chan error, 1)
	go func() { errc <- read() }()
	select {
	case err := <-errc:
		if err != nil {
			return fmt.Errorf("backend read: %w", err)
		}
		return nil
	case <-ctx.Done():
		if defragmenting() {
			return nil
		}
		return fmt.Errorf("backend read: %w", ctx.Err())
	}
}

// defragmenting reports whether this process's backend is being
// defragmented, from etcd's own gauge (etcd_disk_defrag_inflight).
func defragmenting() bool {
	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		return false
	}
	for _, f := range families {
		if f.GetName() != "etcd_disk_defrag_inflight" {
			continue
		}
		for _, m := range f.GetMetric() {
			if m.GetGauge().GetValue() > 0 {
				return true
			}
		}
	}
	return false
}
