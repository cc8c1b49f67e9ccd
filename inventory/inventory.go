package inventory

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/etcd-appliance/appliance/internal/suggest"
)

// Version is the inventory format version this package reads.
const Version = 1

// Inventory describes one etcd cluster: its members, optional gRPC proxy
// hosts, and how they run. docs/inventory.md documents every key.
type Inventory struct {
	Version     int         `toml:"version"`
	Cluster     Cluster     `toml:"cluster"`
	TLS         TLSFiles    `toml:"tls"`
	Members     []Member    `toml:"member"`
	Proxies     []Proxy     `toml:"proxy"`
	Backup      Backup      `toml:"backup"`
	Maintenance Maintenance `toml:"maintenance"`

	// Source names the inventory in headers and errors (the file's base name).
	Source string `toml:"-"`
	// Dir is the directory of the inventory file, where its certificate
	// directory is by default; set by whoever read the file.
	Dir string `toml:"-"`
	pos positions
}

// Bootstrap modes.
const (
	BootstrapStatic    = "static"
	BootstrapDNSSRV    = "dns-srv"
	BootstrapDiscovery = "discovery"
)

// TLS modes.
const (
	TLSAuto = "auto"
	TLSOn   = "on"
	TLSOff  = "off"
)

// Cluster holds the settings shared by every member.
type Cluster struct {
	Name string `toml:"name"`
	// Token is the initial-cluster token; it defaults to Name.
	Token      string `toml:"token"`
	Bootstrap  string `toml:"bootstrap"`
	ClientPort int    `toml:"client_port"`
	PeerPort   int    `toml:"peer_port"`
	// MetricsPort, when set, adds a plain-HTTP /metrics and /health
	// listener on each member (--listen-metrics-urls).
	MetricsPort int `toml:"metrics_port"`
	// DataDir is the parent of each member's data dir (DataDir/NAME).
	DataDir  string `toml:"data_dir"`
	LogLevel string `toml:"log_level"`
	// TLS is auto (on unless every host is this machine), on or off.
	TLS string `toml:"tls"`
	// Auth enables etcd's authentication: apply creates the root user
	// (its password read from RootPasswordFile, on the machine running
	// apply), a read-only role and user, and enables auth.
	Auth             bool   `toml:"auth"`
	RootPasswordFile string `toml:"root_password_file"`

	// Tuning; zero means etcd's own default (embed.NewConfig).
	HeartbeatIntervalMs     int    `toml:"heartbeat_interval_ms"`
	ElectionTimeoutMs       int    `toml:"election_timeout_ms"`
	SnapshotCount           int64  `toml:"snapshot_count"`
	QuotaBackend            string `toml:"quota_backend"`
	AutoCompactionMode      string `toml:"auto_compaction_mode"`
	AutoCompactionRetention string `toml:"auto_compaction_retention"`

	DNSSRV    DNSSRV    `toml:"dns_srv"`
	Discovery Discovery `toml:"discovery"`
	// Options are further etcd flags by name (without dashes), for what
	// the inventory has no key for.
	Options map[string]string `toml:"options"`
}

// DNSSRV configures bootstrap = "dns-srv".
type DNSSRV struct {
	Domain      string `toml:"domain"`
	ServiceName string `toml:"service_name"`
}

// Discovery configures bootstrap = "discovery" (etcd v3 discovery).
type Discovery struct {
	Endpoints []string `toml:"endpoints"`
	Token     string   `toml:"token"`
}

// TLSFiles are paths on each host; each host holds its own files there.
type TLSFiles struct {
	CAFile         string `toml:"ca_file"`
	CertFile       string `toml:"cert_file"`
	KeyFile        string `toml:"key_file"`
	PeerCertFile   string `toml:"peer_cert_file"`
	PeerKeyFile    string `toml:"peer_key_file"`
	ClientCertFile string `toml:"client_cert_file"`
	ClientKeyFile  string `toml:"client_key_file"`
}

// Member is one etcd member, one per host.
type Member struct {
	Name string `toml:"name"`
	// Address is how peers and clients reach the member: IPv4, IPv6 or a
	// DNS name.
	Address string `toml:"address"`
	// IP is the address to listen on (and the A record for dns-srv);
	// defaults to Address (a DNS name is resolved on the host at start);
	// "0.0.0.0" or "::" listens on every interface.
	IP          string `toml:"ip"`
	ClientPort  int    `toml:"client_port"`
	PeerPort    int    `toml:"peer_port"`
	MetricsPort int    `toml:"metrics_port"`
	// SSH is [user@]host[:port] for remote provisioning.
	SSH string `toml:"ssh"`
}

// Backup schedules verified snapshots: a timer on every member fires on
// Schedule, and the member that is leader at that moment takes the
// snapshot, verifies it by restoring it into a scratch directory, and
// applies the retention; the others record that they skipped.
type Backup struct {
	// Schedule is a systemd calendar expression (OnCalendar=: "hourly",
	// "*-*-* 02:30:00"); empty: no scheduled backups.
	Schedule string `toml:"schedule"`
	// Dir holds the backups on each member (0700, owned by etcd).
	Dir string `toml:"dir"`
	// KeepLast verified backups are kept, and besides them the newest of
	// each of the last KeepDaily days.
	KeepLast  int `toml:"keep_last"`
	KeepDaily int `toml:"keep_daily"`
	// CopyTo ([user@]host[:port]) receives a copy of each verified backup
	// over SSH, into CopyDir on it, with the same retention; its host key
	// must be in the operator's known_hosts when apply runs.
	CopyTo  string `toml:"copy_to"`
	CopyDir string `toml:"copy_dir"`
	// AlertAfter is how old the last verified backup may get before the
	// rendered EtcdBackupTooOld alert fires ("26h", "8d"); default twice
	// the schedule's period for systemd's shorthands (hourly: 2h), else
	// 48h.
	AlertAfter string `toml:"alert_after"`
}

