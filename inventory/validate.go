package inventory

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	humanize "github.com/dustin/go-humanize"

	"github.com/etcd-appliance/appliance/internal/envfile"
	"github.com/etcd-appliance/appliance/layout"
	"github.com/etcd-appliance/appliance/node"
)

// Limits etcd documents.
const (
	MaxMembers        = 7
	MaxElectionMs     = 50000
	MaxQuotaBytes     = 8 << 30 // etcd's suggested maximum backend size
	electionPerTick   = 5
	faultToleranceFix = "etcd needs a majority (quorum) of members to work:\n" +
		"members  quorum  tolerates\n" +
		"   1        1        0\n" +
		"   2        2        0\n" +
		"   3        2        1\n" +
		"   4        3        1\n" +
		"   5        3        2\n" +
		"   6        4        2\n" +
		"   7        4        3\n" +
		"an even count adds a member that must be up without tolerating one more failure: use 1, 3, 5 or 7"
)

var (
	nameRE    = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$`)
	tokenRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	labelRE   = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
	pathRE    = regexp.MustCompile(`^/[A-Za-z0-9._/+@-]*$`)
	sshRE     = regexp.MustCompile(`^([A-Za-z0-9._-]+@)?([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$`)
	logLevels = []string{"debug", "info", "warn", "error", "panic", "fatal"}
	nameFix   = "use 1 to 63 letters, digits, '.', '_' or '-', starting and ending with a letter or digit"
)

// managedOptions are etcd flags the inventory sets itself; [cluster.options]
// may not override them.
var managedOptions = map[string]string{
	"name": "member[].name", "data-dir": "cluster.data_dir", "wal-dir": "cluster.data_dir",
	"listen-peer-urls": "member[].ip and peer_port", "listen-client-urls": "member[].ip and client_port",
	"listen-client-http-urls": "member[].ip and client_port", "listen-metrics-urls": "metrics_port",
	"initial-advertise-peer-urls": "member[].address", "advertise-client-urls": "member[].address",
	"initial-cluster": "the [[member]] tables", "initial-cluster-state": "etcd-installer member add",
	"initial-cluster-token": "cluster.token", "discovery-srv": "cluster.dns_srv.domain",
	"discovery-srv-name": "cluster.dns_srv.service_name", "discovery-endpoints": "cluster.discovery.endpoints",
	"discovery-token": "cluster.discovery.token", "heartbeat-interval": "cluster.heartbeat_interval_ms",
	"election-timeout": "cluster.election_timeout_ms", "snapshot-count": "cluster.snapshot_count",
	"quota-backend-bytes": "cluster.quota_backend", "log-level": "cluster.log_level",
	"auto-compaction-mode": "cluster.auto_compaction_mode", "auto-compaction-retention": "cluster.auto_compaction_retention",
	"cert-file": "[tls]", "key-file": "[tls]", "trusted-ca-file": "[tls]", "client-cert-auth": "[tls]",
	"peer-cert-file": "[tls]", "peer-key-file": "[tls]", "peer-trusted-ca-file": "[tls]", "peer-client-cert-auth": "[tls]",
	"peer-cert-allowed-cn": "[tls] (members' peer certificates share one common name)",
	"config-file":          "the inventory itself", "version": "", "start-timeout": "",
}

// Validate checks a defaulted inventory and returns every problem at once,
// sorted by line, each wrapping ErrInvalid.
func Validate(inv *Inventory) error {
	l := &errorList{inv: inv}
	v := validator{inv: inv, l: l, listeners: map[string]string{}}
	v.version()
	v.cluster()
	v.members()
	v.proxies()
	v.bootstrap()
	v.tls()
	v.backup()
	v.maintenance()
	return l.join()
}

type validator struct {
	inv       *Inventory
	l         *errorList
	listeners map[string]string // "host:port" -> TOML path that claimed it
}

func (v *validator) version() {
	switch v.inv.Version {
	case Version:
	case 0:
		v.l.add("version", "add `version = 1` as the first line", "the inventory has no version")
	default:
		v.l.add("version", "this etcd-installer reads version 1; use a matching etcd-installer", "unsupported version %d", v.inv.Version)
	}
}

func (v *validator) cluster() {
	c := v.inv.Cluster
	switch {
	case c.Name == "":
		v.l.add("cluster.name", "add name = \"...\" under [cluster]; it also names the cluster's initial token", "the cluster has no name")
	case !nameRE.MatchString(c.Name):
		v.l.add("cluster.name", nameFix, "%q is not a safe name", c.Name)
	}
	if c.Token != "" && !tokenRE.MatchString(c.Token) {
		v.l.add("cluster.token", "use up to 128 letters, digits, '.', '_' or '-'", "%q is not a safe token", c.Token)
	}
	switch c.Bootstrap {
	case BootstrapStatic, BootstrapDNSSRV, BootstrapDiscovery:
	default:
		v.l.add("cluster.bootstrap", `use "static", "dns-srv" or "discovery"`, "unknown bootstrap mode %q", c.Bootstrap)
	}
	v.port("cluster.client_port", c.ClientPort)
	v.port("cluster.peer_port", c.PeerPort)
	if c.MetricsPort != 0 {
		v.port("cluster.metrics_port", c.MetricsPort)
	}
	if c.ClientPort == c.PeerPort {
		v.l.add("cluster.peer_port", "give clients and peers different ports (2379 and 2380 by default)", "client_port and peer_port are both %d", c.ClientPort)
	}
	switch {
	case !path.IsAbs(c.DataDir) || !pathRE.MatchString(c.DataDir):
		v.l.add("cluster.data_dir", "use an absolute path of letters, digits and ._/+@- such as /var/lib/etcd", "%q is not a usable absolute path", c.DataDir)
	case path.Clean(c.DataDir) == "/" || strings.HasPrefix(path.Clean(c.DataDir)+"/", "/etc/") || strings.HasPrefix(path.Clean(c.DataDir)+"/", "/usr/"):
		v.l.add("cluster.data_dir", "use a directory on a data disk, such as /var/lib/etcd", "%q is not a place for data", c.DataDir)
	case sandboxed(c.DataDir) != "":
		v.l.add("cluster.data_dir", "use a directory on a data disk, such as /var/lib/etcd or /srv/etcd",
			"%q is %s", c.DataDir, sandboxed(c.DataDir))
	}
	if c.LogLevel != "" && !contains(logLevels, c.LogLevel) {
		v.l.add("cluster.log_level", "use one of "+strings.Join(logLevels, ", "), "unknown log level %q", c.LogLevel)
	}
	switch c.TLS {
	case TLSAuto, TLSOn, TLSOff:
	default:
		v.l.add("cluster.tls", `use "auto", "on" or "off"`, "unknown tls mode %q", c.TLS)
	}
	v.tuning()
	if c.Auth && c.RootPasswordFile == "" {
		v.l.add("cluster.root_password_file", "name a file holding the root password, such as /root/etcd-root-password (it is never copied to hosts or logged)",
			"auth = true needs the root user's password")
	}
	if c.RootPasswordFile != "" && !path.IsAbs(c.RootPasswordFile) {
		v.l.add("cluster.root_password_file", "use an absolute path", "%q is not an absolute path", c.RootPasswordFile)
	}
	v.options()
}

// Ranges of the tuning keys, each with its reason.
const (
	MinHeartbeatMs     = 10    // below, the leader floods its peers with heartbeats
	MaxHeartbeatMs     = 10000 // above, the election timeout (5x) passes etcd's 50 s limit
	MinSnapshotCount   = 100   // below, members snapshot all the time
	MaxSnapshotCount   = 10_000_000
	MinQuotaBytes      = 64 << 20 // below, the space alarm fires after a few thousand keys
	MaxRetentionPeriod = 365 * 24 * time.Hour
	MaxRetentionRevs   = 1 << 40
)

// tuning checks every number against a sane range before any arithmetic,
// so that nothing overflows and etcd starts with what validates.
func (v *validator) tuning() {
	c := v.inv.Cluster
	hb, el := c.HeartbeatIntervalMs, c.ElectionTimeoutMs
	if hb != 0 && (hb < MinHeartbeatMs || hb > MaxHeartbeatMs) {
		v.l.add("cluster.heartbeat_interval_ms", fmt.Sprintf("use %d to %d ms (etcd's default is %d): about the round trip between members", MinHeartbeatMs, MaxHeartbeatMs, etcdDefaults.TickMs),
			"%d ms is outside %d..%d", hb, MinHeartbeatMs, MaxHeartbeatMs)
		hb = -1
	}
	if el != 0 && (el < 1 || el > MaxElectionMs) {
		v.l.add("cluster.election_timeout_ms", fmt.Sprintf("use at most %d ms (etcd's default is %d)", MaxElectionMs, etcdDefaults.ElectionMs),
			"%d ms is outside 1..%d: etcd's maximum is 50 s", el, MaxElectionMs)
		el = -1
	}
	if hb >= 0 && el >= 0 {
		t := v.inv.EffectiveTuning()
		if t.ElectionMs < electionPerTick*t.HeartbeatMs {
			v.l.add(firstSet("cluster.election_timeout_ms", c.ElectionTimeoutMs, "cluster.heartbeat_interval_ms"),
				fmt.Sprintf("raise election_timeout_ms to at least %d or lower heartbeat_interval_ms", electionPerTick*t.HeartbeatMs),
				"election timeout %d ms is less than %d times the heartbeat interval %d ms (etcd refuses to start)", t.ElectionMs, electionPerTick, t.HeartbeatMs)
		}
	}
	if n := c.SnapshotCount; n != 0 && (n < MinSnapshotCount || n > MaxSnapshotCount) {
		v.l.add("cluster.snapshot_count", fmt.Sprintf("use %d to %d (etcd's default is %d): members keep that many entries in memory", MinSnapshotCount, MaxSnapshotCount, etcdDefaults.SnapshotCount),
			"%d is outside %d..%d", n, MinSnapshotCount, MaxSnapshotCount)
	}
	if c.QuotaBackend != "" {
		q, err := ParseQuota(c.QuotaBackend)
		switch {
		case err != nil:
			v.l.add("cluster.quota_backend", `write a size such as "2GiB" or "8GiB"`, "%v", err)
		case q < MinQuotaBytes || q > MaxQuotaBytes:
			v.l.add("cluster.quota_backend", `use 64MiB to 8GiB: less raises the space alarm after a few thousand keys, more is beyond etcd's suggested maximum`,
				"%q is outside 64MiB..8GiB", c.QuotaBackend)
		}
	}
	v.compaction()
}

