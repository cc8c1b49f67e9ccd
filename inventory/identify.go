package inventory

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"

	"github.com/etcd-appliance/appliance/internal/errkind"
	"github.com/etcd-appliance/appliance/internal/suggest"
)

// Errors of host names given on the command line: the inventory is fine,
// the name is not. Matched with errors.Is.
var (
	// ErrUnknownHost: the name is no member or proxy of the inventory.
	ErrUnknownHost = errors.New("no such host in the inventory")
	// ErrNotThisMachine: the operator said this machine is a host whose
	// name and addresses are not this machine's.
	ErrNotThisMachine = errors.New("this machine is not that host")
)

// Machine is what identifies this machine: its hostname and its
// addresses. Callers supply it, so that identification stays pure.
type Machine struct {
	Hostname string
	IPs      []net.IP
}

func (m Machine) String() string {
	var addrs []string
	for _, ip := range m.IPs {
		if !ip.IsLoopback() {
			addrs = append(addrs, ip.String())
		}
	}
	sort.Strings(addrs)
	if len(addrs) == 0 {
		addrs = []string{"none but loopback"}
	}
	return fmt.Sprintf("hostname %q, addresses %s", m.Hostname, strings.Join(addrs, " "))
}

// Is reports whether the machine is the host h: h's name or address is
// the machine's hostname (or its first label), or h's address or ip is one
// of the machine's addresses other than loopback.
func (m Machine) Is(h Host) bool {
	return m.named(h) || m.hasIP(h)
}

// named reports whether h's name or address is the machine's hostname
// or its first label.
func (m Machine) named(h Host) bool {
	if m.Hostname == "" {
		return false
	}
	short, _, _ := strings.Cut(m.Hostname, ".")
	return h.Name == m.Hostname || h.Name == short || strings.EqualFold(h.Address, m.Hostname) || strings.EqualFold(h.Address, short)
}

// hasIP reports whether h's address or ip is one of the machine's
// addresses other than loopback.
func (m Machine) hasIP(h Host) bool {
	for _, a := range hostIPs(h) {
		for _, ip := range m.IPs {
			if a.Equal(ip) && !ip.IsLoopback() {
				return true
			}
		}
	}
	return false
}

// Named returns the hosts called names, in the order given without
// repeats. An unknown name is an error naming flag, the hosts there are
// and the closest one.
func (inv *Inventory) Named(flag string, names []string) ([]Host, error) {
	var out []Host
	var errs []error
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			continue
		}
		seen[n] = true
		h, ok := inv.Host(n)
		if !ok {
			errs = append(errs, inv.UnknownHost(flag, n))
			continue
		}
		out = append(out, h)
	}
	return out, errors.Join(errs...)
}

// UnknownHost is the error for a host name the inventory does not have,
// given where (a flag, an argument): it lists the names there are and
// suggests the closest.
func (inv *Inventory) UnknownHost(where, name string) error {
	names := hostNames(inv.Hosts())
	msg := fmt.Sprintf("%s %s: %s has no member or proxy %s (it has %s", where, name, inv.Source, name, strings.Join(names, ", "))
	if c, ok := suggest.Name(name, names); ok {
		msg += "; did you mean " + c + "?"
	}
	msg += ")"
	return errkind.New(ErrUnknownHost, "%s", msg)
}

// IdentifyHost finds which host of the inventory this machine is: the one
// whose name or address is its hostname, else the one whose address or ip
// is one of its addresses. It is pure; the caller supplies the machine.
func (inv *Inventory) IdentifyHost(m Machine) (Host, error) {
	hosts := inv.Hosts()
	var byName, byIP []Host
	for _, h := range hosts {
		if m.named(h) {
			byName = append(byName, h)
		}
		if m.hasIP(h) {
			byIP = append(byIP, h)
		}
	}
	if len(byName) == 1 {
		if other, ok := inv.addressOfAnother(byName[0], m); ok {
			return Host{}, fmt.Errorf("this machine (%s) is named like %s of %s but has the address of %s (%s): say which host it is with --this-host NAME, after fixing its hostname or the inventory",
				m, byName[0].Name, inv.Source, other.Name, other.Address)
		}
		return byName[0], nil
	}
	if len(byIP) == 1 {
		return byIP[0], nil
	}
	matches := byName
	if len(matches) == 0 {
		matches = byIP
	}
	if len(matches) > 1 {
		return Host{}, fmt.Errorf("this machine matches several hosts of %s (%s): say which with --this-host NAME",
			inv.Source, strings.Join(hostNames(matches), ", "))
	}
	return Host{}, fmt.Errorf("this machine (%s) is none of the hosts of %s (%s)", m, inv.Source, strings.Join(hostNames(hosts), ", "))
}

// ThisHost checks what the operator said, that this machine is the host
// name: it refuses when the machine's hostname and addresses match none of
// the host's name, address and ip, so that a mistyped or wrong name never
// turns this machine into a copy of another host.
func (inv *Inventory) ThisHost(name string, m Machine) (Host, error) {
	h, ok := inv.Host(name)
	if !ok {
		return Host{}, inv.UnknownHost("--this-host", name)
	}
	if other, ok := inv.addressOfAnother(h, m); ok {
		return Host{}, errkind.New(ErrNotThisMachine, "--this-host %s: this machine (%s) has the address of %s (%s), not one of %s's; nothing was done. "+
			"Fix the machine's addresses or the inventory, or run the command on %s", name, m, other.Name, other.Address, name, name)
	}
	if m.Is(h) {
		return h, nil
	}
	where := "address " + h.Address
	if h.Member != nil && h.Member.IP != "" && h.Member.IP != h.Address {
		where += ", ip " + h.Member.IP
	}
	return Host{}, errkind.New(ErrNotThisMachine, "--this-host %s: this machine (%s) is not %s of %s (%s); nothing was done. "+
		"Run the command on %s, or from here with --host %s (over SSH); if this machine is %s, give it the hostname %s or set its address in %s",
		name, m, name, inv.Source, where, name, name, name, name, inv.Source)
}

// addressOfAnother finds another host whose address or ip is one of the
// machine's, when none of h's is: a machine named like h but holding
// another host's address is not h (it would be configured to listen on
// an address it does not have).
func (inv *Inventory) addressOfAnother(h Host, m Machine) (Host, bool) {
	if m.hasIP(h) {
		return Host{}, false
	}
	for _, o := range inv.Hosts() {
		if o.Name != h.Name && m.hasIP(o) {
			return o, true
		}
	}
	return Host{}, false
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
