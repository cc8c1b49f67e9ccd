package inventory

import (
	"fmt"
	"net"
	"sort"
	"strings"
)

// IdentifyHost finds which host of the inventory this machine is: the one
// named explicitly, else the one whose name or address is this machine's
// hostname, else the one whose address or ip is a local address. It is
// pure; the caller supplies the hostname and addresses.
func (inv *Inventory) IdentifyHost(explicit, hostname string, local []net.IP) (Host, error) {
	hosts := inv.Hosts()
	if explicit != "" {
		if h, ok := inv.Host(explicit); ok {
			return h, nil
		}
		return Host{}, fmt.Errorf("%w: --host %s: %s has no member or proxy of that name (it has %s)",
			ErrInvalid, explicit, inv.Source, strings.Join(hostNames(hosts), ", "))
	}
	short, _, _ := strings.Cut(hostname, ".")
	var byName []Host
	for _, h := range hosts {
		if hostname != "" && (h.Name == hostname || h.Name == short || strings.EqualFold(h.Address, hostname)) {
			byName = append(byName, h)
		}
	}
	if len(byName) == 1 {
		return byName[0], nil
	}
	var byIP []Host
	for _, h := range hosts {
		for _, a := range hostIPs(h) {
			for _, ip := range local {
				if a.Equal(ip) && !ip.IsLoopback() {
					byIP = append(byIP, h)
				}
			}
		}
	}
	if len(byIP) == 1 {
		return byIP[0], nil
	}
	matches := byName
	if len(matches) == 0 {
		matches = byIP
	}
	if len(matches) > 1 {
		return Host{}, fmt.Errorf("this machine matches several hosts of %s (%s): pass --host NAME",
			inv.Source, strings.Join(hostNames(matches), ", "))
	}
	var addrs []string
	for _, ip := range local {
		addrs = append(addrs, ip.String())
	}
	sort.Strings(addrs)
	return Host{}, fmt.Errorf("this machine (hostname %q, addresses %s) is none of the hosts of %s (%s): pass --host NAME",
		hostname, strings.Join(addrs, " "), inv.Source, strings.Join(hostNames(hosts), ", "))
}

func hostIPs(h Host) []net.IP {
	var ips []net.IP
	if ip := net.ParseIP(h.Address); ip != nil {
		ips = append(ips, ip)
	}
	if h.Member != nil && h.Member.IP != "" {
		if ip := net.ParseIP(h.Member.IP); ip != nil {
			ips = append(ips, ip)
		}
	}
	return ips
}

func hostNames(hs []Host) []string {
	var names []string
	for _, h := range hs {
		names = append(names, h.Name)
	}
	return names
}
