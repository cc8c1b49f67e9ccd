package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3discovery"
	servererrors "go.etcd.io/etcd/server/v3/etcdserver/errors"
	"go.uber.org/zap"

	"github.com/etcd-appliance/appliance/internal/discovery"
)

// ErrDiscoveryFull means the discovery service refused this member: its
// token's places are all taken. Restarting cannot help.
var ErrDiscoveryFull = errors.New("refused by the discovery service: the cluster is full")

// publishFix is what a member waiting for its SRV records tells the operator.
const publishFix = "publish the records `etcd-installer render` writes (_cluster/dnsmasq.conf or _cluster/bind.zone) on the DNS server this host uses"

// bootstrapWait returns what a member that has not joined its cluster yet
// must find before etcd can start, or nil when there is nothing to wait
// for. etcd itself fails at once when the SRV records or the discovery
// size key are missing, and systemd would restart it every few seconds
// with nothing said but a log line; the member waits instead, its STATUS
// naming what it waits for, until it appears or the start timeout passes.
func (r *runner) bootstrapWait() func(ctx context.Context) string {
	ec := r.c.Etcd
	if r.kind == startRestart {
		return nil
	}
	switch {
	case ec.DNSCluster != "":
		res := r.o.DNS
		if res == nil {
			res = net.DefaultResolver
		}
		return func(ctx context.Context) string {
			return srvWaiting(ctx, res, ec.Name, ec.DNSCluster, ec.DNSClusterServiceName, ec.AdvertisePeerUrls)
		}
	case len(ec.DiscoveryCfg.Endpoints) > 0 && r.kind == startNew:
		// Only what etcd would fail on at once: an unreachable service
		// etcd retries itself (and openingStatus says so meanwhile).
		return func(ctx context.Context) string {
			_, err := r.discoveryState(ctx)
			switch {
			case errors.Is(err, discovery.ErrSizeNotSet):
				return r.discoveryWhere() + ": this cluster's size key is not set; run the rendered _cluster/discovery.sh once " +
					"(it puts the member count at " + discovery.SizeKey("TOKEN") + ")"
			case errors.Is(err, discovery.ErrBadSize):
				return r.discoveryWhere() + ": " + err.Error() + "; run the rendered _cluster/discovery.sh once"
			}
			return ""
		}
	}
	return nil
}

// waitBootstrap polls check until it has nothing to wait for. done means
// run ends, with err.
func (r *runner) waitBootstrap(ctx context.Context, check func(context.Context) string) (done bool, err error) {
	r.lc.enter(PhaseWaiting)
	poll := time.NewTicker(r.o.Tick)
	defer poll.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		status := check(cctx)
		cancel()
		if status == "" {
			return false, nil
		}
		r.lc.report(zap.WarnLevel, "%s", status)
		select {
		case <-poll.C:
		case <-ctx.Done():
			r.orderly.Store(true)
			r.lc.stopping("stopping: interrupted while " + status)
			return true, nil
		case <-r.deadline:
			return true, r.gaveUp(status)
		}
	}
}

// srvWaiting checks what etcd's DNS SRV bootstrap looks up (client/pkg/v3/srv
// GetCluster, for both of etcd's names): the peers' SRV records of the
// domain must list every advertised peer URL of this member, matched as
// etcd matches them, by the address a target resolves to. Each lookup has
// a deadline of its own, and a target that does not resolve is skipped,
// as etcd skips it. It returns what is missing, or "".
func srvWaiting(ctx context.Context, res *net.Resolver, name, domain, serviceName string, apurls []url.URL) string {
	suffix := ""
	if serviceName != "" {
		suffix = "-" + serviceName
	}
	// etcd takes a target from a name only for URLs of that name's scheme
	// (else "scheme mismatch").
	services := map[string]string{"etcd-server-ssl" + suffix: "https", "etcd-server" + suffix: "http"}
	want := "_etcd-server" + suffix + "._tcp." + domain // what messages name: this member's scheme
	for _, u := range apurls {
		if u.Scheme == "https" {
			want = "_etcd-server-ssl" + suffix + "._tcp." + domain
		}
	}
	var listed []string
	targets := map[string]bool{} // scheme + " " + address
	var lookupErr error
	for _, service := range []string{"etcd-server-ssl" + suffix, "etcd-server" + suffix} {
		lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		_, srvs, err := res.LookupSRV(lctx, service, "tcp", domain)
		cancel()
		if err != nil {
			if "_"+service+"._tcp."+domain == want {
				lookupErr = err
			}
			continue
		}
		for _, s := range srvs {
			host := net.JoinHostPort(strings.TrimSuffix(s.Target, "."), strconv.Itoa(int(s.Port)))
			listed = append(listed, host)
			tctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			addr, err := resolveTCP(tctx, res, host)
			cancel()
			if err == nil {
				targets[services[service]+" "+addr] = true
			}
		}
	}
	if len(listed) == 0 {
		return fmt.Sprintf("waiting for DNS SRV records: %s does not resolve (%v); %s", want, dnsError(lookupErr), publishFix)
	}
	var missing []string
	for _, u := range apurls {
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		addr, err := resolveTCP(actx, res, u.Host)
		cancel()
		if err != nil {
			return fmt.Sprintf("waiting for DNS: %s, this member's advertised peer address, does not resolve (%v); %s", u.Host, err, publishFix)
		}
		if !targets[u.Scheme+" "+addr] {
			missing = append(missing, u.String())
		}
	}
	if len(missing) == 0 {
		return ""
	}
	return fmt.Sprintf("waiting for DNS SRV records: %s lists %s but not this member %s (%s); %s",
		want, strings.Join(listed, ", "), name, strings.Join(missing, ","), publishFix)
}

