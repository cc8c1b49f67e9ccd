package workflow

import (
	"errors"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/etcd-appliance/appliance/inventory"
	"github.com/etcd-appliance/appliance/inventory/inventorytest"
)

// The inventory of these tests: etcd0 and etcd1 reachable over SSH, etcd2
// not; a workstation that is none of them, and etcd1 itself.
var (
	workstation = inventory.Machine{Hostname: "laptop", IPs: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("192.168.1.5")}}
	onEtcd1     = inventory.Machine{Hostname: "db-b.example.net", IPs: []net.IP{net.ParseIP("10.0.0.11")}}
	// Named like etcd2, holding etcd0's address: it is neither.
	misnamed = inventory.Machine{Hostname: "etcd2", IPs: []net.IP{net.ParseIP("10.0.0.10")}}
)

func selectInv(t *testing.T, allSSH bool) *inventory.Inventory {
	text := inventorytest.Three("")
	text = strings.Replace(text, "address = \"10.0.0.10\"\n", "address = \"10.0.0.10\"\nssh = \"root@10.0.0.10\"\n", 1)
	text = strings.Replace(text, "address = \"10.0.0.11\"\n", "address = \"10.0.0.11\"\nssh = \"root@10.0.0.11\"\n", 1)
	if allSSH {
		text = strings.Replace(text, "address = \"10.0.0.12\"\n", "address = \"10.0.0.12\"\nssh = \"root@10.0.0.12\"\n", 1)
	}
	return inventorytest.Parse(t, text)
}

func TestSelect(t *testing.T) {
	for _, c := range []struct {
		name     string
		m        inventory.Machine
		allSSH   bool
		selected []string
		said     string
		this     string
		names    []string
		err      string
		kind     error
	}{
		// --host from a workstation: the named host over SSH, never this
		// machine as that host (round 1 applied etcd1's files here).
		{name: "host from a workstation", m: workstation, selected: []string{"etcd1"}, names: []string{"etcd1"}},
		{name: "host without ssh target", m: workstation, selected: []string{"etcd2"}, err: "etcd2 is not this machine (hostname \"laptop\", addresses 192.168.1.5) and has no ssh target"},
		{name: "host typo", m: workstation, selected: []string{"ectd1"}, err: "--host ectd1: t.toml has no member or proxy ectd1 (it has etcd0, etcd1, etcd2; did you mean etcd1?)", kind: inventory.ErrUnknownHost},
		{name: "hosts, repeated, in order", m: workstation, selected: []string{"etcd1", "etcd0", "etcd1"}, names: []string{"etcd1", "etcd0"}},
		{name: "host on the host itself", m: onEtcd1, selected: []string{"etcd1"}, this: "etcd1", names: []string{"etcd1"}},
		{name: "host on a host selects others over SSH", m: onEtcd1, selected: []string{"etcd0", "etcd1"}, this: "etcd1", names: []string{"etcd0", "etcd1"}},
		{name: "nothing on a host: the host", m: onEtcd1, this: "etcd1", names: []string{"etcd1"}},
		{name: "nothing on a workstation, all with ssh: all", m: workstation, allSSH: true, names: []string{"etcd0", "etcd1", "etcd2"}},
		{name: "nothing on a workstation, not all with ssh", m: workstation, err: "this machine (hostname \"laptop\", addresses 192.168.1.5) is none of the hosts of t.toml", kind: ErrNoHost},
		// --this-host is checked: a wrong name never makes this machine
		// another host.
		{name: "this-host matching", m: onEtcd1, said: "etcd1", this: "etcd1", names: []string{"etcd1"}},
		{name: "this-host on a workstation", m: workstation, said: "etcd1", err: "--this-host etcd1: this machine (hostname \"laptop\", addresses 192.168.1.5) is not etcd1 of t.toml (address 10.0.0.11); nothing was done", kind: inventory.ErrNotThisMachine},
		{name: "this-host naming another host", m: onEtcd1, said: "etcd0", kind: inventory.ErrNotThisMachine},
		{name: "named like one host, with another's address", m: misnamed, err: "this machine (hostname \"etcd2\", addresses 10.0.0.10) is named like etcd2 of t.toml but has the address of etcd0 (10.0.0.10)"},
		{name: "this-host naming it, with another's address", m: misnamed, said: "etcd2", err: "has the address of etcd0 (10.0.0.10), not one of etcd2's", kind: inventory.ErrNotThisMachine},
		{name: "this-host typo", m: onEtcd1, said: "etcd9", err: "--this-host etcd9: t.toml has no member or proxy etcd9", kind: inventory.ErrUnknownHost},
	} {
		t.Run(c.name, func(t *testing.T) {
			sel, err := SelectOn(c.m, selectInv(t, c.allSSH), c.selected, c.said)
			if c.err != "" || c.kind != nil {
				if err == nil || !strings.Contains(err.Error(), c.err) || (c.kind != nil && !errors.Is(err, c.kind)) {
					t.Fatalf("err = %v, want %q (%v)", err, c.err, c.kind)
				}
				if strings.Contains(err.Error(), "invalid inventory") {
					t.Errorf("the inventory is fine, the flag is not: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if sel.This != c.this || !slices.Equal(sel.Names, c.names) {
				t.Errorf("got this %q names %v, want %q %v", sel.This, sel.Names, c.this, c.names)
			}
		})
	}
}
