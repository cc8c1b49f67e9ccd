package workflow

import (
	"context"
	"fmt"
	"os"
	"path"
	"strings"
	"sync"

	"github.com/etcd-appliance/appliance/host"
	"github.com/etcd-appliance/appliance/internal/parallel"
	"github.com/etcd-appliance/appliance/inventory"
)

// This is the inventory host this machine is: the one named explicitly,
// else the one named like this machine, else the one with a local
// address.
func This(inv *inventory.Inventory, explicit string) (inventory.Host, error) {
	hostname, ips := host.Identity()
	return inv.IdentifyHost(explicit, hostname, ips)
}

// IsLocal reports whether this machine is the inventory host name.
func IsLocal(inv *inventory.Inventory, name string) bool {
	h, err := This(inv, "")
	return err == nil && h.Name == name
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
		return Target{}, fmt.Errorf("%s has no member or proxy %s", h.Inv.Source, name)
	}
	if IsLocal(h.Inv, name) {
		return Local(hst), nil
	}
	if hst.SSH == "" {
		return Target{}, fmt.Errorf("%s is not this machine and has no ssh target in %s: run the command on %s, or add ssh = \"user@host\" to its table",
			name, h.Inv.Source, name)
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