// compaction checks auto_compaction_mode and auto_compaction_retention.
func (v *validator) compaction() {
	c := v.inv.Cluster
	if c.AutoCompactionMode != "" && c.AutoCompactionMode != "periodic" && c.AutoCompactionMode != "revision" {
		v.l.add("cluster.auto_compaction_mode", `use "periodic" or "revision"`, "unknown compaction mode %q", c.AutoCompactionMode)
		return
	}
	r := c.AutoCompactionRetention
	if r == "" {
		return
	}
	if c.AutoCompactionMode == "revision" {
		if n, err := strconv.ParseInt(r, 10, 64); err != nil || n < 0 || n > MaxRetentionRevs {
			v.l.add("cluster.auto_compaction_retention", `with mode "revision", write a number of revisions such as "1000" (0 turns compaction off)`, "%q is not a revision count from 0 to %d", r, int64(MaxRetentionRevs))
		}
		return
	}
	d, err := time.ParseDuration(r)
	if err != nil {
		// etcd reads a bare number as hours.
		var h int64
		if h, err = strconv.ParseInt(r, 10, 64); err == nil && h >= 0 && h <= int64(MaxRetentionPeriod/time.Hour) {
			d = time.Duration(h) * time.Hour
		} else if err == nil {
			d = -1
		}
	}
	if err != nil || d < 0 || d > MaxRetentionPeriod {
		v.l.add("cluster.auto_compaction_retention", `write a duration from "0" (off) to "8760h", such as "1h" or "30m"`, "%q is not a duration from 0 to a year", r)
	}
}

