package workflow

import (
	"fmt"

	"github.com/etcd-appliance/appliance/host"
	"github.com/etcd-appliance/appliance/internal/parallel"
	"github.com/etcd-appliance/appliance/inventory"
	"github.com/etcd-appliance/appliance/units"
)

// Target is one inventory host and the interfaces that reach it.
type Target struct {
	Host     inventory.Host
	FS       host.FS
	Services host.Services
	// Runner runs commands on the host (restore, doctor); nil for hosts
	// only ever applied.
	Runner host.Runner
	// Etcdutl is the etcdutl command on the host; "" means "etcdutl".
	Etcdutl string
	// NoChown skips giving restored data to the etcd user (local test
	// clusters run as whoever started them).
	NoChown bool
}

// Name is the inventory host's name.
func (t Target) Name() string { return t.Host.Name }

// Unit is the unit the host runs.
func (t Target) Unit() string {
	if t.Host.Member != nil {
		return units.Etcd
	}
	return units.GRPCProxy
}

// EtcdutlCommand is etcdutl on the host.
func (t Target) EtcdutlCommand() string {
	if t.Etcdutl == "" {
		return "etcdutl"
	}
	return t.Etcdutl
}

// Local is the target for this machine as the inventory host h: its own
// file system, systemd and commands.
func Local(h inventory.Host) Target {
	return Target{Host: h, FS: host.LocalFS{Root: "/"}, Services: host.Systemd{R: host.LocalRunner{}}, Runner: host.LocalRunner{}}
}

// OnEvery runs f for every target at once and joins the errors, each
// named by its host.
func OnEvery(targets []Target, f func(i int, t Target) error) error {
	return parallel.Each(targets, func(i int, t Target) error {
		if err := f(i, t); err != nil {
			return fmt.Errorf("%s: %w", t.Host.Name, err)
		}
		return nil
	})
}
