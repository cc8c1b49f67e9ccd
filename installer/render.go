package installer

import (
	"bytes"
	"fmt"
	"io/fs"
	"net"
	"path"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/etcd-appliance/appliance/internal/envfile"
	"github.com/etcd-appliance/appliance/templates"
	"github.com/etcd-appliance/appliance/units"
)

// Paths on a host.
const (
	EtcdConfPath      = "/etc/etcd/etcd.conf"
	EtcdctlEnvPath    = "/etc/etcd/etcdctl.env"
	ProxyConfPath     = "/etc/etcd/grpc-proxy.conf"
	EtcdDropInDir     = "/etc/systemd/system/etcd.service.d"
	DataDirDropInPath = EtcdDropInDir + "/10-data-dir.conf"
	// ProxyFlagsVar carries the proxy's flags; the unit expands it.
	ProxyFlagsVar = "ETCD_GRPC_PROXY_FLAGS"
)

// File is one file for a host, with the owner and mode it must have.
type File struct {
	Path  string // absolute path on the host
	Mode  fs.FileMode
	Owner string
	Group string
	Data  []byte
	// Unit is the systemd unit whose configuration this file is ("" for
	// none): a change means that unit must be restarted.
	Unit string
	// UnitFile marks unit files and drop-ins: a change needs daemon-reload.
	UnitFile bool
}

// HostFiles are the files of one host.
type HostFiles struct {
	Host  Host
	Files []File
}

// ClusterFile is a cluster-wide artefact (DNS records, scrape config,
// Procfile), named relative to the output directory.
type ClusterFile struct {
	Name string
	Mode fs.FileMode
	Data []byte
}

// Rendering is everything an inventory renders to.
type Rendering struct {
	Hosts   []HostFiles
	Cluster []ClusterFile
}

// MemberOptions adjust how one member is rendered.
type MemberOptions struct {
	// State is the initial cluster state: "new" (default) or "existing"
	// for a member joining a running cluster.
	State string
	// InitialCluster, when set, lists the member names that form the
	// initial cluster (the running members plus the one joining).
	InitialCluster []string
}

var tmpl = template.Must(template.New("").Option("missingkey=error").ParseFS(templates.FS, "*.tmpl"))

// Render renders every host and the cluster files. inv must have been
// through Defaults and Validate.
func Render(inv *Inventory) (*Rendering, error) {
	r := &Rendering{}
	for _, h := range inv.Hosts() {
		files, err := renderHost(inv, h, MemberOptions{})
		if err != nil {
			return nil, err
		}
		r.Hosts = append(r.Hosts, HostFiles{Host: h, Files: files})
	}
	cf, err := renderCluster(inv)
	if err != nil {
		return nil, err
	}
	r.Cluster = cf
	return r, nil
}

// RenderHost renders the files of one host.
func RenderHost(inv *Inventory, name string, opts MemberOptions) ([]File, error) {
	h, ok := inv.Host(name)
	if !ok {
		return nil, fmt.Errorf("%w: no member or proxy named %q in %s", ErrInvalid, name, inv.Source)
	}
	return renderHost(inv, h, opts)
}

func renderHost(inv *Inventory, h Host, opts MemberOptions) ([]File, error) {
	var files []File
	if h.Member != nil {
		vars, err := MemberEnv(inv, h.Member, opts)
		if err != nil {
			return nil, err
		}
		f, err := envFile(inv, EtcdConfPath, fmt.Sprintf("member %s of etcd cluster %s", h.Name, inv.Cluster.Name), vars)
		if err != nil {
			return nil, err
		}
		f.Mode, f.Owner, f.Group, f.Unit = 0o640, "root", "etcd", units.Etcd
		files = append(files, f)
		if d := inv.Cluster.DataDir; path.Clean(d) != DefaultDataDir && !strings.HasPrefix(path.Clean(d), DefaultDataDir+"/") {
			var buf bytes.Buffer
			err := tmpl.ExecuteTemplate(&buf, "dropin.tmpl", map[string]any{
				"Header": header(inv, "drop-in for etcd.service: the data dir is outside "+DefaultDataDir+", which the unit's sandbox makes read-only"),
				"Lines":  []string{"ReadWritePaths=" + d},
			})
			if err != nil {
				return nil, err
			}
			files = append(files, File{Path: DataDirDropInPath, Mode: 0o644, Owner: "root", Group: "root",
				Data: buf.Bytes(), Unit: units.Etcd, UnitFile: true})
		}
	} else {
		vars, err := ProxyEnv(inv, h.Proxy)
		if err != nil {
			return nil, err
		}
		f, err := envFile(inv, ProxyConfPath, fmt.Sprintf("gRPC proxy %s of etcd cluster %s", h.Name, inv.Cluster.Name), vars)
		if err != nil {
			return nil, err
		}
		f.Mode, f.Owner, f.Group, f.Unit = 0o640, "root", "etcd", units.GRPCProxy
		files = append(files, f)
	}
	ctl, err := envFile(inv, EtcdctlEnvPath, fmt.Sprintf("etcdctl settings for etcd cluster %s (read by etcdctl on this host)", inv.Cluster.Name), EtcdctlEnv(inv))
	if err != nil {
		return nil, err
	}
	ctl.Mode, ctl.Owner, ctl.Group = 0o644, "root", "root"
	files = append(files, ctl)
	return files, nil
}

