package inventory

import (
	"net"
	"testing"
)

// The hostname's first label may be a host's name or its address (a DNS
// name given short), as docs/operations.md says.
func TestMachineIsByShortName(t *testing.T) {
	h := Host{Name: "db1", Address: "etcd1"}
	for _, c := range []struct {
		m    Machine
		want bool
	}{
		{Machine{Hostname: "etcd1.example.com"}, true},
		{Machine{Hostname: "etcd1"}, true},
		{Machine{Hostname: "db1.example.com"}, true},
		{Machine{Hostname: "etcd10.example.com"}, false},
		{Machine{Hostname: "laptop", IPs: []net.IP{net.ParseIP("127.0.0.1")}}, false},
	} {
		if got := c.m.Is(h); got != c.want {
			t.Errorf("%s is %v, want %v", c.m, got, c.want)
		}
	}
}