func firstSet(path string, value int, other string) string {
	if value != 0 {
		return path
	}
	return other
}

func (v *validator) options() {
	known := map[string]bool{}
	for _, f := range node.FlagNames() {
		known[f] = true
	}
	for _, name := range slices.Sorted(maps.Keys(v.inv.Cluster.Options)) {
		p := "cluster.options." + name
		value := v.inv.Cluster.Options[name]
		if repl, ok := node.Legacy(name); ok {
			v.l.add(p, repl, "%q is not an etcd 3.7 option", name)
			continue
		}
		if where, ok := managedOptions[name]; ok {
			fix := "remove it"
			if where != "" {
				fix = "set it through " + where + " instead"
			}
			v.l.add(p, fix, "%q is managed by the inventory", name)
			continue
		}
		if !known[name] {
			v.l.add(p, "see `etcd --help` for etcd 3.7's options (names without the leading dashes)", "%q is not an etcd option", name)
			continue
		}
		if _, err := envfile.Quote(value); err != nil || strings.ContainsAny(value, "\n\r") {
			v.l.add(p, "write the value on one line without control characters", "value of %q cannot go into an env file", name)
			continue
		}
		if err := node.CheckOption(name, value); err != nil {
			v.l.add(p, "write a value of the type `etcd --help` gives for --"+name, "%q is not a valid value of --%s: %v", value, name, err)
		}
	}
}

