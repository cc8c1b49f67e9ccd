package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/etcd-appliance/appliance/cluster"
	"github.com/etcd-appliance/appliance/e2e/testbed"
	"github.com/etcd-appliance/appliance/e2e/writer"
	"github.com/etcd-appliance/appliance/internal/discovery"
)

// The bootstrap suite forms clusters from the inventory in every mode it
// renders, on real hosts: DNS SRV through a real dnsmasq (TLS, then plain
// text), etcd v3 discovery through a discovery etcd, and a gRPC proxy
// host provisioned over SSH with the members. Each mode runs the commands
// docs/inventory.md gives an operator.
type BootstrapTest struct {
	*ClusterTest
	// Took is each mode's time to a healthy cluster, from the moment what
	// it bootstraps through is in place.
	Took []ModeTime
}

// ModeTime is one mode's time to healthy.
type ModeTime struct {
	Mode string
	Took time.Duration
}

const (
	srvDomain = "etcd.e2e.test"
	dnsmasqD  = "/etc/dnsmasq.d"
)

// Bootstrap runs the bootstrap suite on hosts bctl (control and DNS
// server), b0-b2 (members) and bproxy.
func Bootstrap(ctx context.Context, r *Run, tb *testbed.Testbed, pk Packages, writer string) *BootstrapTest {
	b := &BootstrapTest{ClusterTest: &ClusterTest{Ctx: ctx, R: r, TB: tb, Pk: pk, Writer: writer,
		Hosts: HostNames{Control: "bctl", Prefix: "b", Octet: 40, Proxies: []string{"bproxy"}}}}
	if b.SetupHosts() != nil {
		return b
	}
	steps := []struct {
		name string
		stop bool
		run  func() error
	}{
		{"DNS: dnsmasq enabled on bctl; every host resolves through it (resolv.conf), the cluster's names in no /etc/hosts", true, b.dnsServer},
		{"dns-srv, TLS: certs, apply over SSH before the records exist: members wait, STATUS and doctor name the missing SRV records", true, b.srvWaits},
		{"dns-srv, TLS: the rendered records published in dnsmasq (the BIND zone passes named-checkzone): members bootstrap through _etcd-server-ssl", true, b.srvPublish},
		{"dns-srv, TLS: etcdctl --discovery-srv finds the cluster; a writer through SRV, one through the proxy host applied with the members", true, b.srvClients},
		{"dns-srv, TLS: the leader's host powered off: both writers go on; back, healthy; no acknowledged write lost", false, b.srvMemberDown},
		{`dns-srv, tls = "off": plain-text records (_etcd-server._tcp), apply, clients through etcdctl --discovery-srv`, false, b.srvPlain},
		{"discovery: a one-member discovery etcd applied on bctl; members applied over SSH wait for the size key, STATUS and doctor name it", true, b.discoveryWaits},
		{"discovery: the rendered discovery.sh run on bctl; the members bootstrap through the discovery service", true, b.discoveryBootstrap},
		{"discovery: a fourth member registering with the full token is refused: exit 78, the cause in STATUS, not restarted", false, b.discoveryFull},
	}
	for _, s := range steps {
		if r.Step(s.name, s.run) != nil && s.stop {
			break
		}
	}
	for _, m := range b.Took {
		r.Logf("time to healthy, %s: %s", m.Mode, m.Took.Round(10*time.Millisecond))
	}
	return b
}

func (b *BootstrapTest) everyHost() []*testbed.Node {
	return append(append([]*testbed.Node{b.Control}, b.Members...), b.Proxies...)
}

// write puts a file on the control host.
func (b *BootstrapTest) write(path, text string) error {
	return b.Control.WriteFile(strings.TrimPrefix(path, "/"), []byte(text), 0o644)
}