// resolveTCP resolves host:port to one address as net.ResolveTCPAddr
// does (the first IPv4 address, else the first): etcd compares those.
func resolveTCP(ctx context.Context, res *net.Resolver, hostport string) (string, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", err
	}
	if ip := net.ParseIP(host); ip != nil {
		return net.JoinHostPort(ip.String(), port), nil
	}
	addrs, err := res.LookupIPAddr(ctx, host)
	if err != nil {
		return "", dnsError(err)
	}
	pick := addrs[0].IP
	for _, a := range addrs {
		if a.IP.To4() != nil {
			pick = a.IP
			break
		}
	}
	return net.JoinHostPort(pick.String(), port), nil
}

// dnsError drops the resolver's server address from a lookup error: the
// message is for the operator, who knows which server the host asks.
func dnsError(err error) error {
	var de *net.DNSError
	if errors.As(err, &de) {
		switch {
		case de.IsNotFound:
			return errors.New("no such name")
		case de.IsTimeout:
			return errors.New("the DNS server did not answer")
		}
		return errors.New(de.Err)
	}
	return err
}

// discoveryWhere names the discovery service, never the token: the
// journal is readable by more people than the configuration.
func (r *runner) discoveryWhere() string {
	return "waiting for the discovery service at " + strings.Join(r.c.Etcd.DiscoveryCfg.Endpoints, ",")
}

// discoveryState reads the token's state with a client of its own,
// configured as etcd configures its discovery client.
func (r *runner) discoveryState(ctx context.Context) (discovery.State, error) {
	if r.disc == nil {
		spec := r.c.Etcd.DiscoveryCfg.ConfigSpec
		cfg, err := clientv3.NewClientConfig(&spec, zap.NewNop())
		if err != nil {
			return discovery.State{}, err
		}
		cfg.Logger = zap.NewNop()
		cfg.DialTimeout = 0 // each read has its own deadline
		if r.disc, err = clientv3.New(*cfg); err != nil {
			return discovery.State{}, err
		}
	}
	st, err := discovery.Read(ctx, r.disc, r.c.Etcd.DiscoveryCfg.Token)
	if err == nil {
		r.discSize = st.Size
	}
	if err != nil && !errors.Is(err, discovery.ErrSizeNotSet) && !errors.Is(err, discovery.ErrBadSize) {
		err = fmt.Errorf("it does not answer: %w", err)
	}
	return st, err
}

func (r *runner) closeDiscovery() {
	if r.disc != nil {
		r.disc.Close()
		r.disc = nil
	}
}

// openingStatus is STATUS while etcd opens: with v3 discovery that is
// where it registers and waits for the other members.
func (r *runner) openingStatus(ctx context.Context) string {
	if len(r.c.Etcd.DiscoveryCfg.Endpoints) == 0 || r.kind != startNew {
		return ""
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	st, err := r.discoveryState(cctx)
	if err != nil {
		return r.discoveryWhere() + ": " + err.Error()
	}
	return fmt.Sprintf("bootstrapping through the discovery service at %s: %d of %d members registered; the others must be started too",
		strings.Join(r.c.Etcd.DiscoveryCfg.Endpoints, ","), st.Registered, st.Size)
}

// discoveryFull turns etcd's "cluster is full" into an error that says why
// and what to do instead.
func (r *runner) discoveryFull(err error) error {
	var de *servererrors.DiscoveryError
	if !errors.As(err, &de) || !errors.Is(de.Err, v3discovery.ErrFullCluster) {
		return nil
	}
	places := "all places"
	if r.discSize > 0 {
		places = fmt.Sprintf("all %d places", r.discSize)
	}
	dir := r.c.Etcd.Dir
	return fmt.Errorf("%w: %s of this cluster's token at %s are taken by other members, and discovery only forms a new cluster; "+
		"to add %s to the running cluster, move the data dir etcd began aside (mv %s %s.refused-%s), then use `etcd-installer member add` "+
		"(or etcdctl member add, and start it with ETCD_INITIAL_CLUSTER_STATE=existing); a new cluster needs a new token",
		ErrDiscoveryFull, places, strings.Join(r.c.Etcd.DiscoveryCfg.Endpoints, ","), r.name(), dir, dir, time.Now().Format("20060102"))
}