func (v *validator) members() {
	ms := v.inv.Members
	n := len(ms)
	switch {
	case n == 0:
		v.l.add("member", "add one [[member]] table per etcd host (name and address)", "the inventory has no members")
	case n > MaxMembers:
		v.l.add(fmt.Sprintf("member[%d]", MaxMembers), "use 3, 5 or 7 voting members; scale reads with [[proxy]] hosts instead\n"+faultToleranceFix,
			"%d members: etcd's guidance is at most 7 voting members (more slow every write)", n)
	case n%2 == 0:
		v.l.add(fmt.Sprintf("member[%d]", n-1), "add or remove one member\n"+faultToleranceFix,
			"%d members is an even count: it tolerates no more failures than %d", n, n-1)
	}
	allLoop := v.inv.Loopback()
	names := map[string]string{}
	for i, m := range ms {
		p := fmt.Sprintf("member[%d]", i)
		v.name(p+".name", m.Name, names)
		v.address(p+".address", m.Address)
		if ip := net.ParseIP(m.Address); ip != nil && ip.IsUnspecified() {
			v.l.add(p+".address", `write the address peers and clients use to reach this host; to listen on every interface, say so with ip = "0.0.0.0"`, "%s is a wildcard, not an address others can reach", m.Address)
		} else if n > 1 && !allLoop && isLoopback(m.Address) {
			v.l.add(p+".address", "write the host's address on the network; loopback is only for an inventory whose members all run on one machine",
				"%s is loopback: the other members (and clients told about it) cannot reach it", m.Address)
		}
		if m.IP != "" {
			ip := net.ParseIP(m.IP)
			switch {
			case ip == nil:
				v.l.add(p+".ip", `write an IPv4 or IPv6 address of this host (or "0.0.0.0" to listen on every interface)`, "%q is not an IP address", m.IP)
			case ip.IsUnspecified() && v.inv.Cluster.Bootstrap == BootstrapDNSSRV:
				v.l.add(p+".ip", "write the member's address: dns-srv records point at it", "%s is a wildcard", m.IP)
			}
		}
		v.port(p+".client_port", m.ClientPort)
		v.port(p+".peer_port", m.PeerPort)
		if m.MetricsPort != 0 {
			v.port(p+".metrics_port", m.MetricsPort)
		}
		if m.ClientPort == m.PeerPort {
			v.l.add(p+".peer_port", "give clients and peers different ports", "client and peer port are both %d", m.ClientPort)
		}
		host := m.listenKey()
		v.listener(host, m.ClientPort, p+".client_port")
		v.listener(host, m.PeerPort, p+".peer_port")
		if m.MetricsPort != 0 {
			v.listener(host, m.MetricsPort, p+".metrics_port")
		}
		v.ssh(p+".ssh", m.SSH)
	}
}

// listenKey identifies the address a member's ports are bound on, so two
// members on one host cannot claim the same port.
func (m Member) listenKey() string {
	if m.IP != "" {
		return m.IP
	}
	return m.Address
}

func (v *validator) proxies() {
	names := map[string]string{}
	for i, m := range v.inv.Members {
		names[m.Name] = fmt.Sprintf("member[%d].name", i)
	}
	for i, p := range v.inv.Proxies {
		pp := fmt.Sprintf("proxy[%d]", i)
		v.name(pp+".name", p.Name, names)
		v.address(pp+".address", p.Address)
		host, port, err := net.SplitHostPort(p.Listen)
		pn, perr := strconv.Atoi(port)
		if err != nil || perr != nil || pn < 1 || pn > 65535 || (net.ParseIP(host) == nil && !isDNSName(host)) {
			v.l.add(pp+".listen", `write HOST:port, such as "10.0.0.20:23790", "proxy0.example.com:23790" or "0.0.0.0:23790" (every interface)`, "%q is not an address and port to listen on", p.Listen)
		} else {
			key := host
			if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
				key = p.Address
			}
			v.listener(key, pn, pp+".listen")
		}
		if len(v.inv.Members) > 0 {
			for j, e := range p.Endpoints {
				if _, ok := v.inv.Member(e); !ok {
					v.l.add(fmt.Sprintf("%s.endpoints[%d]", pp, j), "list member names from the [[member]] tables, or leave endpoints out for all of them",
						"%q is not a member of this inventory", e)
				}
			}
		}
		v.ssh(pp+".ssh", p.SSH)
	}
}