// srvInventory is a dns-srv inventory of the member hosts (DNS names, with
// their addresses for the A records), reached over SSH.
func (b *BootstrapTest) srvInventory(name, extra string, proxies bool) string {
	var s strings.Builder
	fmt.Fprintf(&s, "version = 1\n\n[cluster]\nname = %q\nbootstrap = \"dns-srv\"\n%s\n[cluster.dns_srv]\ndomain = %q\n", name, extra, srvDomain)
	for _, m := range b.Members {
		fmt.Fprintf(&s, "\n[[member]]\nname = %q\naddress = \"%s.%s\"\nip = %q\nssh = \"root@%s\"\n", m.Name, m.Name, srvDomain, m.IP, m.IP)
	}
	if proxies {
		for _, p := range b.Proxies {
			fmt.Fprintf(&s, "\n[[proxy]]\nname = %q\naddress = %q\nssh = \"root@%s\"\n", p.Name, p.IP, p.IP)
		}
	}
	return s.String()
}

// dnsServer is the step "DNS: dnsmasq enabled on bctl; ...".
func (b *BootstrapTest) dnsServer() error {
	ctx := b.Ctx
	if out, err := b.ctl("systemctl", "enable", "--now", "dnsmasq"); err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	for _, n := range b.everyHost() {
		if err := n.WriteFile("etc/resolv.conf", []byte("nameserver "+b.Control.IP+"\n"), 0o644); err != nil {
			return err
		}
	}
	return parallel(b.everyHost(), func(n *testbed.Node) error {
		hosts, err := n.ReadFile("etc/hosts")
		if err != nil {
			return err
		}
		if strings.Contains(string(hosts), srvDomain) {
			return fmt.Errorf("%s's /etc/hosts names the cluster's domain:\n%s", n.Name, hosts)
		}
		// dnsmasq answers (its own host's name), and the cluster's names
		// are not known yet.
		return Eventually(ctx, 20*time.Second, func() error {
			if out, err := n.Exec(ctx, "getent", "hosts", b.Control.Name); err != nil {
				return fmt.Errorf("%s does not resolve %s through dnsmasq: %v %s", n.Name, b.Control.Name, err, out)
			}
			if out, err := n.Exec(ctx, "getent", "hosts", b.Members[0].Name+"."+srvDomain); err == nil {
				return fmt.Errorf("%s resolves a member's name before any record is published: %s", n.Name, out)
			}
			return nil
		})
	})
}

// memberStatus waits until every member's unit is starting (not failed,
// never restarted) with a STATUS containing want.
func (b *BootstrapTest) memberStatus(want string) error {
	ctx := b.Ctx
	return parallel(b.Members, func(m *testbed.Node) error {
		if err := Eventually(ctx, 60*time.Second, func() error {
			active, _, _, status := unitState(ctx, m, "etcd.service")
			if active != "activating" || !strings.Contains(status, want) {
				return fmt.Errorf("%s: etcd is %s, STATUS %q; want activating with %q", m.Name, active, status, want)
			}
			return nil
		}); err != nil {
			return err
		}
		if n, _ := m.Exec(ctx, "systemctl", "show", "etcd", "--property=NRestarts", "--value"); strings.TrimSpace(n) != "0" {
			return fmt.Errorf("%s: etcd restarted %s times while it should wait", m.Name, strings.TrimSpace(n))
		}
		_, _, _, status := unitState(ctx, m, "etcd.service")
		if m == b.Members[0] {
			b.R.Logf("%s STATUS: %s", m.Name, status)
		}
		return nil
	})
}

// doctorSays runs doctor for one host from the control host and wants it
// to fail with every line of want in its output.
func (b *BootstrapTest) doctorSays(inv, host string, want ...string) error {
	out, err := b.ctl("etcd-installer", "doctor", inv, "--host", host)
	if err == nil {
		return fmt.Errorf("doctor passed:\n%s", out)
	}
	for _, w := range want {
		if err := expect(out, w, "doctor --host "+host); err != nil {
			return err
		}
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, want[0]) {
			b.R.Logf("doctor: %s", strings.TrimSpace(l))
		}
	}
	return nil
}

