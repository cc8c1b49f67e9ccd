package doctor

import (
	"context"
	"strings"
	"testing"

	"github.com/etcd-appliance/appliance/examples"
	"github.com/etcd-appliance/appliance/host/hosttest"
	"github.com/etcd-appliance/appliance/internal/dnstest"
	"github.com/etcd-appliance/appliance/inventory"
	"github.com/etcd-appliance/appliance/render"
	"github.com/etcd-appliance/appliance/workflow"
)

// doctor names the SRV records dns-srv bootstrap lacks, as the host
// resolves them (a real dnsmasq on loopback serving the rendered records,
// one member's peer record dropped), and says all is there when it is.
func TestDoctorChecksSRVRecords(t *testing.T) {
	data, err := examples.Get("dns-srv")
	if err != nil {
		t.Fatal(err)
	}
	// Members on loopback addresses (A records 127.0.0.1-3): the checks
	// that dial peers reach nothing outside this machine.
	text := string(data)
	for i, ip := range []string{"10.0.1.10", "10.0.1.11", "10.0.1.12"} {
		text = strings.Replace(text, ip, "127.0.0."+string(rune('1'+i)), 1)
	}
	inv, err := inventory.Parse("dns-srv.toml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	r, err := render.Render(inv)
	if err != nil {
		t.Fatal(err)
	}
	var conf string
	for _, f := range r.Cluster {
		if f.Name == render.DnsmasqFile {
			conf = string(f.Data)
		}
	}
	server, _ := inv.SRVNames()
	h, _ := inv.Host("etcd0")
	run := func(conf string) []Finding {
		res := dnstest.Dnsmasq(t, []byte(conf))
		tg := workflow.Target{Host: h, FS: hosttest.NewMemFS(), Services: &hosttest.Services{}}
		var out []Finding
		for _, f := range Run(context.Background(), inv, tg, Options{Resolver: res}) {
			if f.Check == "dns-srv" {
				out = append(out, f)
			}
		}
		return out
	}
	if !strings.Contains(conf, "127.0.0.3") {
		t.Fatalf("the members are not on loopback:\n%s", conf)
	}
	if fs := run(conf); len(fs) != 1 || fs[0].Severity != OK || !strings.Contains(fs[0].Message, "list every member with its ports") {
		t.Errorf("all records served: %s", dump(fs))
	}
	var kept []string
	for _, l := range strings.Split(conf, "\n") {
		if !strings.HasPrefix(l, "srv-host="+server+",etcd2.") {
			kept = append(kept, l)
		}
	}
	fs := run(strings.Join(kept, "\n"))
	expectFinding(t, fs, "dns-srv", Fail, server+" has no record for etcd2 (etcd2.etcd.example.com:2380)", "_cluster/dnsmasq.conf")
}
