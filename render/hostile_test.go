package render

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/etcd-appliance/appliance/inventory"
)

// hostile are values an attacker or a careless operator writes: shell
// syntax, quotes, separators of every file format the renderer writes,
// line breaks, non-ASCII.
var hostile = []string{
	`a"b`, `a'b`, `a;touch /tmp/x`, `$(id)`, "`id`", `${IFS}`, `a b`, "a\nb", "a\rb", `a\b`, `ä`, `a#b`, `a,b`, `a=b`,
	`*`, `~root`, `a|b`, `a&b`, `a>b`, `--flag`, `-`, `.`, `..`, `/`, `%s`, `{{.Cluster}}`, "\x00", "\t", `a b c`, `é.example.com`,
}

// plausible are values of the right kind, so that most generated
// inventories are valid and get rendered.
var plausible = map[string][]string{
	"name":     {"etcd0", "etcd1", "etcd2", "e-3", "n4.dc1", "m5"},
	"address":  {"10.0.0.10", "10.0.0.11", "10.0.0.12", "fd00::13", "etcd4.example.com", "e5.example.org"},
	"url":      {"http://10.0.0.5:2379", "https://disc.example.com:2379", "https://[fd00::5]:2379"},
	"token":    {"tok", "t-1.2_3"},
	"domain":   {"example.com", "dc1.example.org"},
	"service":  {"", "prod"},
	"ssh":      {"", "root@10.0.0.10", "admin@h.example.com:2222"},
	"loglevel": {"", "info", "debug"},
	"option":   {`log-outputs = "stderr"`, `max-request-bytes = "10485760"`, `grpc-keepalive-timeout = "30s"`, `feature-gates = "InitialCorruptCheck=true"`},
}

// genInventory writes an inventory from plausible values, with one in
// ten string values replaced by a hostile one.
func genInventory(rnd *rand.Rand) string {
	pick := func(kind string) string {
		if rnd.IntN(10) == 0 {
			return hostile[rnd.IntN(len(hostile))]
		}
		vs := plausible[kind]
		return vs[rnd.IntN(len(vs))]
	}
	q := func(s string) string { return fmt.Sprintf("%q", s) }
	var b strings.Builder
	fmt.Fprintf(&b, "version = 1\n[cluster]\nname = %s\ntoken = %s\n", q(pick("token")), q(pick("token")))
	if l := pick("loglevel"); l != "" {
		fmt.Fprintf(&b, "log_level = %s\n", q(l))
	}
	mode := rnd.IntN(3)
	switch mode {
	case 1:
		fmt.Fprintf(&b, "bootstrap = \"dns-srv\"\n[cluster.dns_srv]\ndomain = %s\n", q(pick("domain")))
		if s := pick("service"); s != "" {
			fmt.Fprintf(&b, "service_name = %s\n", q(s))
		}
	case 2:
		fmt.Fprintf(&b, "bootstrap = \"discovery\"\n[cluster.discovery]\nendpoints = [%s, %s]\ntoken = %s\n", q(pick("url")), q(pick("url")), q(pick("token")))
	}
	if rnd.IntN(2) == 0 {
		fmt.Fprintf(&b, "[cluster.options]\n%s\n", plausible["option"][rnd.IntN(len(plausible["option"]))])
		if rnd.IntN(3) == 0 {
			fmt.Fprintf(&b, "\"log-outputs\" = %s\n", q(hostile[rnd.IntN(len(hostile))]))
		}
	}
	n := 1 + 2*rnd.IntN(2)
	used := map[string]bool{}
	for i := range n {
		name := pick("name")
		for used[name] {
			name = fmt.Sprintf("m%d", i)
		}
		used[name] = true
		addr := plausible["address"][i]
		if mode == 1 {
			addr = fmt.Sprintf("etcd%d.%s", i, "example.com")
		}
		if rnd.IntN(10) == 0 {
			addr = hostile[rnd.IntN(len(hostile))]
		}
		fmt.Fprintf(&b, "[[member]]\nname = %s\naddress = %s\n", q(name), q(addr))
		if mode == 1 || rnd.IntN(3) == 0 {
			fmt.Fprintf(&b, "ip = %s\n", q(fmt.Sprintf("10.0.1.%d", 10+i)))
		}
		if s := pick("ssh"); s != "" {
			fmt.Fprintf(&b, "ssh = %s\n", q(s))
		}
	}
	if rnd.IntN(3) == 0 {
		fmt.Fprintf(&b, "[[proxy]]\nname = %s\naddress = %s\n", q(pick("name")+"-px"), q(pick("address")))
	}
	return b.String()
}

