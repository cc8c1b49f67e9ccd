package render

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"path"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/etcd-appliance/appliance/internal/envfile"
	"github.com/etcd-appliance/appliance/internal/shquote"
	"github.com/etcd-appliance/appliance/inventory"
	"github.com/etcd-appliance/appliance/layout"
	"github.com/etcd-appliance/appliance/pki"
	"github.com/etcd-appliance/appliance/units"
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
	// Secret marks a private key: its content is never shown in a diff.
	Secret bool
}

// HostFiles are the files of one host.
type HostFiles struct {
	Host  inventory.Host
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

// templates are the text/template files render fills in.
//
//go:embed templates/*.tmpl
var templates embed.FS

var tmpl = template.Must(template.New("").Option("missingkey=error").Funcs(template.FuncMap{
	// sh quotes a value for a POSIX shell: data never becomes code.
	"sh": shquote.Quote,
}).ParseFS(templates, "templates/*.tmpl"))

// Render renders every host and the cluster files. inv must have been
// through Defaults and Validate.
func Render(inv *inventory.Inventory) (*Rendering, error) {
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
func RenderHost(inv *inventory.Inventory, name string, opts MemberOptions) ([]File, error) {
	h, ok := inv.Host(name)
	if !ok {
		return nil, fmt.Errorf("%w: no member or proxy named %q in %s", inventory.ErrInvalid, name, inv.Source)
	}
	return renderHost(inv, h, opts)
}

func renderHost(inv *inventory.Inventory, h inventory.Host, opts MemberOptions) ([]File, error) {
	var files []File
	if h.Member != nil {
		vars, err := MemberEnv(inv, h.Member, opts)
		if err != nil {
			return nil, err
		}
		f, err := envFile(inv, layout.EtcdConf, fmt.Sprintf("member %s of etcd cluster %s", h.Name, inv.Cluster.Name), vars)
		if err != nil {
			return nil, err
		}
		f.Mode, f.Owner, f.Group, f.Unit = 0o640, "root", "etcd", units.Etcd
		files = append(files, f)
		if d := inv.Cluster.DataDir; OutsideDataDir(d) {
			data, err := SandboxDropIn(header(inv, sandboxWhy), d)
			if err != nil {
				return nil, err
			}
			files = append(files, File{Path: layout.DataDirDropIn, Mode: 0o644, Owner: "root", Group: "root",
				Data: data, Unit: units.Etcd, UnitFile: true})
		}
		bf, err := backupFiles(inv)
		if err != nil {
			return nil, err
		}
		files = append(files, bf...)
		mf, err := maintenanceFiles(inv)
		if err != nil {
			return nil, err
		}
		files = append(files, mf...)
	} else {
		vars, err := ProxyEnv(inv, h.Proxy)
		if err != nil {
			return nil, err
		}
		f, err := envFile(inv, layout.ProxyConf, fmt.Sprintf("gRPC proxy %s of etcd cluster %s", h.Name, inv.Cluster.Name), vars)
		if err != nil {
			return nil, err
		}
		f.Mode, f.Owner, f.Group, f.Unit = 0o640, "root", "etcd", units.GRPCProxy
		files = append(files, f)
	}
	ctl, err := envFile(inv, layout.EtcdctlEnv, fmt.Sprintf("etcdctl settings for etcd cluster %s (read by etcdctl on this host)", inv.Cluster.Name), EtcdctlEnv(inv))
	if err != nil {
		return nil, err
	}
	ctl.Mode, ctl.Owner, ctl.Group = 0o644, "root", "root"
	files = append(files, ctl)
	return files, nil
}

// Var is one environment assignment.
type Var struct{ Key, Value string }

func header(inv *inventory.Inventory, what string) []string {
	return []string{
		what + ".",
		// The cluster's name, not the inventory's file name: a copy of the
		// inventory under another name must render the same bytes, or
		// apply would rewrite (and restart) every host.
		"Rendered by etcd-installer from the inventory of cluster " + comment(inv.Cluster.Name) + ".",
		"Do not edit: `etcd-installer apply` overwrites this file; change the inventory instead.",
	}
}

// comment makes s safe inside a one-line comment.
func comment(s string) string {
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

func envFile(inv *inventory.Inventory, p, what string, vars []Var) (File, error) {
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

// MemberEnv is the member's etcd configuration as ETCD_* variables, in the
// order they are rendered.
func MemberEnv(inv *inventory.Inventory, m *inventory.Member, opts MemberOptions) ([]Var, error) {
	c := inv.Cluster
	s := inv.Scheme()
	ip := m.ListenHost()
	listenClient := []string{s + "://" + inventory.HostPort(ip, m.ClientPort)}
	if parsed := net.ParseIP(ip); parsed != nil && !parsed.IsLoopback() && !parsed.IsUnspecified() {
		// Local tools (etcdctl, health checks) reach the member on loopback.
		lo := "127.0.0.1"
		if parsed.To4() == nil {
			lo = "::1"
		}
		listenClient = append(listenClient, s+"://"+inventory.HostPort(lo, m.ClientPort))
	}
	vars := []Var{
		{"ETCD_NAME", m.Name},
		{"ETCD_DATA_DIR", inv.DataDir(m)},
		{"ETCD_LISTEN_PEER_URLS", s + "://" + inventory.HostPort(ip, m.PeerPort)},
		{"ETCD_LISTEN_CLIENT_URLS", strings.Join(listenClient, ",")},
	}
	if m.MetricsPort != 0 {
		vars = append(vars, Var{"ETCD_LISTEN_METRICS_URLS", "http://" + inventory.HostPort(ip, m.MetricsPort)})
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
	case inventory.BootstrapDNSSRV:
		vars = append(vars, Var{"ETCD_DISCOVERY_SRV", c.DNSSRV.Domain})
		if c.DNSSRV.ServiceName != "" {
			vars = append(vars, Var{"ETCD_DISCOVERY_SRV_NAME", c.DNSSRV.ServiceName})
		}
		vars = append(vars, Var{"ETCD_INITIAL_CLUSTER_TOKEN", c.Token})
	case inventory.BootstrapDiscovery:
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
		vars = append(vars, Var{"ETCD_SNAPSHOT_COUNT", strconv.FormatInt(c.SnapshotCount, 10)})
	}
	if c.QuotaBackend != "" {
		q, err := inventory.ParseQuota(c.QuotaBackend)
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
			// Only members' peer certificates on the peer port, not every
			// certificate of the CA (an operator's could read /members).
			Var{"ETCD_PEER_CERT_ALLOWED_CN", pki.PeerCN},
		)
	}
	for _, name := range slices.Sorted(maps.Keys(c.Options)) {
		vars = append(vars, Var{envName(name), c.Options[name]})
	}
	return vars, nil
}

func envName(flag string) string {
	return "ETCD_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// ProxyEnv is the proxy's configuration: its flags in one variable.
func ProxyEnv(inv *inventory.Inventory, p *inventory.Proxy) ([]Var, error) {
	return []Var{{layout.ProxyFlagsVar, strings.Join(ProxyFlags(inv, p), " ")}}, nil
}

// ProxyFlags are the arguments after `etcd grpc-proxy start`, with the
// proxy's data dir on a host of its own.
func ProxyFlags(inv *inventory.Inventory, p *inventory.Proxy) []string {
	return proxyFlags(inv, p, layout.ProxyDataDir)
}

func proxyFlags(inv *inventory.Inventory, p *inventory.Proxy, dataDir string) []string {
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
		"--advertise-client-url=" + inventory.HostPort(p.Address, n),
		"--data-dir=" + dataDir,
		// Keepalive on the proxy's connections to the members (upstream
		// leaves it off): without it a member whose host went away
		// silently (power, link) keeps its connection "up", and the
		// requests sent on it wait until their clients give up, for as
		// long as the host stays away.
		"--dial-keepalive-time=" + proxyKeepalive(inv).String(),
		"--dial-keepalive-timeout=5s",
	}
	if inv.TLSEnabled() {
		t := inv.TLS
		flags = append(flags,
			"--cacert="+t.CAFile, "--cert="+t.ClientCertFile, "--key="+t.ClientKeyFile,
			"--cert-file="+t.CertFile, "--key-file="+t.KeyFile, "--trusted-ca-file="+t.CAFile)
	}
	return flags
}

// proxyKeepalive is how often a proxy pings the members: 10 s, grpc-go's
// least for a client, unless the members ask for less often
// (grpc-keepalive-min-time in [cluster.options]; they close the
// connections of a client that pings more often, "too_many_pings").
func proxyKeepalive(inv *inventory.Inventory) time.Duration {
	d := 10 * time.Second
	if v, err := time.ParseDuration(inv.Cluster.Options["grpc-keepalive-min-time"]); err == nil && v > d {
		d = v
	}
	return d
}

// EtcdctlEnv points etcdctl at the cluster.
func EtcdctlEnv(inv *inventory.Inventory) []Var {
	vars := []Var{{"ETCDCTL_ENDPOINTS", strings.Join(inv.ClientURLs(), ",")}}
	if inv.TLSEnabled() {
		t := inv.TLS
		vars = append(vars, Var{"ETCDCTL_CACERT", t.CAFile}, Var{"ETCDCTL_CERT", t.ClientCertFile}, Var{"ETCDCTL_KEY", t.ClientKeyFile})
	}
	return vars
}

func fsMode(m uint32) fs.FileMode { return fs.FileMode(m) }

// ErrSamePath means two files of one host would be written to one path.
var ErrSamePath = errors.New("two files share a path")

// CheckPaths refuses files of one host that share a path: one would
// silently replace the other (a key over a configuration file, say).
func CheckPaths(files []File) error {
	seen := map[string]bool{}
	var errs []error
	for _, f := range files {
		if seen[f.Path] {
			errs = append(errs, fmt.Errorf("%w: %s", ErrSamePath, f.Path))
		}
		seen[f.Path] = true
	}
	return errors.Join(errs...)
}

// sandboxWhy heads the drop-in SandboxDropIn renders.
const sandboxWhy = "drop-in for etcd.service: the data dir is outside " + layout.DataDir + ", which the unit's sandbox makes read-only"

// OutsideDataDir reports whether dir is outside /var/lib/etcd, the one
// place the unit's sandbox (ProtectSystem=strict) lets etcd write.
func OutsideDataDir(dir string) bool {
	d := path.Clean(dir)
	return d != layout.DataDir && !strings.HasPrefix(d, layout.DataDir+"/")
}

// SandboxDropIn renders layout.DataDirDropIn, which opens dirs to the
// unit's sandbox; header lines become comments (nil: the default).
func SandboxDropIn(header []string, dirs ...string) ([]byte, error) {
	if header == nil {
		header = []string{layout.DataDirDropIn + ": " + sandboxWhy}
	}
	lines := make([]string, len(dirs))
	for i, d := range dirs {
		lines[i] = "ReadWritePaths=" + d
	}
	var buf bytes.Buffer
	err := tmpl.ExecuteTemplate(&buf, "dropin.tmpl", map[string]any{"Header": header, "Lines": lines})
	return buf.Bytes(), err
}

// dropIn is a rendered drop-in for a shipped unit: one section's lines.
func dropIn(inv *inventory.Inventory, p, section, what string, lines ...string) File {
	var b strings.Builder
	for _, l := range append([]string{p + ": " + what}, header(inv, "")[1:]...) {
		b.WriteString("# " + l + "\n")
	}
	b.WriteString("[" + section + "]\n")
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
	return File{Path: p, Mode: 0o644, Owner: "root", Group: "root", Data: []byte(b.String()), UnitFile: true}
}

// MaintenanceEnv is etcd-maintenance.service's environment: what
// `etcd-installer maintenance scheduled` needs to know of the inventory on
// the host.
func MaintenanceEnv(inv *inventory.Inventory) []Var {
	m := inv.Maintenance
	minFree, _ := inventory.ParseQuota(m.DefragMinFree)
	return []Var{
		{"MAINTENANCE_CLUSTER", inv.Cluster.Name}, {"MAINTENANCE_FREE_PERCENT", strconv.Itoa(m.DefragFreePercent)},
		{"MAINTENANCE_MIN_FREE", strconv.FormatInt(minFree, 10)},
	}
}

// maintenanceFiles are a member's scheduled-maintenance settings: the
// service's environment and the timer's schedule. A change restarts
// nothing.
func maintenanceFiles(inv *inventory.Inventory) ([]File, error) {
	if !inv.Maintenance.Scheduled() {
		return nil, nil
	}
	env, err := envFile(inv, layout.MaintenanceConf, fmt.Sprintf("scheduled maintenance of etcd cluster %s (read by %s)", inv.Cluster.Name, units.Maintenance), MaintenanceEnv(inv))
	if err != nil {
		return nil, err
	}
	env.Mode, env.Owner, env.Group = 0o644, "root", "root"
	return []File{env, dropIn(inv, layout.MaintenanceTimerDropIn, "Timer", "the schedule of "+units.MaintenanceTimer,
		"OnCalendar=", "OnCalendar="+inv.Maintenance.Schedule)}, nil
}

// BackupEnv is etcd-backup.service's environment: what `etcd-installer
// backup scheduled` needs to know of the inventory on the host.
func BackupEnv(inv *inventory.Inventory) []Var {
	b := inv.Backup
	vars := []Var{
		{"BACKUP_CLUSTER", inv.Cluster.Name}, {"BACKUP_TOKEN", inv.Cluster.Token}, {"BACKUP_DIR", b.Dir},
		{"BACKUP_KEEP_LAST", strconv.Itoa(b.KeepLast)}, {"BACKUP_KEEP_DAILY", strconv.Itoa(b.KeepDaily)},
	}
	if b.CopyTo != "" {
		vars = append(vars, Var{"BACKUP_COPY_TO", b.CopyTo}, Var{"BACKUP_COPY_DIR", b.CopyDir})
	}
	return vars
}

// backupFiles are a member's scheduled-backup settings: the service's
// environment, the timer's schedule and, for a backup dir of its own, the
// drop-in that opens it to the service's sandbox. None of them concerns
// etcd.service: a change restarts nothing.
func backupFiles(inv *inventory.Inventory) ([]File, error) {
	if !inv.Backup.Scheduled() {
		return nil, nil
	}
	env, err := envFile(inv, layout.BackupConf, fmt.Sprintf("scheduled backups of etcd cluster %s (read by %s)", inv.Cluster.Name, units.Backup), BackupEnv(inv))
	if err != nil {
		return nil, err
	}
	env.Mode, env.Owner, env.Group = 0o644, "root", "root"
	files := []File{env, dropIn(inv, layout.BackupTimerDropIn, "Timer", "the schedule of "+units.BackupTimer,
		"OnCalendar=", "OnCalendar="+inv.Backup.Schedule)}
	if d := path.Clean(inv.Backup.Dir); d != layout.BackupDir {
		files = append(files, dropIn(inv, layout.BackupServiceDropIn, "Service", units.Backup+" writes its backups to "+d,
			"ReadWritePaths="+d))
	}
	return files, nil
}
