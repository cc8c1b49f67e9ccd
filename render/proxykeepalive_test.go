package render

import (
	"slices"
	"testing"

	"github.com/etcd-appliance/appliance/inventory"
)

// A proxy pings the members every 10 s, or as seldom as the members ask
// (they close a client's connections that pings more often).
func TestProxyKeepalive(t *testing.T) {
	for opts, want := range map[string]string{
		"": "--dial-keepalive-time=10s",
		"[cluster.options]\n\"grpc-keepalive-min-time\" = \"30s\"\n": "--dial-keepalive-time=30s",
		"[cluster.options]\n\"grpc-keepalive-min-time\" = \"2s\"\n":  "--dial-keepalive-time=10s",
	} {
		text := "version = 1\n[cluster]\nname = \"k\"\n" + opts +
			"[[member]]\nname = \"m0\"\naddress = \"10.0.0.1\"\n[[proxy]]\nname = \"p\"\naddress = \"10.0.0.9\"\n"
		inv, err := inventory.Parse("k.toml", []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		if flags := ProxyFlags(inv, &inv.Proxies[0]); !slices.Contains(flags, want) {
			t.Errorf("%q: flags %q lack %q", opts, flags, want)
		}
	}
}