// TestRenderingPropertiesHostile renders thousands of generated
// inventories, a quarter of their values hostile: whatever validates must
// render to exactly the files meant (checkRendering), fast; a sample is
// linted with ShellCheck and sh -n.
func TestRenderingPropertiesHostile(t *testing.T) {
	rnd := rand.New(rand.NewPCG(20261130, 11))
	valid, linted := 0, 0
	dir := t.TempDir()
	for i := range 3000 {
		text := genInventory(rnd)
		start := time.Now()
		inv, err := inventory.Parse("gen.toml", []byte(text))
		if took := time.Since(start); took > time.Second {
			t.Fatalf("case %d took %s to load:\n%s", i, took, text)
		}
		if err != nil {
			continue
		}
		valid++
		r, err := Render(inv)
		if err != nil {
			t.Fatalf("case %d: a valid inventory does not render: %v\n%s", i, err, text)
		}
		if err := checkRendering(inv, r); err != nil {
			t.Fatalf("case %d: %v\n%s", i, err, text)
		}
		if valid%25 == 0 {
			if err := shellcheck(r, dir); err != nil {
				t.Fatalf("case %d: %v", i, err)
			}
			linted++
		}
	}
	t.Logf("3000 generated inventories: %d valid and rendered, %d linted", valid, linted)
	if valid < 300 {
		t.Errorf("only %d of 3000 generated inventories are valid: the generator tests too little", valid)
	}
}

// TestRenderingPropertiesGolden checks every golden case and example with
// checkRendering and ShellCheck.
func TestRenderingPropertiesGolden(t *testing.T) {
	for dir, c := range goldenCases(t) {
		inv := loadValid(t, c)
		r, err := Render(inv)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkRendering(inv, r); err != nil {
			t.Errorf("%s: %v", dir, err)
		}
		if err := shellcheck(r, t.TempDir()); err != nil {
			t.Errorf("%s: %v", dir, err)
		}
	}
}

// The checker is itself tested: each planted bug of the kinds it guards
// against is reported.
func TestCheckRenderingCatchesPlantedBugs(t *testing.T) {
	disc := loadValid(t, "testdata/golden/discovery/inventory.toml")
	dns := loadValid(t, "../examples/dns-srv.toml")
	local := loadValid(t, "../examples/local.toml")
	plants := []struct {
		name  string
		inv   *inventory.Inventory
		plant func(r *Rendering)
	}{
		{"a value unquoted in discovery.sh", disc, func(r *Rendering) {
			replaceCluster(r, DiscoveryFile, "put ", "put /x;touch${IFS}/tmp/pwned;# ")
		}},
		{"a command substitution in discovery.sh", disc, func(r *Rendering) { replaceCluster(r, DiscoveryFile, "set -eu", "set -eu $(id)") }},
		{"a second line in etcd.conf", local, func(r *Rendering) {
			f := &r.Hosts[0].Files[0]
			f.Data = append(f.Data, []byte("ETCD_EXTRA=1\n")...)
		}},
		{"a value cut at a quote in etcd.conf", local, func(r *Rendering) {
			f := &r.Hosts[0].Files[0]
			f.Data = []byte(strings.Replace(string(f.Data), "ETCD_NAME=", "ETCD_NAME=x\nETCD_NAME=", 1))
		}},
		{"an extra record in dnsmasq.conf", dns, func(r *Rendering) {
			replaceCluster(r, DnsmasqFile, "srv-host=", "address=/#/10.6.6.6\nsrv-host=")
		}},
		{"a record split across lines in the BIND zone", dns, func(r *Rendering) {
			replaceCluster(r, BindZoneFile, " 300 IN SRV", "\n 300 IN SRV")
		}},
		{"a variable in a Procfile command", local, func(r *Rendering) { replaceCluster(r, ProcfileFile, "--name=", "--name=$HOME") }},
	}
	for _, p := range plants {
		r, err := Render(p.inv)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkRendering(p.inv, r); err != nil {
			t.Fatalf("%s: the clean rendering fails: %v", p.name, err)
		}
		p.plant(r)
		if err := checkRendering(p.inv, r); err == nil {
			t.Errorf("%s: not reported", p.name)
		}
	}
}

func replaceCluster(r *Rendering, name, old, new string) {
	for i := range r.Cluster {
		if r.Cluster[i].Name == name {
			r.Cluster[i].Data = []byte(strings.Replace(string(r.Cluster[i].Data), old, new, 1))
		}
	}
}
