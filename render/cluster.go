package render

import (
	"bytes"
	"cmp"
	"maps"
	"net"
	"strings"

	"github.com/etcd-appliance/appliance/internal/discovery"
	"github.com/etcd-appliance/appliance/internal/shquote"

	"github.com/etcd-appliance/appliance/inventory"
	"github.com/etcd-appliance/appliance/layout"
)

// Names of cluster-wide artefacts in a Rendering.
const (
	PrometheusFile = "prometheus.yml"
	ProcfileFile   = "Procfile"
	DnsmasqFile    = "dnsmasq.conf"
	BindZoneFile   = "bind.zone"
	DiscoveryFile  = "discovery.sh"
)

// clusterFiles collects cluster-wide artefacts, each rendered from a
// template with the cluster's name and source added to its data.
type clusterFiles struct {
	inv *inventory.Inventory
	out []ClusterFile
	// rules is the rule file prometheus.yml names (default AlertsFileName).
	rules string
}

func (c *clusterFiles) add(name, tmplName string, mode uint32, data map[string]any) error {
	// No file name in them: rendered bytes depend on the inventory's
	// content only.
	m := map[string]any{"Cluster": comment(c.inv.Cluster.Name)}
	maps.Copy(m, data)
	var buf bytes.Buffer
	if err := tmpl.ExecuteTemplate(&buf, tmplName, m); err != nil {
		return err
	}
	c.out = append(c.out, ClusterFile{Name: name, Mode: fsMode(mode), Data: buf.Bytes()})
	return nil
}

func renderCluster(inv *inventory.Inventory) ([]ClusterFile, error) {
	c := &clusterFiles{inv: inv}
	if err := c.prometheus(); err != nil {
		return nil, err
	}
	if err := c.alerts(); err != nil {
		return nil, err
	}
	if err := c.dashboard(); err != nil {
		return nil, err
	}
	if inv.Loopback() {
		if err := c.procfile(); err != nil {
			return nil, err
		}
	}
	switch inv.Cluster.Bootstrap {
	case inventory.BootstrapDNSSRV:
		if err := c.dnsRecords(); err != nil {
			return nil, err
		}
	case inventory.BootstrapDiscovery:
		d := inv.Cluster.Discovery
		if err := c.add(DiscoveryFile, "discovery.sh.tmpl", 0o755, map[string]any{
			"Endpoints": strings.Join(d.Endpoints, ","), "Key": discovery.SizeKey(d.Token), "Size": len(inv.Members),
		}); err != nil {
			return nil, err
		}
	}
	return c.out, nil
}

// PrometheusConfig is the cluster's scrape configuration naming rules as
// its rule file (AlertsFileName beside it, in render's output; the monitoring
// package names where it installs them).
func PrometheusConfig(inv *inventory.Inventory, rules string) ([]byte, error) {
	c := &clusterFiles{inv: inv, rules: rules}
	if err := c.prometheus(); err != nil {
		return nil, err
	}
	return c.out[0].Data, nil
}

// prometheus scrapes the metrics listener when there is one (plain HTTP),
// else /metrics on the client URLs.
func (c *clusterFiles) prometheus() error {
	inv := c.inv
	var targets []string
	scheme := inv.Scheme()
	metrics := false
	for _, m := range inv.Members {
		if m.MetricsPort != 0 {
			metrics = true
			targets = append(targets, inventory.HostPort(m.Address, m.MetricsPort))
		} else {
			targets = append(targets, inventory.HostPort(m.Address, m.ClientPort))
		}
	}
	var tlsFiles any
	if metrics {
		scheme = "http"
	} else if inv.TLSEnabled() {
		tlsFiles = inv.TLS
	}
	return c.add(PrometheusFile, "prometheus.yml.tmpl", 0o644, map[string]any{
		"Job": "etcd-" + inv.Cluster.Name, "Scheme": scheme, "Targets": targets, "TLS": tlsFiles, "Alerts": cmp.Or(c.rules, AlertsFileName(inv.Cluster.Name)),
	})
}

// procfile runs a loopback inventory's members and proxies with goreman.
func (c *clusterFiles) procfile() error {
	inv := c.inv
	type proc struct{ Name, Command string }
	var members, proxies []proc
	for i := range inv.Members {
		m := &inv.Members[i]
		vars, err := MemberEnv(inv, m, MemberOptions{})
		if err != nil {
			return err
		}
		if inv.Cluster.DataDir == layout.DataDir {
			// On a laptop, data stays where goreman runs: etcd's default
			// NAME.etcd, as in etcd's own Procfile.
			vars = dropVar(vars, "ETCD_DATA_DIR")
		}
		members = append(members, proc{m.Name, "etcd " + strings.Join(shellFlags(vars), " ")})
	}
	for i := range inv.Proxies {
		p := &inv.Proxies[i]
		var quoted []string
		for _, f := range proxyFlags(inv, p, p.Name+".proxy") {
			quoted = append(quoted, shquote.Quote(f))
		}
		proxies = append(proxies, proc{p.Name, "etcd grpc-proxy start " + strings.Join(quoted, " ")})
	}
	return c.add(ProcfileFile, "Procfile.tmpl", 0o644, map[string]any{"Members": members, "Proxies": proxies})
}

// dnsRecords are the SRV and address records of dns-srv bootstrap, for
// dnsmasq and for a BIND zone.
func (c *clusterFiles) dnsRecords() error {
	inv := c.inv
	d := inv.Cluster.DNSSRV
	server, client := inv.SRVNames()
	type srv struct {
		Service, Target string
		Port            int
	}
	type host struct{ Name, IP, Type string }
	var srvs []srv
	var hosts []host
	for _, m := range inv.Members {
		srvs = append(srvs, srv{server, m.Address, m.PeerPort})
	}
	for _, m := range inv.Members {
		srvs = append(srvs, srv{client, m.Address, m.ClientPort})
	}
	for _, m := range inv.Members {
		h := host{Name: m.Address, IP: m.IP, Type: "A"}
		if ip := net.ParseIP(m.IP); ip != nil && ip.To4() == nil {
			h.Type = "AAAA"
		}
		hosts = append(hosts, h)
	}
	data := map[string]any{"SRV": srvs, "Hosts": hosts, "Domain": d.Domain}
	if err := c.add(DnsmasqFile, "dnsmasq.conf.tmpl", 0o644, data); err != nil {
		return err
	}
	return c.add(BindZoneFile, "bind.zone.tmpl", 0o644, data)
}

// shellFlags turns ETCD_* variables into the equivalent flags.
func shellFlags(vars []Var) []string {
	var out []string
	for _, v := range vars {
		name := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(v.Key, "ETCD_"), "_", "-"))
		out = append(out, shquote.Quote("--"+name+"="+v.Value))
	}
	return out
}

func dropVar(vars []Var, key string) []Var {
	var out []Var
	for _, v := range vars {
		if v.Key != key {
			out = append(out, v)
		}
	}
	return out
}