// Var is one environment assignment.
type Var struct{ Key, Value string }

func header(inv *Inventory, what string) []string {
	return []string{
		what + ".",
		"Rendered by etcd-installer from the inventory " + comment(inv.Source) + ".",
		"Do not edit: `etcd-installer apply` overwrites this file; change the inventory instead.",
	}
}

// comment makes s safe inside a one-line comment.
func comment(s string) string {
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

func envFile(inv *Inventory, p, what string, vars []Var) (File, error) {
	quoted := make([]Var, len(vars))
	for i, v := range vars {
		q, err := envfile.Quote(v.Value)
		if err != nil {
			return File{}, fmt.Errorf("%s: %s: %w", p, v.Key, err)
		}
		quoted[i] = Var{v.Key, q}
	}
	var buf bytes.Buffer
	err := tmpl.ExecuteTemplate(&buf, "env.tmpl", map[string]any{
		"Header": append([]string{p + ": " + what}, header(inv, "")[1:]...),
		"Vars":   quoted,
	})
	if err != nil {
		return File{}, err
	}
	return File{Path: p, Data: buf.Bytes()}, nil
}

func (inv *Inventory) scheme() string {
	if inv.TLSEnabled() {
		return "https"
	}
	return "http"
}

// listenIP is where a member binds: its ip, its address when that is an
// IP, else every interface.
func (m Member) listenIP() string {
	if m.IP != "" {
		return m.IP
	}
	if net.ParseIP(m.Address) != nil {
		return m.Address
	}
	return "0.0.0.0"
}

func hostPort(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }

// ClientURL is the member's advertised client URL.
func (inv *Inventory) ClientURL(m *Member) string {
	return inv.scheme() + "://" + hostPort(m.Address, m.ClientPort)
}

// PeerURL is the member's advertised peer URL.
func (inv *Inventory) PeerURL(m *Member) string {
	return inv.scheme() + "://" + hostPort(m.Address, m.PeerPort)
}

// ClientURLs returns every member's advertised client URL.
func (inv *Inventory) ClientURLs() []string {
	var urls []string
	for i := range inv.Members {
		urls = append(urls, inv.ClientURL(&inv.Members[i]))
	}
	return urls
}

// DataDir is the member's data directory on its host.
func (inv *Inventory) DataDir(m *Member) string { return path.Join(inv.Cluster.DataDir, m.Name) }

// InitialCluster is the --initial-cluster value for the named members (all
// when names is empty).
func (inv *Inventory) InitialCluster(names []string) string {
	var parts []string
	for i := range inv.Members {
		m := &inv.Members[i]
		if len(names) > 0 && !contains(names, m.Name) {
			continue
		}
		parts = append(parts, m.Name+"="+inv.PeerURL(m))
	}
	return strings.Join(parts, ",")
}

// MemberEnv is the member's etcd configuration as ETCD_* variables, in the
// order they are rendered.
func MemberEnv(inv *Inventory, m *Member, opts MemberOptions) ([]Var, error) {
	c := inv.Cluster
	s := inv.scheme()
	ip := m.listenIP()
	listenClient := []string{s + "://" + hostPort(ip, m.ClientPort)}
	if parsed := net.ParseIP(ip); parsed != nil && !parsed.IsLoopback() && !parsed.IsUnspecified() {
		// Local tools (etcdctl, health checks) reach the member on loopback.
		lo := "127.0.0.1"
		if parsed.To4() == nil {
			lo = "::1"
		}
		listenClient = append(listenClient, s+"://"+hostPort(lo, m.ClientPort))
	}
	vars := []Var{
		{"ETCD_NAME", m.Name},
		{"ETCD_DATA_DIR", inv.DataDir(m)},
		{"ETCD_LISTEN_PEER_URLS", s + "://" + hostPort(ip, m.PeerPort)},
		{"ETCD_LISTEN_CLIENT_URLS", strings.Join(listenClient, ",")},
	}
	if m.MetricsPort != 0 {
		vars = append(vars, Var{"ETCD_LISTEN_METRICS_URLS", "http://" + hostPort(ip, m.MetricsPort)})
	}
	vars = append(vars,
		Var{"ETCD_INITIAL_ADVERTISE_PEER_URLS", inv.PeerURL(m)},
		Var{"ETCD_ADVERTISE_CLIENT_URLS", inv.ClientURL(m)},
	)
	state := opts.State
	if state == "" {
		state = "new"
	}
	switch c.Bootstrap {
	case BootstrapDNSSRV:
		vars = append(vars, Var{"ETCD_DISCOVERY_SRV", c.DNSSRV.Domain})
		if c.DNSSRV.ServiceName != "" {
			vars = append(vars, Var{"ETCD_DISCOVERY_SRV_NAME", c.DNSSRV.ServiceName})
		}
		vars = append(vars, Var{"ETCD_INITIAL_CLUSTER_TOKEN", c.Token})
	case BootstrapDiscovery:
		vars = append(vars,
			Var{"ETCD_DISCOVERY_ENDPOINTS", strings.Join(c.Discovery.Endpoints, ",")},
			Var{"ETCD_DISCOVERY_TOKEN", c.Discovery.Token})
	default:
		vars = append(vars,
			Var{"ETCD_INITIAL_CLUSTER", inv.InitialCluster(opts.InitialCluster)},
			Var{"ETCD_INITIAL_CLUSTER_TOKEN", c.Token})
	}
	vars = append(vars, Var{"ETCD_INITIAL_CLUSTER_STATE", state})
	if c.HeartbeatIntervalMs > 0 {
		vars = append(vars, Var{"ETCD_HEARTBEAT_INTERVAL", strconv.Itoa(c.HeartbeatIntervalMs)})
	}
	if c.ElectionTimeoutMs > 0 {
		vars = append(vars, Var{"ETCD_ELECTION_TIMEOUT", strconv.Itoa(c.ElectionTimeoutMs)})
	}
	if c.SnapshotCount > 0 {
		vars = append(vars, Var{"ETCD_SNAPSHOT_COUNT", strconv.FormatUint(c.SnapshotCount, 10)})
	}
	if c.QuotaBackend != "" {
		q, err := parseQuota(c.QuotaBackend)
		if err != nil {
			return nil, err
		}
		vars = append(vars, Var{"ETCD_QUOTA_BACKEND_BYTES", strconv.FormatInt(q, 10)})
	}
	if c.AutoCompactionMode != "" {
		vars = append(vars, Var{"ETCD_AUTO_COMPACTION_MODE", c.AutoCompactionMode})
	}
	if c.AutoCompactionRetention != "" {
		vars = append(vars, Var{"ETCD_AUTO_COMPACTION_RETENTION", c.AutoCompactionRetention})
	}
	if c.LogLevel != "" {
		vars = append(vars, Var{"ETCD_LOG_LEVEL", c.LogLevel})
	}
	if inv.TLSEnabled() {
		t := inv.TLS
		vars = append(vars,
			Var{"ETCD_CERT_FILE", t.CertFile}, Var{"ETCD_KEY_FILE", t.KeyFile},
			Var{"ETCD_TRUSTED_CA_FILE", t.CAFile}, Var{"ETCD_CLIENT_CERT_AUTH", "true"},
			Var{"ETCD_PEER_CERT_FILE", t.PeerCertFile}, Var{"ETCD_PEER_KEY_FILE", t.PeerKeyFile},
			Var{"ETCD_PEER_TRUSTED_CA_FILE", t.CAFile}, Var{"ETCD_PEER_CLIENT_CERT_AUTH", "true"},
		)
	}
	for _, name := range sortedKeys(c.Options) {
		vars = append(vars, Var{envName(name), c.Options[name]})
	}
	return vars, nil
}

func envName(flag string) string {
	return "ETCD_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// ProxyEnv is the proxy's configuration: its flags in one variable.
func ProxyEnv(inv *Inventory, p *Proxy) ([]Var, error) {
	return []Var{{ProxyFlagsVar, strings.Join(ProxyFlags(inv, p), " ")}}, nil
}

// ProxyFlags are the arguments after `etcd grpc-proxy start`, with the
// proxy's data dir on a host of its own.
func ProxyFlags(inv *Inventory, p *Proxy) []string { return proxyFlags(inv, p, ProxyDataDir) }

func proxyFlags(inv *Inventory, p *Proxy, dataDir string) []string {
	var eps []string
	for _, name := range p.Endpoints {
		if m, ok := inv.Member(name); ok {
			eps = append(eps, inv.ClientURL(m))
		}
	}
	_, port, _ := net.SplitHostPort(p.Listen)
	n, _ := strconv.Atoi(port)
	flags := []string{
		"--endpoints=" + strings.Join(eps, ","),
		"--listen-addr=" + p.Listen,
		"--advertise-client-url=" + hostPort(p.Address, n),
		"--data-dir=" + dataDir,
	}
	if inv.TLSEnabled() {
		t := inv.TLS
		flags = append(flags,
			"--cacert="+t.CAFile, "--cert="+t.ClientCertFile, "--key="+t.ClientKeyFile,
			"--cert-file="+t.CertFile, "--key-file="+t.KeyFile, "--trusted-ca-file="+t.CAFile)
	}
	return flags
}

// EtcdctlEnv points etcdctl at the cluster.
func EtcdctlEnv(inv *Inventory) []Var {
	vars := []Var{{"ETCDCTL_ENDPOINTS", strings.Join(inv.ClientURLs(), ",")}}
	if inv.TLSEnabled() {
		t := inv.TLS
		vars = append(vars, Var{"ETCDCTL_CACERT", t.CAFile}, Var{"ETCDCTL_CERT", t.ClientCertFile}, Var{"ETCDCTL_KEY", t.ClientKeyFile})
	}
	return vars
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func fsMode(m uint32) fs.FileMode { return fs.FileMode(m) }
