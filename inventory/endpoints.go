package inventory

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
)

// ErrEndpoints means --endpoints cannot describe a cluster.
var ErrEndpoints = errors.New("bad --endpoints")

// ForEndpoints describes a cluster known only by its members' client URLs
// (one this appliance did not install, such as a distribution's etcd, to
// back it up): one member per URL, named after its host and port, TLS on
// when the URLs are https. It is for clients only: nothing is rendered or
// applied from it.
func ForEndpoints(urls []string) (*Inventory, error) {
	inv := &Inventory{Source: "--endpoints", Cluster: Cluster{Name: "external", TLS: TLSOff}}
	var errs []error
	schemes := map[string]bool{}
	for i, raw := range urls {
		u, err := url.Parse(raw)
		shown := strconv.Quote(raw)
		if err == nil && u.User != nil {
			shown = strconv.Quote(u.Redacted()) + " (credentials do not belong in a URL)"
		}
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			errs = append(errs, fmt.Errorf("%w: endpoint %d, %s: want a client URL such as http://10.0.0.1:2379", ErrEndpoints, i+1, shown))
			continue
		}
		host, p, err := net.SplitHostPort(u.Host)
		port, perr := strconv.Atoi(p)
		if err != nil || perr != nil || port < 1 || port > 65535 {
			errs = append(errs, fmt.Errorf("%w: endpoint %d, %s: give the port (etcd's client port is 2379)", ErrEndpoints, i+1, shown))
			continue
		}
		schemes[u.Scheme] = true
		inv.Members = append(inv.Members, Member{Name: u.Host, Address: host, ClientPort: port})
	}
	if len(urls) == 0 {
		errs = append(errs, fmt.Errorf("%w: none given", ErrEndpoints))
	}
	if len(schemes) > 1 {
		errs = append(errs, fmt.Errorf("%w: mixes http and https; a cluster serves one of them", ErrEndpoints))
	}
	if schemes["https"] {
		inv.Cluster.TLS = TLSOn
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return inv, nil
}

// SRVNames are the DNS names etcd looks up for dns-srv bootstrap: the
// peers' (_etcd-server) and the clients' (_etcd-client), with -ssl when
// TLS is on and the service name when one is set.
func (inv *Inventory) SRVNames() (server, client string) {
	d := inv.Cluster.DNSSRV
	suffix := ""
	if d.ServiceName != "" {
		suffix = "-" + d.ServiceName
	}
	server, client = "_etcd-server", "_etcd-client"
	if inv.TLSEnabled() {
		server, client = "_etcd-server-ssl", "_etcd-client-ssl"
	}
	return server + suffix + "._tcp." + d.Domain, client + suffix + "._tcp." + d.Domain
}
