package render

import (
	"bytes"
	"testing"

	"github.com/etcd-appliance/appliance/examples"
	"github.com/etcd-appliance/appliance/inventory"
)

// TestBytesIgnoreTheInventoryFileName: a byte-identical copy of an
// inventory under another name renders the same bytes. Before, each env
// file's header named the file, so a renamed copy made doctor warn and
// plan/apply rewrite (and restart) every host.
func TestBytesIgnoreTheInventoryFileName(t *testing.T) {
	for _, name := range examples.Names() {
		data, err := examples.Get(name)
		if err != nil {
			t.Fatal(err)
		}
		var renders [2]*Rendering
		for k, file := range []string{"prod.toml", "copy of prod (old).toml"} {
			inv, err := inventory.Parse(file, data)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if renders[k], err = Render(inv); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		for i, h := range renders[0].Hosts {
			for j, f := range h.Files {
				if g := renders[1].Hosts[i].Files[j]; !bytes.Equal(f.Data, g.Data) {
					t.Errorf("%s: %s of %s depends on the inventory's file name:\n%s\n---\n%s", name, f.Path, h.Host.Name, f.Data, g.Data)
				}
			}
		}
		for i, f := range renders[0].Cluster {
			if g := renders[1].Cluster[i]; !bytes.Equal(f.Data, g.Data) {
				t.Errorf("%s: %s depends on the inventory's file name", name, f.Name)
			}
		}
	}
}