const srvInv = "/root/srv/cluster.toml"

// srvWaits is the step "dns-srv, TLS: certs, apply over SSH before the records exist: ...".
func (b *BootstrapTest) srvWaits() error {
	if err := b.write(srvInv, b.srvInventory("srv", "", true)); err != nil {
		return err
	}
	for _, argv := range [][]string{
		{"etcd-installer", "certs", srvInv},
		{"etcd-installer", "apply", srvInv, "--no-wait"},
	} {
		if out, err := b.ctl(argv...); err != nil {
			return fmt.Errorf("%s: %w\n%s", strings.Join(argv, " "), err, out)
		}
	}
	server := "_etcd-server-ssl._tcp." + srvDomain
	if err := b.memberStatus("waiting for DNS SRV records: " + server + " does not resolve"); err != nil {
		return err
	}
	return b.doctorSays(srvInv, b.Members[0].Name, server+" does not resolve on "+b.Members[0].Name, "_cluster/dnsmasq.conf")
}

// publish installs a rendered dnsmasq.conf as the only etcd records and
// restarts dnsmasq, as docs/inventory.md says.
func (b *BootstrapTest) publish(inv, out, name string) error {
	if o, err := b.ctl("etcd-installer", "render", inv, "--out", out); err != nil {
		return fmt.Errorf("render: %w\n%s", err, o)
	}
	if _, err := b.Control.Sh(b.Ctx, "rm -f "+dnsmasqD+"/etcd-*.conf && install -m 0644 "+out+"/_cluster/dnsmasq.conf "+dnsmasqD+"/etcd-"+name+".conf && systemctl restart dnsmasq"); err != nil {
		return err
	}
	return nil
}

// healthy polls etcd-installer health until it passes and records the time
// since start as mode's time to healthy (none for mode "").
func (b *BootstrapTest) healthy(inv, mode string, start time.Time) error {
	if err := Eventually(b.Ctx, 120*time.Second, func() error {
		out, err := b.ctl("etcd-installer", "health", inv)
		if err != nil {
			return fmt.Errorf("%w\n%s", err, out)
		}
		return nil
	}); err != nil {
		return err
	}
	if mode != "" {
		took := time.Since(start)
		b.Took = append(b.Took, ModeTime{mode, took})
		b.R.Logf("%s: healthy %s after what it bootstraps through was in place", mode, took.Round(10*time.Millisecond))
	}
	return nil
}

// srvPublish is the step "dns-srv, TLS: the rendered records published in dnsmasq ...".
func (b *BootstrapTest) srvPublish() error {
	start := time.Now()
	if err := b.publish(srvInv, "/root/srv/out", "srv"); err != nil {
		return err
	}
	if err := b.healthy(srvInv, "dns-srv with TLS", start); err != nil {
		return err
	}
	if err := checkZone(filepath.Join(b.Control.Root(), "root/srv/out/_cluster/bind.zone")); err != nil {
		return err
	}
	// etcd's own account of where its peers came from.
	return parallel(b.Members, func(m *testbed.Node) error {
		logs, err := m.Exec(b.Ctx, "journalctl", "-u", "etcd", "--no-pager", "-o", "cat")
		if err != nil {
			return err
		}
		return expect(logs, "got bootstrap from DNS for etcd-server", m.Name+" journal")
	})
}

// checkZone loads the rendered BIND records, included in a zone as their
// comment says, with BIND's own checker (on this machine: it reads a
// file, nothing goes on the network).
func checkZone(records string) error {
	dir, err := os.MkdirTemp("", "zone-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	zone := fmt.Sprintf("$TTL 300\n$ORIGIN %s.\n@ IN SOA ns hostmaster 1 3600 600 86400 300\n@ IN NS ns\nns IN A 192.0.2.53\n$INCLUDE %s\n", srvDomain, records)
	main := filepath.Join(dir, "db.zone")
	if err := os.WriteFile(main, []byte(zone), 0o644); err != nil {
		return err
	}
	out, err := exec.Command("named-checkzone", srvDomain, main).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK") {
		return fmt.Errorf("named-checkzone refuses the rendered records: %v\n%s", err, out)
	}
	return nil
}

