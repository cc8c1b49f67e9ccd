package host

import (
	"net"
	"os"
)

// Identity is this machine's hostname and addresses, which tell which
// inventory host it is.
func Identity() (hostname string, ips []net.IP) {
	hostname, _ = os.Hostname()
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				ips = append(ips, n.IP)
			}
		}
	}
	return hostname, ips
}
