package workflow

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"sync"

	"github.com/etcd-appliance/appliance/host"
	"github.com/etcd-appliance/appliance/internal/parallel"
	"github.com/etcd-appliance/appliance/inventory"
)

// Machine is this machine's hostname and addresses.
func Machine() inventory.Machine {
	hostname, ips := host.Identity()
	return inventory.Machine{Hostname: hostname, IPs: ips}
}

// ThisMachine is the inventory host this machine is: the one the operator
// named with --this-host (said), checked against this machine's names and
// addresses, else the one found by them. ok is false when this machine
// is none of the hosts; why then says what was looked for.
func ThisMachine(inv *inventory.Inventory, said string) (h inventory.Host, ok bool, why error) {
	return thisMachine(inv, said, Machine())
}

func thisMachine(inv *inventory.Inventory, said string, m inventory.Machine) (h inventory.Host, ok bool, why error) {
	if said != "" {
		h, err := inv.ThisHost(said, m)
		return h, err == nil, err
	}
	h, err := inv.IdentifyHost(m)
	return h, err == nil, err
}

// Selection is which hosts a command acts on, and which of them, if any,
// is this machine: the others are reached over SSH.
type Selection struct {
	// This is the host this machine is; "" when none.
	This string
	// Names are the hosts to act on, in the order selected.
	Names []string
}

// Remote reports whether any selected host is reached over SSH.
func (s Selection) Remote() bool {
	for _, n := range s.Names {
		if n != s.This {
			return true
		}
	}
	return false
}

// ErrNoHost means that the command was given no host to act on and this
// machine is none of the inventory's hosts.
var ErrNoHost = errors.New("no host to act on")

// Select resolves the two host flags every command shares, one meaning
// each: --host (selected) names the hosts to act on, reached over SSH
// when they are not this machine; --this-host (said) says which host this
// machine is and is refused when its names and addresses do not match.
// With no --host, a command acts on this machine when it is a host, else
// on every host when each has an ssh target.
func Select(inv *inventory.Inventory, selected []string, said string) (Selection, error) {
	return SelectOn(Machine(), inv, selected, said)
}

// SelectOn is Select on the machine m.
func SelectOn(m inventory.Machine, inv *inventory.Inventory, selected []string, said string) (Selection, error) {
	this, ok, why := thisMachine(inv, said, m)
	if said != "" && !ok {
		return Selection{}, why
	}
	var sel Selection
	if ok {
		sel.This = this.Name
	}
	if len(selected) > 0 {
		hosts, err := inv.Named("--host", selected)
		var errs []error
		if err != nil {
			errs = append(errs, err)
		}
		for _, h := range hosts {
			sel.Names = append(sel.Names, h.Name)
			if h.Name != sel.This && h.SSH == "" {
				errs = append(errs, unreachable(inv, h.Name, m))
			}
		}
		return sel, errors.Join(errs...)
	}
	switch {
	case ok:
		sel.Names = []string{this.Name}
	case AllHaveSSH(inv):
		for _, h := range inv.Hosts() {
			sel.Names = append(sel.Names, h.Name)
		}
	default:
		return Selection{}, fmt.Errorf("%w: %w; name the hosts with --host NAME (reached over SSH: give them ssh = \"user@host\" in %s), or, if this machine is one of them, say which with --this-host NAME",
			ErrNoHost, why, inv.Source)
	}
	return sel, nil
}

// unreachable is the error for a host that is not this machine and has no
// ssh target.
func unreachable(inv *inventory.Inventory, name string, m inventory.Machine) error {
	return fmt.Errorf("%s is not this machine (%s) and has no ssh target in %s: run the command on %s, or add ssh = \"user@host\" to its table; if this machine is %s, say so with --this-host %s",
		name, m, inv.Source, name, name, name)
}

// AllHaveSSH reports whether every host of the inventory has an ssh
// target, so that all can be reached from here.
func AllHaveSSH(inv *inventory.Inventory) bool {
	for _, h := range inv.Hosts() {
		if h.SSH == "" {
			return false
		}
	}
	return len(inv.Hosts()) > 0
}

// Hosts reaches the hosts of an inventory: this machine when it is the
// host, else over SSH with the host keys checked. Close releases the
// connections.
type Hosts struct {
	Inv *inventory.Inventory
	SSH host.SSHConfig
	// This is the host this machine is ("" when none): reached without
	// SSH.
	This string

	mu    sync.Mutex
	conns []*host.SSHRunner
}

// Close closes every SSH connection.
func (h *Hosts) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.conns {
		c.Close()
	}
	h.conns = nil
}

// Target reaches the inventory host name.
func (h *Hosts) Target(name string) (Target, error) {
	hst, ok := h.Inv.Host(name)
	if !ok {
		return Target{}, h.Inv.UnknownHost("host", name)
	}
	if name == h.This {
		return Local(hst), nil
	}
	if hst.SSH == "" {
		return Target{}, unreachable(h.Inv, name, Machine())
	}
	r, err := host.DialSSH(hst.SSH, h.SSH)
	if err != nil {
		return Target{}, err
	}
	h.mu.Lock()
	h.conns = append(h.conns, r)
	h.mu.Unlock()
	return Target{Host: hst, FS: host.RunnerFS{R: r}, Services: host.Systemd{R: r}, Runner: r}, nil
}

// Each reaches every named host at once: the targets reached, in the
// order of names, and the error of each host that could not be reached.
func (h *Hosts) Each(names []string) ([]Target, map[string]error) {
	targets := make([]*Target, len(names))
	errs := make([]error, len(names))
	_ = parallel.Each(names, func(i int, name string) error {
		t, err := h.Target(name)
		if err == nil {
			targets[i] = &t
		}
		errs[i] = err
		return err
	})
	var out []Target
	failed := map[string]error{}
	for i, name := range names {
		if errs[i] != nil {
			failed[name] = errs[i]
		} else {
			out = append(out, *targets[i])
		}
	}
	return out, failed
}

// RemoteInstaller runs `etcd-installer COMMAND INVENTORY ARGS...` on a
// host with the inventory copied there, for checks that must run on the
// host itself.
func RemoteInstaller(ctx context.Context, r host.Runner, inventoryPath, command string, args ...string) ([]byte, error) {
	data, err := os.ReadFile(inventoryPath)
	if err != nil {
		return nil, err
	}
	dir, err := r.Run(ctx, nil, "mktemp", "-d", "/tmp/etcd-installer.XXXXXX")
	if err != nil {
		return nil, err
	}
	d := strings.TrimSpace(string(dir))
	defer r.Run(context.WithoutCancel(ctx), nil, "rm", "-rf", d)
	remote := d + "/" + path.Base(inventoryPath)
	if _, err := r.Run(ctx, strings.NewReader(string(data)), "dd", "of="+remote, "status=none"); err != nil {
		return nil, err
	}
	argv := append([]string{"etcd-installer", command, remote}, args...)
	return r.Run(ctx, nil, argv...)
}
