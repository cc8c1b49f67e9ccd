package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-appliance/appliance/inventory"
)

// Member is one etcd member as the cluster knows it.
type Member struct {
	ID         uint64
	Name       string // empty for a member added but not started yet
	PeerURLs   []string
	ClientURLs []string
	Learner    bool
}

// EndpointStatus is one endpoint's answer to a status request.
type EndpointStatus struct {
	Endpoint    string
	Name        string
	ID          uint64
	Version     string
	DBSize      int64
	DBSizeInUse int64
	// DBSizeQuota is the member's backend quota (its NOSPACE limit).
	DBSizeQuota  int64
	Leader       uint64
	Learner      bool
	RaftTerm     uint64
	RaftIndex    uint64
	AppliedIndex uint64
	Errors       []string
	Err          error
}

// Membership is the etcd cluster's membership and status API.
type Membership interface {
	Members(ctx context.Context) ([]Member, error)
	AddLearner(ctx context.Context, peerURLs []string) (Member, error)
	Promote(ctx context.Context, id uint64) error
	Remove(ctx context.Context, id uint64) error
	Status(ctx context.Context, endpoint string) EndpointStatus
	// Healthy does a linearizable read through endpoint, as
	// `etcdctl endpoint health` does.
	Healthy(ctx context.Context, endpoint string) error
	// HashKV hashes the key space up to rev on one endpoint.
	HashKV(ctx context.Context, endpoint string, rev int64) (uint32, error)
	Close() error
}

// Dialer connects to endpoints (client URLs) of a cluster.
type Dialer func(endpoints []string) (Membership, error)

// ClientTLS builds the client TLS configuration an inventory implies, from
// certificate files on this machine; nil when TLS is off.
func ClientTLS(inv *inventory.Inventory, caFile, certFile, keyFile string) (*tls.Config, error) {
	if !inv.TLSEnabled() {
		return nil, nil
	}
	info := transport.TLSInfo{CertFile: certFile, KeyFile: keyFile, TrustedCAFile: caFile}
	return info.ClientConfig()
}

// Credentials are how a client proves who it is: a TLS configuration with
// a client certificate (whose common name etcd takes as the user when auth
// is on), or, with auth but without TLS, a user and password.
type Credentials struct {
	TLS      *tls.Config
	Username string
	Password string
}

// Config is a clientv3 configuration for endpoints with these credentials.
func (cr Credentials) Config(endpoints []string) clientv3.Config {
	return clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		TLS:         cr.TLS,
		Username:    cr.Username,
		Password:    cr.Password,
		Logger:      zap.NewNop(),
	}
}

// Client is Membership over clientv3.
type Client struct {
	c  *clientv3.Client
	cr Credentials
}

// Dial connects to endpoints (client URLs).
func Dial(endpoints []string, tc *tls.Config) (*Client, error) {
	return DialWith(endpoints, Credentials{TLS: tc})
}

// DialWith connects to endpoints with credentials.
func DialWith(endpoints []string, cr Credentials) (*Client, error) {
	c, err := clientv3.New(cr.Config(endpoints))
	if err != nil {
		return nil, fmt.Errorf("connecting to %v: %w", endpoints, err)
	}
	return &Client{c: c, cr: cr}, nil
}

// KV exposes the client for the few callers that read or write keys.
func (c *Client) KV() *clientv3.Client { return c.c }

// Close implements Membership.
func (c *Client) Close() error { return c.c.Close() }

// Members implements Membership.
func (c *Client) Members(ctx context.Context) ([]Member, error) {
	resp, err := c.c.MemberList(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing members: %w", err)
	}
	var ms []Member
	for _, m := range resp.Members {
		ms = append(ms, Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, Learner: m.IsLearner})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Name < ms[j].Name })
	return ms, nil
}

// AddLearner implements Membership; like Remove, it retries while etcd
// calls the cluster unhealthy after a recent change.
func (c *Client) AddLearner(ctx context.Context, peerURLs []string) (Member, error) {
	resp, err := retryUnhealthy(ctx, func() (*clientv3.MemberAddResponse, error) {
		return c.c.MemberAddAsLearner(ctx, peerURLs)
	})
	if err != nil {
		return Member{}, fmt.Errorf("adding learner %v: %w", peerURLs, err)
	}
	m := resp.Member
	return Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, Learner: true}, nil
}