// srvTLS are the operator's client flags of the srv cluster.
func srvTLS() []string {
	d := "/root/srv/certs/_operator/"
	return []string{"--cacert", d + "ca.crt", "--cert", d + "client.crt", "--key", d + "client.key"}
}

// writer is one e2e-writer unit on the control host.
type writerUnit struct{ name string }

func (w writerUnit) stats() string { return "/root/" + w.name + ".json" }
func (w writerUnit) stop() string  { return "/root/" + w.name + ".stop" }

// files are where the writer keeps its history and its watchers' streams.
func (w writerUnit) files() []string {
	return []string{"--prefix", w.prefix(), "--history", "/root/" + w.name + "-history.jsonl", "--watches", "/root/" + w.name + "-watch"}
}
func (w writerUnit) prefix() string {
	return w.name + "/"
}

var (
	srvWriter   = writerUnit{"writer-srv"}
	proxyWriter = writerUnit{"writer-proxy"}
)

func (b *BootstrapTest) startWriterUnit(w writerUnit, target ...string) error {
	argv := append(append([]string{"systemd-run", "--unit", w.name, "/usr/local/bin/e2e-writer",
		"--stats", w.stats(), "--stop", w.stop()}, w.files()...), target...)
	if out, err := b.ctl(append(argv, srvTLS()...)...); err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	return nil
}

func (b *BootstrapTest) statsOf(w writerUnit) (acked, failed int64, last string) {
	var s writer.Stats
	data, _ := b.Control.ReadFile(strings.TrimPrefix(w.stats(), "/"))
	_ = json.Unmarshal(data, &s)
	return s.Acked, s.Failed, s.LastErr
}

// continues waits until w has n more acknowledged writes.
func (b *BootstrapTest) continues(w writerUnit, n int64, d time.Duration) error {
	start, _, _ := b.statsOf(w)
	return Eventually(b.Ctx, d, func() error {
		if acked, _, last := b.statsOf(w); acked < start+n {
			return fmt.Errorf("%s stalled: %d acknowledged since (last error: %s)", w.name, acked-start, last)
		}
		return nil
	})
}

// srvClients is the step "dns-srv, TLS: etcdctl --discovery-srv finds the cluster; ...".
func (b *BootstrapTest) srvClients() error {
	ctx := b.Ctx
	out, err := b.ctl(append([]string{"etcdctl", "--discovery-srv", srvDomain, "member", "list"}, srvTLS()...)...)
	if err != nil {
		return fmt.Errorf("etcdctl --discovery-srv: %w\n%s", err, out)
	}
	for _, m := range b.Members {
		if err := expect(out, "https://"+m.Name+"."+srvDomain+":2380", "member list through SRV"); err != nil {
			return err
		}
	}
	p := b.Proxies[0]
	if err := waitActive(ctx, p, "etcd-grpc-proxy.service", 60*time.Second); err != nil {
		return err
	}
	if err := Eventually(ctx, 30*time.Second, func() error {
		_, _, _, st := unitState(ctx, p, "etcd-grpc-proxy.service")
		if !strings.HasPrefix(st, "serving on "+p.IP+":23790; ") {
			return fmt.Errorf("proxy STATUS %q", st)
		}
		return nil
	}); err != nil {
		return err
	}
	wb, err := os.ReadFile(b.Writer)
	if err != nil {
		return err
	}
	if err := b.Control.WriteFile("usr/local/bin/e2e-writer", wb, 0o755); err != nil {
		return err
	}
	if err := b.startWriterUnit(srvWriter, "--discovery-srv", srvDomain); err != nil {
		return err
	}
	if err := b.startWriterUnit(proxyWriter, "--endpoints", "https://"+p.IP+":23790"); err != nil {
		return err
	}
	for _, w := range []writerUnit{srvWriter, proxyWriter} {
		if err := b.continues(w, 20, 30*time.Second); err != nil {
			return err
		}
	}
	return nil
}