// Scheduled reports whether the members back up on a schedule.
func (b Backup) Scheduled() bool { return b.Schedule != "" }

// Maintenance schedules the cluster's upkeep: a timer on every member
// fires on Schedule; each host restarts its own member safely when its
// backend is mostly free pages (etcd defragments at start), the leader's
// after the followers, and the leader's host recovers from the NOSPACE
// alarm where compaction and defragmentation free enough.
type Maintenance struct {
	// Schedule is a systemd calendar expression; empty: no maintenance
	// timer.
	Schedule string `toml:"schedule"`
	// A member is defragmented when at least DefragFreePercent of its
	// backend, and at least DefragMinFree ("100MiB"), are free pages.
	DefragFreePercent int    `toml:"defrag_free_percent"`
	DefragMinFree     string `toml:"defrag_min_free"`
}

// Scheduled reports whether the members run the maintenance timer.
func (m Maintenance) Scheduled() bool { return m.Schedule != "" }

// Proxy is a host running `etcd grpc-proxy`.
type Proxy struct {
	Name    string `toml:"name"`
	Address string `toml:"address"`
	// Listen is host:port; defaults to Address:23790.
	Listen string `toml:"listen"`
	// Endpoints are member names; default every member.
	Endpoints []string `toml:"endpoints"`
	SSH       string   `toml:"ssh"`
}

var typeErrRE = regexp.MustCompile(`^toml: line (\d+) \(last key "([^"]*)"\): (.*)$`)

// Parse is Load, Defaults and Validate in that order: the inventory every
// command works from.
func Parse(source string, data []byte) (*Inventory, error) {
	inv, err := Load(source, data)
	if err != nil {
		return nil, err
	}
	d := Defaults(inv)
	if err := Validate(d); err != nil {
		return nil, err
	}
	return d, nil
}

// Load decodes an inventory strictly: a syntax error, a value of the wrong
// type or an unknown key is an error naming the line. It does not apply
// defaults or validate.
func Load(source string, data []byte) (*Inventory, error) {
	if err := checkBounds(source, data); err != nil {
		return nil, err
	}
	inv := &Inventory{Source: source, pos: locate(string(data))}
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(inv)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			fix := pe.Usage
			if fix == "" {
				fix = "see docs/inventory.md for the format, or `etcd-installer example` for a complete file"
			}
			return nil, &FieldError{File: source, Line: pe.Position.Line, Path: pe.LastKey,
				Msg: pe.Message, Fix: strings.TrimSpace(fix)}
		}
		// Type mismatches come as plain errors with the line in the text.
		if m := typeErrRE.FindStringSubmatch(err.Error()); m != nil {
			line, _ := strconv.Atoi(m[1])
			return nil, &FieldError{File: source, Line: line, Path: m[2], Msg: m[3],
				Fix: "write a value of the type docs/inventory.md gives for this key (numbers without quotes, text in quotes)"}
		}
		return nil, fmt.Errorf("%s: %w: %w", source, ErrInvalid, err)
	}
	list := &errorList{inv: inv}
	for _, k := range md.Undecoded() {
		path := k.String()
		lines := inv.pos.plain[path]
		fe := &FieldError{File: source, Path: path,
			Msg: fmt.Sprintf("unknown key %q", k[len(k)-1]),
			Fix: "remove it or correct the spelling" + suggestKey(k) + "; docs/inventory.md lists every key"}
		if len(lines) > 0 {
			fe.Line = lines[0]
		}
		list.errs = append(list.errs, fe)
	}
	if err := list.join(); err != nil {
		return nil, err
	}
	return inv, nil
}

// suggestKey proposes the closest known key of the same table.
func suggestKey(k toml.Key) string {
	t := reflect.TypeOf(Inventory{})
	for _, part := range k[:len(k)-1] {
		f, ok := fieldByTag(t, part)
		if !ok {
			return ""
		}
		t = f.Type
		for t.Kind() == reflect.Slice || t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return ""
		}
	}
	var known []string
	for i := range t.NumField() {
		if tag := t.Field(i).Tag.Get("toml"); tag != "" && tag != "-" {
			known = append(known, tag)
		}
	}
	sort.Strings(known)
	if best, ok := suggest.Closest(k[len(k)-1], known, 3); ok {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return ""
}

func fieldByTag(t reflect.Type, tag string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		if t.Field(i).Tag.Get("toml") == tag {
			return t.Field(i), true
		}
	}
	return reflect.StructField{}, false
}

// Host is a machine the inventory provisions: a member or a proxy.
type Host struct {
	Name    string
	Address string
	SSH     string
	Member  *Member // nil for a proxy
	Proxy   *Proxy  // nil for a member
}

// Hosts returns members then proxies, in inventory order.
func (inv *Inventory) Hosts() []Host {
	var hs []Host
	for i := range inv.Members {
		m := &inv.Members[i]
		hs = append(hs, Host{Name: m.Name, Address: m.Address, SSH: m.SSH, Member: m})
	}
	for i := range inv.Proxies {
		p := &inv.Proxies[i]
		hs = append(hs, Host{Name: p.Name, Address: p.Address, SSH: p.SSH, Proxy: p})
	}
	return hs
}

// Host returns the host with the given name.
func (inv *Inventory) Host(name string) (Host, bool) {
	for _, h := range inv.Hosts() {
		if h.Name == name {
			return h, true
		}
	}
	return Host{}, false
}

// Member returns the member with the given name.
func (inv *Inventory) Member(name string) (*Member, bool) {
	for i := range inv.Members {
		if inv.Members[i].Name == name {
			return &inv.Members[i], true
		}
	}
	return nil, false
}