// Promote implements Membership. It asks the leader itself: a follower
// forwards a promotion to the leader over the peer port without the
// caller's identity, so with auth on the leader refuses it and the
// follower retries until "request timed out" (etcd-io/etcd#14070).
func (c *Client) Promote(ctx context.Context, id uint64) error {
	urls, err := c.leaderClientURLs(ctx)
	if err != nil {
		return err
	}
	cli, err := clientv3.New(c.cr.Config(urls))
	if err != nil {
		return fmt.Errorf("connecting to the leader at %v: %w", urls, err)
	}
	defer cli.Close()
	_, err = cli.MemberPromote(ctx, id)
	return err
}

// leaderClientURLs finds the leader through the first endpoint that knows
// one.
func (c *Client) leaderClientURLs(ctx context.Context) ([]string, error) {
	var leader uint64
	var errs []error
	for _, ep := range c.c.Endpoints() {
		resp, err := c.c.Status(ctx, ep)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", ep, err))
			continue
		}
		if resp.Leader != 0 {
			leader = resp.Leader
			break
		}
	}
	if leader == 0 {
		return nil, fmt.Errorf("finding the leader: %w", errors.Join(append(errs, rpctypes.ErrNoLeader)...))
	}
	members, err := c.Members(ctx)
	if err != nil {
		return nil, err
	}
	for _, m := range members {
		if m.ID == leader && len(m.ClientURLs) > 0 {
			return m.ClientURLs, nil
		}
	}
	return nil, fmt.Errorf("finding the leader: member %x has no client URL", leader)
}

// Remove implements Membership.
func (c *Client) Remove(ctx context.Context, id uint64) error {
	_, err := retryUnhealthy(ctx, func() (*clientv3.MemberRemoveResponse, error) {
		return c.c.MemberRemove(ctx, id)
	})
	return err
}

// retryUnhealthy retries a reconfiguration while etcd refuses it as
// "unhealthy cluster": etcd wants every member connected for a few seconds
// (strict reconfig check) after a start or a change. Any other outcome, or
// the end of ctx, stops it.
func retryUnhealthy[T any](ctx context.Context, f func() (T, error)) (T, error) {
	for {
		v, err := f()
		if !errors.Is(err, rpctypes.ErrUnhealthy) {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Status implements Membership.
func (c *Client) Status(ctx context.Context, endpoint string) EndpointStatus {
	st := EndpointStatus{Endpoint: endpoint}
	resp, err := c.c.Status(ctx, endpoint)
	if err != nil {
		st.Err = err
		return st
	}
	st.ID = resp.Header.MemberId
	st.Version = resp.Version
	st.DBSize = resp.DbSize
	st.DBSizeInUse = resp.DbSizeInUse
	st.DBSizeQuota = resp.DbSizeQuota
	st.Leader = resp.Leader
	st.Learner = resp.IsLearner
	st.RaftTerm = resp.RaftTerm
	st.RaftIndex = resp.RaftIndex
	st.AppliedIndex = resp.RaftAppliedIndex
	st.Errors = resp.Errors
	return st
}

// Healthy implements Membership.
func (c *Client) Healthy(ctx context.Context, endpoint string) error {
	cfg := c.cr.Config([]string{endpoint})
	cfg.DialTimeout = 3 * time.Second
	cli, err := clientv3.New(cfg)
	if err != nil {
		return err
	}
	defer cli.Close()
	_, err = cli.Get(ctx, "health")
	if errors.Is(err, rpctypes.ErrPermissionDenied) {
		// With auth on, a denied read still proves the cluster answers.
		return nil
	}
	return err
}

// HashKV implements Membership.
func (c *Client) HashKV(ctx context.Context, endpoint string, rev int64) (uint32, error) {
	resp, err := c.c.HashKV(ctx, endpoint, rev)
	if err != nil {
		return 0, err
	}
	return resp.Hash, nil
}

// TLS returns the client's TLS configuration (nil without TLS).
func (c *Client) TLS() *tls.Config { return c.cr.TLS }

// Credentials are those the client connected with.
func (c *Client) Credentials() Credentials { return c.cr }

// Names lists the members' names, for messages.
func Names(ms []Member) string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Name)
	}
	return strings.Join(out, ", ")
}