// srvMemberDown is the step "dns-srv, TLS: the leader's host powered off: ...".
func (b *BootstrapTest) srvMemberDown() error {
	ctx := b.Ctx
	var leader *testbed.Node
	if err := Eventually(ctx, 30*time.Second, func() error {
		var cs cluster.ClusterStatus
		out, err := b.ctl("etcd-installer", "status", srvInv, "-o", "json")
		if jerr := json.Unmarshal([]byte(out), &cs); jerr != nil {
			return fmt.Errorf("status: %v %v", err, jerr)
		}
		for _, r := range cs.Rows {
			if r.Leader {
				leader = b.member(r.Name)
				return nil
			}
		}
		return errors.New("no leader")
	}); err != nil {
		return err
	}
	b.R.Logf("powering off the leader's host %s", leader.Name)
	leader.PowerOff()
	downErr := func() error {
		for _, w := range []writerUnit{srvWriter, proxyWriter} {
			if err := b.continues(w, 30, 60*time.Second); err != nil {
				return fmt.Errorf("with %s down: %w", leader.Name, err)
			}
		}
		return nil
	}()
	if err := leader.PowerOn(ctx); err != nil {
		return err
	}
	if downErr != nil {
		return downErr
	}
	if err := b.healthy(srvInv, "", time.Now()); err != nil {
		return err
	}
	for _, w := range []writerUnit{srvWriter, proxyWriter} {
		if err := b.continues(w, 10, 30*time.Second); err != nil {
			return err
		}
	}
	return b.stopWriters()
}

// stopWriters stops both writers and reads every acknowledged key back.
func (b *BootstrapTest) stopWriters() error {
	ctx := b.Ctx
	var errs []error
	for _, w := range []writerUnit{srvWriter, proxyWriter} {
		if _, err := b.ctl("touch", w.stop()); err != nil {
			return err
		}
		if err := Eventually(ctx, 30*time.Second, func() error {
			out, _ := b.ctl("systemctl", "is-active", w.name)
			if strings.TrimSpace(out) == "active" {
				return errors.New(w.name + " still running")
			}
			return nil
		}); err != nil {
			return err
		}
		var st writer.Stats
		data, _ := b.Control.ReadFile(strings.TrimPrefix(w.stats(), "/"))
		_ = json.Unmarshal(data, &st)
		if err := b.verifyWriter(w.name, st, append(append([]string{"--discovery-srv", srvDomain}, w.files()...), srvTLS()...)); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", w.name, err))
		}
	}
	return errors.Join(errs...)
}

// reset stops etcd and the proxy on the hosts and moves their data dirs
// away, so that the next mode bootstraps a new cluster (the test does so
// by name; etcd-installer never deletes a data dir).
func (b *BootstrapTest) reset(nodes []*testbed.Node) error {
	return parallel(nodes, func(n *testbed.Node) error {
		_, err := n.Sh(b.Ctx, "systemctl stop etcd etcd-grpc-proxy && rm -rf /var/lib/etcd/"+n.Name+" /var/lib/etcd/"+n.Name+".*")
		return err
	})
}

const plainInv = "/root/plain/cluster.toml"

