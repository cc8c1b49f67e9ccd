package render

import (
	"os"
	"regexp"
	"testing"
)

// TestVagrantInventory: the Vagrant cluster's inventory validates and
// renders, and names the same hosts and addresses as the Vagrantfile.
func TestVagrantInventory(t *testing.T) {
	inv := loadValid(t, "../vagrant/inventory.toml")
	if _, err := Render(inv); err != nil {
		t.Fatal(err)
	}
	vf, err := os.ReadFile("../vagrant/Vagrantfile")
	if err != nil {
		t.Fatal(err)
	}
	hosts := regexp.MustCompile(`"(etcd\d)" => "([0-9.]+)"`).FindAllStringSubmatch(string(vf), -1)
	if len(hosts) != len(inv.Members) {
		t.Fatalf("Vagrantfile has %d hosts, the inventory %d members", len(hosts), len(inv.Members))
	}
	for i, h := range hosts {
		if m := inv.Members[i]; m.Name != h[1] || m.Address != h[2] {
			t.Errorf("Vagrantfile host %s %s, inventory member %s %s", h[1], h[2], m.Name, m.Address)
		}
	}
}