func (v *validator) bootstrap() {
	c := v.inv.Cluster
	d, dns := c.Discovery, c.DNSSRV
	hasDNS := dns != (DNSSRV{})
	hasDisc := len(d.Endpoints) > 0 || d.Token != ""
	switch c.Bootstrap {
	case BootstrapStatic:
		if hasDNS {
			v.l.add("cluster.dns_srv", `set bootstrap = "dns-srv" to use it, or remove [cluster.dns_srv]`, "DNS SRV settings with static bootstrap")
		}
		if hasDisc {
			v.l.add("cluster.discovery", `set bootstrap = "discovery" to use it, or remove [cluster.discovery]`, "discovery settings with static bootstrap")
		}
	case BootstrapDNSSRV:
		if hasDisc {
			v.l.add("cluster.discovery", "bootstrap modes are exclusive: remove [cluster.discovery]", "discovery settings with dns-srv bootstrap")
		}
		if dns.Domain == "" {
			v.l.add("cluster.dns_srv.domain", "add domain = \"example.com\" under [cluster.dns_srv]: etcd looks up _etcd-server._tcp.<domain>", "dns-srv bootstrap needs a domain")
		} else if !isDNSName(dns.Domain) {
			v.l.add("cluster.dns_srv.domain", "write a DNS domain such as example.com", "%q is not a DNS domain", dns.Domain)
		}
		if dns.ServiceName != "" && !labelRE.MatchString(dns.ServiceName) {
			v.l.add("cluster.dns_srv.service_name", "use letters, digits and '-'", "%q is not a usable SRV service suffix", dns.ServiceName)
		}
		for i, m := range v.inv.Members {
			if net.ParseIP(m.Address) != nil {
				v.l.add(fmt.Sprintf("member[%d].address", i), "SRV records point at names: write the member's DNS name, and its IP as ip = \"...\"",
					"dns-srv bootstrap needs DNS names, %s is an IP", m.Address)
			}
		}
	case BootstrapDiscovery:
		if hasDNS {
			v.l.add("cluster.dns_srv", "bootstrap modes are exclusive: remove [cluster.dns_srv]", "DNS SRV settings with discovery bootstrap")
		}
		if len(d.Endpoints) == 0 {
			v.l.add("cluster.discovery.endpoints", `add endpoints = ["http://discovery-etcd:2379"] under [cluster.discovery]: an etcd cluster that serves as discovery service`, "discovery bootstrap needs endpoints")
		}
		for i, e := range d.Endpoints {
			if err := endpointURL(e); err != nil {
				v.l.add(fmt.Sprintf("cluster.discovery.endpoints[%d]", i), `write a client URL such as "https://10.0.0.5:2379" or "http://discovery.example.com:2379": scheme, host, port, nothing else`,
					"%q is not a client URL: %v", e, err)
			}
		}
		if d.Token == "" {
			v.l.add("cluster.discovery.token", "add token = \"...\" under [cluster.discovery]: a name unique to this cluster on the discovery service", "discovery bootstrap needs a token")
		} else if !tokenRE.MatchString(d.Token) {
			v.l.add("cluster.discovery.token", "use up to 128 letters, digits, '.', '_' or '-'", "%q is not a safe token", d.Token)
		}
	}
}

func (v *validator) tls() {
	if !v.inv.TLSEnabled() {
		return
	}
	t := v.inv.TLS
	// apply and package write these files as root: a path outside the
	// appliance's directory could overwrite a system file (/etc/shadow),
	// one of its own files, or another certificate.
	reserved := map[string]bool{layout.EtcdConf: true, layout.EtcdctlEnv: true, layout.ProxyConf: true, layout.NodeConf: true}
	seen := map[string]string{}
	for _, f := range []struct{ key, p string }{
		{"ca_file", t.CAFile}, {"cert_file", t.CertFile}, {"key_file", t.KeyFile},
		{"peer_cert_file", t.PeerCertFile}, {"peer_key_file", t.PeerKeyFile},
		{"client_cert_file", t.ClientCertFile}, {"client_key_file", t.ClientKeyFile},
	} {
		key := "tls." + f.key
		switch {
		case !path.IsAbs(f.p) || !pathRE.MatchString(f.p) || path.Clean(f.p) != f.p:
			v.l.add(key, "write an absolute path under "+layout.ConfDir+"/ on the hosts, such as "+layout.PKIDir+"/ca.crt", "%q is not a usable absolute path", f.p)
		case !strings.HasPrefix(f.p, layout.ConfDir+"/"):
			v.l.add(key, "keep certificates and keys under "+layout.ConfDir+"/ (the default is "+layout.PKIDir+"/): apply and package write them as root",
				"%q is outside %s: writing it could overwrite a system file", f.p, layout.ConfDir)
		case reserved[f.p]:
			v.l.add(key, "choose another file: "+f.p+" is written by apply itself", "%q is one of the appliance's own files", f.p)
		case seen[f.p] != "":
			v.l.add(key, "give each certificate and key a file of its own", "%q is also %s", f.p, seen[f.p])
		default:
			seen[f.p] = key
		}
	}
}

