package render

import (
	"bytes"
	"net"
	"strings"

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

func renderCluster(inv *inventory.Inventory) ([]ClusterFile, error) {
	var out []ClusterFile
	add := func(name, tmplName string, mode uint32, data any) error {
		var buf bytes.Buffer
		if err := tmpl.ExecuteTemplate(&buf, tmplName, data); err != nil {
			return err
		}
		out = append(out, ClusterFile{Name: name, Mode: fsMode(mode), Data: buf.Bytes()})
		return nil
	}
	base := map[string]any{"Cluster": inv.Cluster.Name, "Source": comment(inv.Source)}
	with := func(extra map[string]any) map[string]any {
		m := map[string]any{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}

	// Prometheus: the metrics listener when there is one (plain HTTP),
	// else /metrics on the client URLs.
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
	if err := add(PrometheusFile, "prometheus.yml.tmpl", 0o644, with(map[string]any{
		"Job": "etcd-" + inv.Cluster.Name, "Scheme": scheme, "Targets": targets, "TLS": tlsFiles,
	})); err != nil {
		return nil, err
	}

	if inv.Loopback() {
		type proc struct{ Name, Command string }
		var members, proxies []proc
		for i := range inv.Members {
			m := &inv.Members[i]
			vars, err := MemberEnv(inv, m, MemberOptions{})
			if err != nil {
				return nil, err
			}
			if inv.Cluster.DataDir == layout.DataDir {
				// On a laptop, data stays where goreman runs: etcd's
				// default NAME.etcd, as in etcd's own Procfile.
				vars = dropVar(vars, "ETCD_DATA_DIR")
			}
			members = append(members, proc{m.Name, "etcd " + strings.Join(shellFlags(vars), " ")})
		}
		for i := range inv.Proxies {
			p := &inv.Proxies[i]
			var quoted []string
			for _, f := range proxyFlags(inv, p, p.Name+".proxy") {
				quoted = append(quoted, shellQuote(f))
			}
			proxies = append(proxies, proc{p.Name, "etcd grpc-proxy start " + strings.Join(quoted, " ")})
		}
		if err := add(ProcfileFile, "Procfile.tmpl", 0o644, with(map[string]any{"Members": members, "Proxies": proxies})); err != nil {
			return nil, err
		}
	}

	switch inv.Cluster.Bootstrap {
	case inventory.BootstrapDNSSRV:
		d := inv.Cluster.DNSSRV
		suffix := ""
		if d.ServiceName != "" {
			suffix = "-" + d.ServiceName
		}
		server, client := "_etcd-server", "_etcd-client"
		if inv.TLSEnabled() {
			server, client = "_etcd-server-ssl", "_etcd-client-ssl"
		}
		type srv struct {
			Service, Target string
			Port            int
		}
		type host struct{ Name, IP, Type string }
		var srvs []srv
		var hosts []host
		for _, m := range inv.Members {
			srvs = append(srvs, srv{server + suffix + "._tcp." + d.Domain, m.Address, m.PeerPort})
		}
		for _, m := range inv.Members {
			srvs = append(srvs, srv{client + suffix + "._tcp." + d.Domain, m.Address, m.ClientPort})
		}
		for _, m := range inv.Members {
			h := host{Name: m.Address, IP: m.IP, Type: "A"}
			if ip := net.ParseIP(m.IP); ip != nil && ip.To4() == nil {
				h.Type = "AAAA"
			}
			hosts = append(hosts, h)
		}
		data := with(map[string]any{"SRV": srvs, "Hosts": hosts, "Domain": d.Domain})
		if err := add(DnsmasqFile, "dnsmasq.conf.tmpl", 0o644, data); err != nil {
			return nil, err
		}
		if err := add(BindZoneFile, "bind.zone.tmpl", 0o644, data); err != nil {
			return nil, err
		}
	case inventory.BootstrapDiscovery:
		d := inv.Cluster.Discovery
		if err := add(DiscoveryFile, "discovery.sh.tmpl", 0o755, with(map[string]any{
			"Endpoints": strings.Join(d.Endpoints, ","), "Token": d.Token, "Size": len(inv.Members),
		})); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// shellFlags turns ETCD_* variables into the equivalent flags.
func shellFlags(vars []Var) []string {
	var out []string
	for _, v := range vars {
		name := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(v.Key, "ETCD_"), "_", "-"))
		out = append(out, shellQuote("--"+name+"="+v.Value))
	}
	return out
}

// shellQuote quotes s for sh when it holds anything but safe characters.
func shellQuote(s string) string {
	safe := true
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_.,:/=@+%[]", c)) {
			safe = false
			break
		}
	}
	if safe && s != "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
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