// srvPlain is the step `dns-srv, tls = "off": ...`.
func (b *BootstrapTest) srvPlain() error {
	if err := b.reset(b.everyHost()[1:]); err != nil {
		return err
	}
	if err := b.write(plainInv, b.srvInventory("plain", "tls = \"off\"\n", false)); err != nil {
		return err
	}
	start := time.Now()
	if err := b.publish(plainInv, "/root/plain/out", "plain"); err != nil {
		return err
	}
	conf, _ := b.Control.ReadFile("root/plain/out/_cluster/dnsmasq.conf")
	if !strings.Contains(string(conf), "srv-host=_etcd-server._tcp."+srvDomain) || strings.Contains(string(conf), "-ssl") {
		return fmt.Errorf("plain-text records expected:\n%s", conf)
	}
	if out, err := b.ctl("etcd-installer", "apply", plainInv); err != nil {
		return fmt.Errorf("apply: %w\n%s", err, out)
	}
	if err := b.healthy(plainInv, `dns-srv with tls = "off"`, start); err != nil {
		return err
	}
	if out, err := b.ctl("etcdctl", "--discovery-srv", srvDomain, "put", "plain/key", "through SRV"); err != nil {
		return fmt.Errorf("put through SRV: %w\n%s", err, out)
	}
	out, err := b.ctl("etcdctl", "--discovery-srv", srvDomain, "get", "plain/key", "--print-value-only", "--consistency=l")
	if err != nil || strings.TrimSpace(out) != "through SRV" {
		return fmt.Errorf("get through SRV: %q %v", out, err)
	}
	return nil
}

const (
	discServiceInv = "/root/disc-service/cluster.toml"
	discInv        = "/root/disc/cluster.toml"
)

func (b *BootstrapTest) discToken() string {
	data, _ := b.Control.ReadFile(strings.TrimPrefix(discInv, "/"))
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "token = "); ok {
			s, _ := strconv.Unquote(v)
			return s
		}
	}
	return ""
}

// discoveryWaits is the step "discovery: a one-member discovery etcd applied on bctl; ...".
func (b *BootstrapTest) discoveryWaits() error {
	if err := b.reset(b.everyHost()[1:]); err != nil {
		return err
	}
	// The discovery service is an appliance cluster of one, on bctl itself.
	svc := fmt.Sprintf("version = 1\n\n[cluster]\nname = \"discovery-service\"\ntls = \"off\"\n\n[[member]]\nname = %q\naddress = %q\n", b.Control.Name, b.Control.IP)
	if err := b.write(discServiceInv, svc); err != nil {
		return err
	}
	if out, err := b.ctl("etcd-installer", "apply", discServiceInv); err != nil {
		return fmt.Errorf("apply the discovery service: %w\n%s", err, out)
	}
	var s strings.Builder
	fmt.Fprintf(&s, "version = 1\n\n[cluster]\nname = \"disc\"\nbootstrap = \"discovery\"\n\n[cluster.discovery]\nendpoints = [\"http://%s:2379\"]\ntoken = \"e2e-disc-%d\"\n",
		b.Control.IP, time.Now().UnixNano())
	for _, m := range b.Members {
		fmt.Fprintf(&s, "\n[[member]]\nname = %q\naddress = %q\nssh = \"root@%s\"\n", m.Name, m.IP, m.IP)
	}
	if err := b.write(discInv, s.String()); err != nil {
		return err
	}
	for _, argv := range [][]string{
		{"etcd-installer", "certs", discInv},
		{"etcd-installer", "apply", discInv, "--no-wait"},
	} {
		if out, err := b.ctl(argv...); err != nil {
			return fmt.Errorf("%s: %w\n%s", strings.Join(argv, " "), err, out)
		}
	}
	if err := b.memberStatus("waiting for the discovery service at http://" + b.Control.IP + ":2379: this cluster's size key is not set; run the rendered _cluster/discovery.sh"); err != nil {
		return err
	}
	if err := b.doctorSays(discInv, b.Members[0].Name, discovery.SizeKey("TOKEN")+" is not set on the discovery service", "discovery.sh"); err != nil {
		return err
	}
	if out, _ := b.ctl("etcd-installer", "doctor", discInv, "--host", b.Members[0].Name); strings.Contains(out, b.discToken()) {
		return fmt.Errorf("doctor names the token:\n%s", out)
	}
	return nil
}