// sandboxed says why etcd.service cannot keep data under dir: its
// sandbox gives the unit a private /tmp and /var/tmp (PrivateTmp=, data
// gone at every restart) and no /home, /root or /run/user (ProtectHome=);
// /run is a tmpfs, emptied at boot. "" when it can.
func sandboxed(dir string) string {
	d := path.Clean(dir) + "/"
	for _, p := range []struct{ prefix, why string }{
		{"/tmp/", "private to the unit (PrivateTmp=): its data would be gone at every restart"},
		{"/var/tmp/", "private to the unit (PrivateTmp=): its data would be gone at every restart"},
		{"/home/", "hidden from the unit (ProtectHome=): etcd could not reach it"},
		{"/root/", "hidden from the unit (ProtectHome=): etcd could not reach it"},
		{"/run/", "a tmpfs: its data would be gone at every boot"},
		{"/dev/", "not a place for data"},
		{"/proc/", "not a place for data"},
		{"/sys/", "not a place for data"},
	} {
		if strings.HasPrefix(d, p.prefix) {
			return p.why
		}
	}
	return ""
}

// reservedNames would collide with the certificate directory's own files
// (DIR/ca.crt, DIR/ca.key) as DIR/NAME/.
var reservedNames = map[string]bool{"ca.crt": true, "ca.key": true}

func (v *validator) name(p, name string, seen map[string]string) {
	switch {
	case name == "":
		v.l.add(p, "add name = \"...\": it names the member in etcd, in files and on the command line", "missing name")
		return
	case !nameRE.MatchString(name):
		v.l.add(p, nameFix, "%q is not a safe name", name)
		return
	case reservedNames[name] || strings.HasSuffix(name, ".key") || strings.HasSuffix(name, ".crt"):
		v.l.add(p, "choose a name that does not end in .crt or .key: each host's certificates go to certs/NAME/, beside the CA's files",
			"%q would collide with the certificate directory's files", name)
		return
	}
	if other, dup := seen[name]; dup {
		v.l.add(p, "give every member and proxy its own name", "%q is also %s", name, other)
		return
	}
	seen[name] = p
}

func (v *validator) address(p, a string) {
	if a == "" {
		v.l.add(p, "add address = \"...\": the IP or DNS name others use to reach this host", "missing address")
		return
	}
	if net.ParseIP(a) == nil && !isDNSName(a) {
		v.l.add(p, "write an IPv4 address, an IPv6 address (without brackets) or a DNS name", "%q is not an IP address or DNS name", a)
	}
}

func (v *validator) port(p string, n int) {
	if n < 1 || n > 65535 {
		v.l.add(p, "use a TCP port from 1 to 65535", "%d is not a port", n)
	}
}

// listener records that host listens on port, and reports a listener
// already there. Addresses are compared as what they are, not as text
// (::1, 0::1 and 0:0::1 are one address; localhost is 127.0.0.1 and ::1).
// In a loopback inventory every member runs on this one machine, where a
// wildcard takes the port on every address.
func (v *validator) listener(host string, port int, p string) {
	for _, addr := range listenAddrs(host) {
		key := net.JoinHostPort(addr, strconv.Itoa(port))
		other, dup := v.listeners[key]
		if !dup && v.inv.Loopback() {
			for _, k := range slices.Sorted(maps.Keys(v.listeners)) {
				ka, kp, _ := net.SplitHostPort(k)
				if kp == strconv.Itoa(port) && (ka == "*" || addr == "*") {
					other, dup = v.listeners[k], true
					break
				}
			}
		}
		if dup {
			v.l.add(p, "give each listener on a host its own port", "%s is also used by %s", net.JoinHostPort(host, strconv.Itoa(port)), other)
			return
		}
	}
	for _, addr := range listenAddrs(host) {
		v.listeners[net.JoinHostPort(addr, strconv.Itoa(port))] = p
	}
}

// listenAddrs are the addresses a listener on host takes: an IP in its
// canonical form, both loopback addresses for localhost, "*" for a
// wildcard, else the name in lower case.
func listenAddrs(host string) []string {
	if ip := net.ParseIP(host); ip != nil {
		if ip.IsUnspecified() {
			return []string{"*"}
		}
		return []string{ip.String()}
	}
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return []string{"127.0.0.1", "::1"}
	}
	return []string{h}
}

func (v *validator) ssh(p, target string) {
	if target != "" && !sshRE.MatchString(target) {
		v.l.add(p, `write [user@]host[:port], such as "root@10.0.0.10" or "admin@etcd0.example.com:2222"`, "%q is not an SSH target", target)
	}
}

