package render

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/etcd-appliance/appliance/examples"
	"github.com/etcd-appliance/appliance/internal/dnstest"
	"github.com/etcd-appliance/appliance/inventory"
)

// dnsInventory is the dns-srv example, with TLS as rendered by default
// and with tls = "off" (the plain-text SRV names).
func dnsInventories(t *testing.T) map[string]*inventory.Inventory {
	t.Helper()
	data, err := examples.Get("dns-srv")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*inventory.Inventory{}
	for name, text := range map[string]string{
		"tls":       string(data),
		"plaintext": strings.Replace(string(data), "[cluster]\n", "[cluster]\ntls = \"off\"\n", 1),
	} {
		inv, err := inventory.Parse("dns-srv.toml", []byte(text))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out[name] = inv
	}
	return out
}

func clusterFile(t *testing.T, inv *inventory.Inventory, name string) []byte {
	t.Helper()
	r, err := Render(inv)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range r.Cluster {
		if f.Name == name {
			return f.Data
		}
	}
	t.Fatalf("no %s rendered", name)
	return nil
}

// The rendered BIND records, included in a zone as the comment says, pass
// BIND's own checker.
func TestBINDZoneLoads(t *testing.T) {
	for name, inv := range dnsInventories(t) {
		dir := t.TempDir()
		domain := inv.Cluster.DNSSRV.Domain
		os.WriteFile(filepath.Join(dir, "etcd.zone"), clusterFile(t, inv, "bind.zone"), 0o644)
		zone := fmt.Sprintf("$TTL 300\n$ORIGIN %s.\n@ IN SOA ns hostmaster 1 3600 600 86400 300\n@ IN NS ns\nns IN A 192.0.2.53\n$INCLUDE %s\n",
			domain, filepath.Join(dir, "etcd.zone"))
		main := filepath.Join(dir, "db.zone")
		os.WriteFile(main, []byte(zone), 0o644)
		out, err := exec.Command("named-checkzone", domain, main).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "OK") {
			t.Errorf("%s: named-checkzone refuses the rendered records: %v\n%s", name, err, out)
		}
	}
}

// The rendered dnsmasq records, served by a real dnsmasq on loopback,
// answer the SRV lookups etcd makes (server, to bootstrap; client, for
// etcdctl --discovery-srv) with the members' names, ports and addresses.
func TestDnsmasqServesTheRecords(t *testing.T) {
	for name, inv := range dnsInventories(t) {
		t.Run(name, func(t *testing.T) {
			res := dnstest.Dnsmasq(t, clusterFile(t, inv, "dnsmasq.conf"))
			suffix := ""
			if inv.TLSEnabled() {
				suffix = "-ssl"
			}
			domain := inv.Cluster.DNSSRV.Domain
			for _, svc := range []struct {
				service string
				port    func(m *inventory.Member) int
			}{
				{"etcd-server" + suffix, func(m *inventory.Member) int { return m.PeerPort }},
				{"etcd-client" + suffix, func(m *inventory.Member) int { return m.ClientPort }},
			} {
				_, srvs, err := res.LookupSRV(context.Background(), svc.service, "tcp", domain)
				if err != nil {
					t.Fatalf("_%s._tcp.%s: %v", svc.service, domain, err)
				}
				var got, want []string
				for _, s := range srvs {
					addrs, err := res.LookupHost(context.Background(), strings.TrimSuffix(s.Target, "."))
					if err != nil {
						t.Fatalf("%s: %v", s.Target, err)
					}
					got = append(got, fmt.Sprintf("%s:%d=%s", strings.TrimSuffix(s.Target, "."), s.Port, strings.Join(addrs, ",")))
				}
				for i := range inv.Members {
					m := &inv.Members[i]
					want = append(want, fmt.Sprintf("%s:%d=%s", m.Address, svc.port(m), m.IP))
				}
				sort.Strings(got)
				sort.Strings(want)
				if strings.Join(got, " ") != strings.Join(want, " ") {
					t.Errorf("_%s._tcp.%s answers %v, want %v", svc.service, domain, got, want)
				}
			}
		})
	}
}