// discoveryBootstrap is the step "discovery: the rendered discovery.sh run on bctl; ...".
func (b *BootstrapTest) discoveryBootstrap() error {
	if out, err := b.ctl("etcd-installer", "render", discInv, "--out", "/root/disc/out"); err != nil {
		return fmt.Errorf("render: %w\n%s", err, out)
	}
	start := time.Now()
	if out, err := b.ctl("sh", "/root/disc/out/_cluster/discovery.sh"); err != nil {
		return fmt.Errorf("discovery.sh: %w\n%s", err, out)
	}
	if err := b.healthy(discInv, "v3 discovery", start); err != nil {
		return err
	}
	// Each member's place on the discovery service, and etcd's word for it.
	out, err := b.ctl("etcdctl", "--endpoints=http://"+b.Control.IP+":2379", "get", "--prefix", "--count-only", "-w", "fields", discovery.MembersPrefix(b.discToken()))
	if err != nil || !strings.Contains(out, `"Count" : 3`) {
		return fmt.Errorf("registered members on the discovery service: %v\n%s", err, out)
	}
	return parallel(b.Members, func(m *testbed.Node) error {
		logs, err := m.Exec(b.Ctx, "journalctl", "-u", "etcd", "--no-pager", "-o", "cat")
		if err != nil {
			return err
		}
		return expect(logs, "discovery joined cluster successfully", m.Name+" journal")
	})
}

// discoveryFull is the step "discovery: a fourth member registering with the full token is refused: ...".
func (b *BootstrapTest) discoveryFull() error {
	ctx := b.Ctx
	n := b.Proxies[0]
	if err := b.reset([]*testbed.Node{n}); err != nil {
		return err
	}
	// A member configured by hand with the cluster's token, as a careless
	// operator adds a fourth host.
	conf := fmt.Sprintf("ETCD_NAME=b3\nETCD_DATA_DIR=/var/lib/etcd/b3\nETCD_LISTEN_PEER_URLS=http://%[1]s:2380\nETCD_INITIAL_ADVERTISE_PEER_URLS=http://%[1]s:2380\n"+
		"ETCD_LISTEN_CLIENT_URLS=http://%[1]s:2379\nETCD_ADVERTISE_CLIENT_URLS=http://%[1]s:2379\nETCD_DISCOVERY_ENDPOINTS=http://%[2]s:2379\nETCD_DISCOVERY_TOKEN=%[3]s\nETCD_INITIAL_CLUSTER_STATE=new\n",
		n.IP, b.Control.IP, b.discToken())
	if err := n.WriteFile("etc/etcd/etcd.conf", []byte(conf), 0o640); err != nil {
		return err
	}
	if _, err := n.Exec(ctx, "systemctl", "start", "--no-block", "etcd"); err != nil {
		return err
	}
	var status string
	if err := Eventually(ctx, 60*time.Second, func() error {
		var active string
		active, _, _, status = unitState(ctx, n, "etcd.service")
		if active != "failed" {
			return fmt.Errorf("etcd on %s is %s: %s", n.Name, active, status)
		}
		return nil
	}); err != nil {
		return err
	}
	if err := expect(status, "refused by the discovery service: the cluster is full: all 3 places of this cluster's token", "STATUS"); err != nil {
		return err
	}
	if strings.Contains(status, b.discToken()) {
		return fmt.Errorf("STATUS names the token: %s", status)
	}
	b.R.Logf("%s STATUS: %s", n.Name, status)
	// Not restarted: 78 is in RestartPreventExitStatus. It stays so past
	// the unit's RestartSec, when a restart would have come.
	if err := Always(ctx, 8*time.Second, func() error {
		out, _ := n.Exec(ctx, "systemctl", "show", "etcd", "--property=ExecMainStatus,NRestarts,ActiveState")
		if !strings.Contains(out, "ExecMainStatus=78") || !strings.Contains(out, "NRestarts=0") || !strings.Contains(out, "ActiveState=failed") {
			return fmt.Errorf("want exit 78, never restarted, failed: %s", out)
		}
		return nil
	}); err != nil {
		return err
	}
	_, err := b.ctl("etcd-installer", "health", discInv)
	return err
}
