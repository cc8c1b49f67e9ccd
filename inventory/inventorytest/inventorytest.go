// Package inventorytest has the inventories tests share: three members on
// a network, members on loopback ports, and a parser that fails the test.
package inventorytest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/etcd-appliance/appliance/inventory"
)

// Three is a three-member inventory named "t" on 10.0.0.10-12 (etcd0,
// etcd1, etcd2); cluster holds extra lines for its [cluster] table.
func Three(cluster string) string {
	return Text("t", cluster, []string{"10.0.0.10", "10.0.0.11", "10.0.0.12"}, nil)
}

// Text is an inventory named name with one member per address (etcd0,
// etcd1, ...), cluster lines under [cluster], and the given client and
// peer ports per member (none for the defaults).
func Text(name, cluster string, addresses []string, ports [][2]int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "version = 1\n[cluster]\nname = %q\n", name)
	if cluster != "" {
		b.WriteString(strings.TrimSuffix(cluster, "\n") + "\n")
	}
	for i, a := range addresses {
		fmt.Fprintf(&b, "[[member]]\nname = \"etcd%d\"\naddress = %q\n", i, a)
		if i < len(ports) {
			fmt.Fprintf(&b, "client_port = %d\npeer_port = %d\n", ports[i][0], ports[i][1])
		}
	}
	return b.String()
}

// Loopback is an inventory named name with n members m0, m1, ... on
// 127.0.0.1, each on its own pair of ports from ports (client, peer,
// client, peer, ...).
func Loopback(name, cluster string, n int, ports []int) string {
	addrs := make([]string, n)
	pairs := make([][2]int, n)
	for i := range n {
		addrs[i] = "127.0.0.1"
		pairs[i] = [2]int{ports[2*i], ports[2*i+1]}
	}
	return strings.ReplaceAll(Text(name, cluster, addrs, pairs), "name = \"etcd", "name = \"m")
}

// Parse loads, defaults and validates text, failing the test on error.
func Parse(t testing.TB, text string) *inventory.Inventory {
	t.Helper()
	inv, err := inventory.Parse("t.toml", []byte(text))
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	return inv
}
