package render

import (
	"fmt"
	"strings"
	"testing"

	"github.com/etcd-appliance/appliance/inventory"
)

func inventoryText(members, proxies int) []byte {
	var b strings.Builder
	b.WriteString("version = 1\n\n[cluster]\nname = \"bench\"\nmetrics_port = 2381\n")
	for i := range members {
		fmt.Fprintf(&b, "\n[[member]]\nname = \"etcd%d\"\naddress = \"10.0.%d.%d\"\nssh = \"root@10.0.%d.%d\"\n", i, i/250, i%250+1, i/250, i%250+1)
	}
	for i := range proxies {
		fmt.Fprintf(&b, "\n[[proxy]]\nname = \"proxy%d\"\naddress = \"10.1.%d.%d\"\n", i, i/250, i%250+1)
	}
	return []byte(b.String())
}

func benchmarkRender(b *testing.B, members, proxies int) {
	data := inventoryText(members, proxies)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	files := 0
	for b.Loop() {
		inv, err := inventory.Load("bench.toml", data)
		if err != nil {
			b.Fatal(err)
		}
		d := inventory.Defaults(inv)
		if err := inventory.Validate(d); err != nil {
			b.Fatal(err)
		}
		r, err := Render(d)
		if err != nil {
			b.Fatal(err)
		}
		files = 0
		for _, h := range r.Hosts {
			files += len(h.Files)
		}
	}
	b.ReportMetric(float64(files), "files")
}

// BenchmarkRender7Members: load, default, validate and render a
// seven-member inventory.
func BenchmarkRender7Members(b *testing.B) { benchmarkRender(b, 7, 0) }

// BenchmarkRenderProxyFleet: the same for three members and 1,000 proxies.
func BenchmarkRenderProxyFleet(b *testing.B) { benchmarkRender(b, 3, 1000) }