// endpointURL checks that s is a client URL and nothing else: http or
// https, an IP or DNS name, an optional port. It goes into env files and
// the discovery script, so no other character may pass.
func endpointURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return errors.New("it does not parse")
	case u.Scheme != "http" && u.Scheme != "https":
		return errors.New("the scheme must be http or https")
	case u.Opaque != "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(s, "?") || strings.HasSuffix(s, "#"):
		return errors.New("only scheme, host and port are allowed")
	}
	host, port := u.Hostname(), u.Port()
	if net.ParseIP(host) == nil && !isDNSName(host) {
		return fmt.Errorf("%q is not an IP address or DNS name", host)
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%q is not a port", port)
		}
	}
	if want := u.Scheme + "://" + u.Host; s != want && s != want+"/" {
		return errors.New("only scheme, host and port are allowed")
	}
	return nil
}

func isDNSName(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if !labelRE.MatchString(label) {
			return false
		}
	}
	// An all-numeric name is a malformed IP, not a host name.
	return strings.Trim(s, "0123456789.") != ""
}

// ParseQuota reads a quota_backend size such as "8GiB" in bytes.
func ParseQuota(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	b, err := humanize.ParseBytes(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size", s)
	}
	if b > 1<<62 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return int64(b), nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// ScheduleShorthands are systemd's calendar shorthands (systemd.time(7))
// and their periods: a full calendar expression would need systemd's own
// parser to know its period.
var ScheduleShorthands = map[string]time.Duration{
	"minutely": time.Minute, "hourly": time.Hour, "daily": 24 * time.Hour, "weekly": 7 * 24 * time.Hour,
	"monthly": 31 * 24 * time.Hour, "quarterly": 92 * 24 * time.Hour, "semiannually": 183 * 24 * time.Hour,
	"yearly": 366 * 24 * time.Hour, "annually": 366 * 24 * time.Hour,
}

// ParseAge reads a duration as Go writes them ("26h", "90m"), or whole
// days ("8d").
func ParseAge(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%q: not a number of days", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// Warnings returns what is allowed but risky, each keyed like an error.
func Warnings(inv *Inventory) []string {
	var w []string
	at := func(p string) string {
		if l := inv.pos.line(p); l > 0 {
			return fmt.Sprintf("%s:%d: %s", inv.Source, l, p)
		}
		return inv.Source + ": " + p
	}
	if !inv.TLSEnabled() && !inv.Loopback() {
		w = append(w, at("cluster.tls")+`: TLS is off: clients and peers talk plain http, so anyone on the network `+
			`can read and write every key (Kubernetes secrets included) and join as a peer; remove tls = "off" `+
			`and run `+"`etcd-installer certs`"+` to use TLS with client certificates`)
	}
	if inv.Cluster.Auth && !inv.TLSEnabled() && !inv.Loopback() {
		w = append(w, at("cluster.auth")+": auth without TLS sends passwords and tokens in clear text, and the hosts have no "+
			"client certificate to authenticate with: a package upgrade cannot restart their members safely (it leaves them running and says so)")
	}
	if b := inv.Backup; b.Scheduled() && b.AlertAfter == "" {
		if _, ok := ScheduleShorthands[strings.ToLower(strings.TrimSpace(b.Schedule))]; !ok {
			w = append(w, at("backup.schedule")+fmt.Sprintf(": the backup alert (EtcdBackupTooOld) cannot tell the period of %q and assumes daily (it fires after 48h); "+
				"set alert_after under [backup] to twice your schedule's period", b.Schedule))
		}
	}
	for i, m := range inv.Members {
		if ip := net.ParseIP(m.IP); ip != nil && ip.IsUnspecified() {
			w = append(w, at(fmt.Sprintf("member[%d].ip", i))+fmt.Sprintf(": %s listens on every interface of its host (%s), as the inventory asks", m.Name, m.IP))
		}
	}
	for i, p := range inv.Proxies {
		if host, _, err := net.SplitHostPort(p.Listen); err == nil {
			if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
				w = append(w, at(fmt.Sprintf("proxy[%d].listen", i))+fmt.Sprintf(": %s listens on every interface of its host (%s), as the inventory asks", p.Name, p.Listen))
			}
		}
	}
	return w
}

// calendar says whether s could be a systemd calendar expression (systemd
// itself judges it when the timer starts; apply checks that it did).
func calendar(s string) bool {
	return strings.TrimSpace(s) != "" && len(s) <= 200 && !strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f || r == '\\' || r == '%' })
}

const calendarFix = `use a systemd calendar expression such as "hourly", "daily" or "*-*-* 00/4:00:00" (systemd-analyze calendar checks one)`

