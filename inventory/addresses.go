package inventory

import (
	"net"
	"path"
	"strconv"
	"strings"
)

// Scheme is the URL scheme of every client and peer URL: https with TLS.
func (inv *Inventory) Scheme() string {
	if inv.TLSEnabled() {
		return "https"
	}
	return "http"
}

// ListenHost is where a member binds: its ip (a wildcard only when the
// inventory says so), else its address. An address that is a DNS name is
// resolved on the host when the member starts, and the member listens on
// the addresses of that host the name resolves to, never on every
// interface.
func (m Member) ListenHost() string {
	if m.IP != "" {
		return m.IP
	}
	return m.Address
}

// HostPort joins a host (name or IP) and a port, bracketing IPv6.
func HostPort(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }

// ClientURL is the member's advertised client URL.
func (inv *Inventory) ClientURL(m *Member) string {
	return inv.Scheme() + "://" + HostPort(m.Address, m.ClientPort)
}

// PeerURL is the member's advertised peer URL.
func (inv *Inventory) PeerURL(m *Member) string {
	return inv.Scheme() + "://" + HostPort(m.Address, m.PeerPort)
}

// ClientURLs returns every member's advertised client URL.
func (inv *Inventory) ClientURLs() []string {
	var urls []string
	for i := range inv.Members {
		urls = append(urls, inv.ClientURL(&inv.Members[i]))
	}
	return urls
}

// DataDir is the member's data directory on its host.
func (inv *Inventory) DataDir(m *Member) string { return path.Join(inv.Cluster.DataDir, m.Name) }

// InitialCluster is the --initial-cluster value for the named members (all
// when names is empty).
func (inv *Inventory) InitialCluster(names []string) string {
	var parts []string
	for i := range inv.Members {
		m := &inv.Members[i]
		if len(names) > 0 && !contains(names, m.Name) {
			continue
		}
		parts = append(parts, m.Name+"="+inv.PeerURL(m))
	}
	return strings.Join(parts, ",")
}

// Loopback reports whether every member and proxy runs on this machine,
// which makes a multi-member inventory a local test cluster.
func (inv *Inventory) Loopback() bool {
	if len(inv.Members) == 0 {
		return false
	}
	for _, m := range inv.Members {
		if !isLoopback(m.Address) {
			return false
		}
	}
	for _, p := range inv.Proxies {
		if !isLoopback(p.Address) {
			return false
		}
	}
	return true
}

func isLoopback(a string) bool {
	if ip := net.ParseIP(a); ip != nil {
		return ip.IsLoopback()
	}
	a = strings.ToLower(strings.TrimSuffix(a, "."))
	return a == "localhost" || strings.HasSuffix(a, ".localhost")
}
