package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strings"
	"time"
)

// ErrResolve means a listen URL's DNS name did not resolve (yet): DNS may
// come up later, so this one is worth a restart.
var ErrResolve = errors.New("cannot resolve a listen address")

// Resolver looks up names and this host's addresses; tests script it.
type Resolver interface {
	LookupIP(ctx context.Context, host string) ([]net.IP, error)
	LocalAddrs() ([]net.IP, error)
}

// SystemResolver is this host's resolver (/etc/hosts, then DNS).
type SystemResolver struct{}

// LookupIP implements Resolver.
func (SystemResolver) LookupIP(ctx context.Context, host string) ([]net.IP, error) {
	return net.DefaultResolver.LookupIP(ctx, "ip", host)
}

// LocalAddrs implements Resolver.
func (SystemResolver) LocalAddrs() ([]net.IP, error) {
	addrs, err := net.InterfaceAddrs()
	var ips []net.IP
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			ips = append(ips, n.IP)
		}
	}
	return ips, err
}

// named reports whether a listen URL's host is a DNS name etcd would refuse
// to bind ("localhost" it takes as it is).
func named(u url.URL) bool {
	if u.Scheme == "unix" || u.Scheme == "unixs" {
		return false
	}
	host, _, err := net.SplitHostPort(u.Host)
	return err == nil && host != "localhost" && net.ParseIP(host) == nil
}

// listenLists are the configuration's listen URL lists.
func (c *Config) listenLists() []*[]url.URL {
	ec := c.Etcd
	return []*[]url.URL{&ec.ListenPeerUrls, &ec.ListenClientUrls, &ec.ListenClientHttpUrls, &ec.ListenMetricsUrls}
}

// ResolveListen replaces every listen URL whose host is a DNS name by one
// URL per address the name resolves to on this host, so that a member
// given by name listens where its name says, never on every interface. A
// name that resolves to no address of this host, or only to a loopback
// address (the 127.0.1.1 line Debian writes into /etc/hosts for the
// host's own name) while it is not a loopback name, is a configuration
// error; a name that does not resolve is ErrResolve (DNS may come later).
func (c *Config) ResolveListen(ctx context.Context, r Resolver) error {
	var local []net.IP
	for _, list := range c.listenLists() {
		var out []url.URL
		for _, u := range *list {
			if !named(u) {
				out = append(out, u)
				continue
			}
			host, port, _ := net.SplitHostPort(u.Host)
			if local == nil {
				var err error
				if local, err = r.LocalAddrs(); err != nil {
					return fmt.Errorf("%w: listing this host's addresses: %w", ErrResolve, err)
				}
			}
			ips, err := bind(ctx, r, host, local)
			if err != nil {
				return err
			}
			for _, ip := range ips {
				v := u
				v.Host = net.JoinHostPort(ip.String(), port)
				out = append(out, v)
			}
		}
		*list = out
	}
	return nil
}

// bind is where a member named host listens on this host.
func bind(ctx context.Context, r Resolver, host string, local []net.IP) ([]net.IP, error) {
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ips, err := r.LookupIP(lctx, host)
	if err != nil || len(ips) == 0 {
		return nil, fmt.Errorf("%w: %s: %v; fix: make the name resolve on this host, or give the member an ip in the inventory", ErrResolve, host, err)
	}
	loopbackName := host == "localhost" || strings.HasSuffix(strings.ToLower(strings.TrimSuffix(host, ".")), ".localhost")
	var mine, loop []net.IP
	for _, ip := range ips {
		for _, l := range local {
			if ip.Equal(l) {
				if ip.IsLoopback() {
					loop = append(loop, ip)
				} else {
					mine = append(mine, ip)
				}
			}
		}
	}
	if loopbackName {
		mine = loop
	}
	sort.Slice(mine, func(i, j int) bool { return mine[i].String() < mine[j].String() })
	switch {
	case len(mine) > 0:
		return mine, nil
	case len(loop) > 0:
		return nil, fmt.Errorf("%w: %s resolves on this host to %s only, a loopback address (an /etc/hosts line?): peers and clients could not reach it; "+
			"fix: make %s resolve to this host's network address, or give the member an ip in the inventory", ErrConfig, host, joinIPs(loop), host)
	default:
		return nil, fmt.Errorf("%w: %s resolves to %s, none of them an address of this host; fix: give the member this host's name, correct DNS, or set its ip in the inventory",
			ErrConfig, host, joinIPs(ips))
	}
}

func joinIPs(ips []net.IP) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return strings.Join(s, ", ")
}
