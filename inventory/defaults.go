package inventory

import (
	"net"
	"net/url"
	"strconv"

	"go.etcd.io/etcd/server/v3/embed"

	"github.com/etcd-appliance/appliance/layout"
)

// DefaultProxyPort is where a proxy listens unless the inventory says.
// The inventory's other defaults are etcd's (embed.NewConfig: heartbeat,
// election timeout, snapshot count, quota, log level, compaction), which
// are not rendered at all, and the host paths of package layout.
const DefaultProxyPort = 23790

// etcdDefaults is etcd's own configuration before any flag.
var etcdDefaults = embed.NewConfig()

func portOf(rawURL string, fallback int) int {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fallback
	}
	p, err := strconv.Atoi(u.Port())
	if err != nil {
		return fallback
	}
	return p
}

// Defaults returns a copy of inv with every unset value filled in. It is
// pure and idempotent.
func Defaults(in *Inventory) *Inventory {
	inv := *in
	c := &inv.Cluster
	if c.Token == "" {
		c.Token = c.Name
	}
	if c.Bootstrap == "" {
		c.Bootstrap = BootstrapStatic
	}
	if c.ClientPort == 0 {
		c.ClientPort = portOf(embed.DefaultListenClientURLs, 2379)
	}
	if c.PeerPort == 0 {
		c.PeerPort = portOf(embed.DefaultListenPeerURLs, 2380)
	}
	if c.DataDir == "" {
		c.DataDir = layout.DataDir
	}
	if c.TLS == "" {
		c.TLS = TLSAuto
	}
	inv.Members = append([]Member(nil), in.Members...)
	for i := range inv.Members {
		m := &inv.Members[i]
		if m.ClientPort == 0 {
			m.ClientPort = c.ClientPort
		}
		if m.PeerPort == 0 {
			m.PeerPort = c.PeerPort
		}
		if m.MetricsPort == 0 {
			m.MetricsPort = c.MetricsPort
		}
	}
	if m := &inv.Maintenance; m.Scheduled() {
		if m.DefragFreePercent == 0 && !in.pos.has("maintenance.defrag_free_percent") {
			m.DefragFreePercent = 50
		}
		if m.DefragMinFree == "" {
			m.DefragMinFree = "100MiB"
		}
	}
	if b := &inv.Backup; b.Scheduled() {
		if b.Dir == "" {
			b.Dir = layout.BackupDir
		}
		// A key written as 0 means 0 (validate says whether it may be).
		if b.KeepLast == 0 && !in.pos.has("backup.keep_last") {
			b.KeepLast = 24
		}
		if b.KeepDaily == 0 && !in.pos.has("backup.keep_daily") {
			b.KeepDaily = 7
		}
	}
	inv.Proxies = append([]Proxy(nil), in.Proxies...)
	for i := range inv.Proxies {
		p := &inv.Proxies[i]
		if len(p.Endpoints) == 0 {
			for _, m := range inv.Members {
				p.Endpoints = append(p.Endpoints, m.Name)
			}
		}
		if p.Listen == "" {
			// Where the proxy is reached, never every interface unless
			// the inventory says so (a name binds what it resolves to).
			p.Listen = net.JoinHostPort(p.Address, strconv.Itoa(DefaultProxyPort))
		}
	}
	if inv.TLSEnabled() {
		t := &inv.TLS
		def := func(p *string, file string) {
			if *p == "" {
				*p = layout.PKIDir + "/" + file
			}
		}
		def(&t.CAFile, "ca.crt")
		def(&t.CertFile, "server.crt")
		def(&t.KeyFile, "server.key")
		def(&t.PeerCertFile, "peer.crt")
		def(&t.PeerKeyFile, "peer.key")
		def(&t.ClientCertFile, "client.crt")
		def(&t.ClientKeyFile, "client.key")
	}
	return &inv
}

// TLSEnabled reports whether members talk TLS. It is the default ("auto")
// for an inventory whose hosts are not all this machine; a loopback
// inventory, whose traffic never leaves the machine, uses TLS when it
// names certificate files in [tls] or says tls = "on".
func (inv *Inventory) TLSEnabled() bool {
	switch inv.Cluster.TLS {
	case TLSOn:
		return true
	case TLSOff:
		return false
	}
	return !inv.Loopback() || inv.TLS != (TLSFiles{})
}

// Tuning is the effective value of each tuning key.
type Tuning struct {
	HeartbeatMs, ElectionMs uint
	SnapshotCount           uint64
	QuotaBytes              int64
	LogLevel                string
	CompactionMode          string
	CompactionRetention     string
}

// EffectiveTuning resolves unset tuning keys to etcd's own defaults.
func (inv *Inventory) EffectiveTuning() Tuning {
	c := inv.Cluster
	t := Tuning{
		HeartbeatMs: etcdDefaults.TickMs, ElectionMs: etcdDefaults.ElectionMs,
		SnapshotCount: etcdDefaults.SnapshotCount, QuotaBytes: etcdDefaults.QuotaBackendBytes,
		LogLevel: etcdDefaults.LogLevel, CompactionMode: etcdDefaults.AutoCompactionMode,
		CompactionRetention: etcdDefaults.AutoCompactionRetention,
	}
	if c.HeartbeatIntervalMs > 0 && c.HeartbeatIntervalMs <= MaxHeartbeatMs {
		t.HeartbeatMs = uint(c.HeartbeatIntervalMs)
	}
	if c.ElectionTimeoutMs > 0 && c.ElectionTimeoutMs <= MaxElectionMs {
		t.ElectionMs = uint(c.ElectionTimeoutMs)
	}
	if c.SnapshotCount > 0 {
		t.SnapshotCount = uint64(c.SnapshotCount)
	}
	if q, err := ParseQuota(c.QuotaBackend); err == nil && q > 0 {
		t.QuotaBytes = q
	}
	if c.LogLevel != "" {
		t.LogLevel = c.LogLevel
	}
	if c.AutoCompactionMode != "" {
		t.CompactionMode = c.AutoCompactionMode
	}
	if c.AutoCompactionRetention != "" {
		t.CompactionRetention = c.AutoCompactionRetention
	}
	if t.CompactionMode == "" {
		t.CompactionMode = "periodic"
	}
	if t.CompactionRetention == "" {
		t.CompactionRetention = "0"
	}
	return t
}