// schedule checks a scheduled section's schedule (an unscheduled one
// must hold no other settings, which would never take effect) and that its
// hosts can authenticate: a client certificate, so TLS when auth is on. It
// reports whether the section is scheduled.
func (v *validator) schedule(section, schedule string, settings bool, never, whose, needs, to string) bool {
	if schedule == "" {
		if settings {
			v.l.add(section+".schedule", `add schedule = "hourly" (or any systemd calendar expression) under [`+section+`]`,
				"[%s] has settings but no schedule, %s", section, never)
		}
		return false
	}
	if !calendar(schedule) {
		v.l.add(section+".schedule", calendarFix, "%q is not a calendar expression systemd would read", schedule)
	}
	if v.inv.Cluster.Auth && !v.inv.TLSEnabled() {
		v.l.add(section+".schedule", "use TLS (remove tls = \"off\"): each member's host authenticates "+whose+" with its client certificate",
			"%s TLS when auth is on: without a client certificate the host cannot authenticate to %s", needs, to)
	}
	return true
}

func (v *validator) maintenance() {
	m := v.inv.Maintenance
	if !v.schedule("maintenance", m.Schedule, m.DefragFreePercent != 0 || m.DefragMinFree != "",
		"so the maintenance would never run", "its maintenance", "scheduled maintenance needs", "defragment") {
		return
	}
	if m.DefragFreePercent < 10 || m.DefragFreePercent > 95 {
		v.l.add("maintenance.defrag_free_percent", "use 10..95 (50: defragment a backend that is half free pages)",
			"defrag_free_percent is %d", m.DefragFreePercent)
	}
	if b, err := ParseQuota(m.DefragMinFree); err != nil || b < 1<<20 {
		v.l.add("maintenance.defrag_min_free", `use a size of at least 1MiB such as "100MiB"`, "%q is not a size of at least 1MiB", m.DefragMinFree)
	}
}

func (v *validator) backup() {
	b := v.inv.Backup
	if !v.schedule("backup", b.Schedule, b.Dir != "" || b.KeepLast != 0 || b.KeepDaily != 0 || b.CopyTo != "" || b.CopyDir != "" || b.AlertAfter != "",
		"so no backup would ever be taken", "its backups", "scheduled backups need", "take a snapshot") {
		return
	}
	switch d := path.Clean(b.Dir); {
	case b.Dir != d:
		v.l.add("backup.dir", fmt.Sprintf("write it as %q", d), "%q is not a clean path", b.Dir)
	case !path.IsAbs(b.Dir) || !pathRE.MatchString(b.Dir):
		v.l.add("backup.dir", "use an absolute path of letters, digits and ._/+@- such as "+layout.BackupDir, "%q is not a usable absolute path", b.Dir)
	case d == "/" || strings.HasPrefix(d+"/", "/etc/") || strings.HasPrefix(d+"/", "/usr/") || sandboxed(d) != "":
		v.l.add("backup.dir", "use a directory on a data disk, such as "+layout.BackupDir, "%q is not a place for backups", b.Dir)
	case d == path.Clean(v.inv.Cluster.DataDir) || strings.HasPrefix(d+"/", path.Clean(v.inv.Cluster.DataDir)+"/"):
		v.l.add("backup.dir", "keep backups outside cluster.data_dir ("+v.inv.Cluster.DataDir+"), ideally on another disk", "%q is inside the data dir", b.Dir)
	}
	switch {
	case b.CopyTo == "" && b.CopyDir != "":
		v.l.add("backup.copy_to", `add copy_to = "user@host" (reached over SSH from the members) or remove copy_dir`, "copy_dir is set but copy_to is not")
	case b.CopyTo != "":
		v.ssh("backup.copy_to", b.CopyTo)
		if d := path.Clean(b.CopyDir); b.CopyDir == "" || b.CopyDir != d || !path.IsAbs(d) || !pathRE.MatchString(d) || d == "/" {
			v.l.add("backup.copy_dir", `use a clean absolute path of letters, digits and ._/+@- on the copy host, such as "/srv/etcd-backup/`+v.inv.Cluster.Name+`"`,
				"%q is not a usable directory for the copies", b.CopyDir)
		}
	}
	if b.KeepLast < 1 {
		v.l.add("backup.keep_last", "keep at least 1 backup", "keep_last is %d", b.KeepLast)
	}
	if b.AlertAfter != "" {
		if d, err := ParseAge(b.AlertAfter); err != nil || d < time.Minute {
			v.l.add("backup.alert_after", `write a duration of a minute or more, such as "26h" or "8d" (twice the schedule's period)`, "%q is not a duration", b.AlertAfter)
		}
	}
	if b.KeepDaily < 0 {
		v.l.add("backup.keep_daily", "use 0 or more days", "keep_daily is %d", b.KeepDaily)
	}
}
