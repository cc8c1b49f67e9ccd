package render

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"go.etcd.io/etcd/client/pkg/v3/types"

	"github.com/etcd-appliance/appliance/internal/envfile"
	"github.com/etcd-appliance/appliance/internal/etcdtest"
	"github.com/etcd-appliance/appliance/inventory"
	"github.com/etcd-appliance/appliance/layout"
	"github.com/etcd-appliance/appliance/node"
)

// environOf reads a rendered env file the way systemd's EnvironmentFile=
// does.
func environOf(t testing.TB, f File) []string {
	t.Helper()
	entries, err := envfile.Parse(f.Path, bytes.NewReader(f.Data))
	if err != nil {
		t.Fatalf("%s does not parse: %v", f.Path, err)
	}
	return envfile.Environ(entries)
}

// TestRenderedEnvCrossCheck: each rendered etcd.conf, applied as the
// environment, is accepted by the node package exactly as the server would
// read it, and yields the configuration the inventory meant.
func TestRenderedEnvCrossCheck(t *testing.T) {
	cases, _ := filepath.Glob("testdata/golden/*/inventory.toml")
	for _, c := range cases {
		inv := loadValid(t, c)
		tun := inv.EffectiveTuning()
		for i := range inv.Members {
			m := &inv.Members[i]
			files, err := RenderHost(inv, m.Name, MemberOptions{})
			if err != nil {
				t.Fatal(err)
			}
			env := environOf(t, files[0])
			cfg, err := node.Parse(nil, env)
			if err != nil {
				t.Errorf("%s %s: node refuses the rendered env: %v", c, m.Name, err)
				continue
			}
			if len(cfg.Warnings) > 0 {
				t.Errorf("%s %s: rendered env needs translation: %q", c, m.Name, cfg.Warnings)
			}
			if err := cfg.Validate(); err != nil {
				t.Errorf("%s %s: etcd's validation refuses the rendered env: %v", c, m.Name, err)
				continue
			}
			ec := cfg.Etcd
			check := func(what, got, want string) {
				if got != want {
					t.Errorf("%s %s: %s = %q, want %q", c, m.Name, what, got, want)
				}
			}
			check("name", ec.Name, m.Name)
			check("data dir", ec.Dir, inv.DataDir(m))
			check("advertise peer", types.URLs(ec.AdvertisePeerUrls).String(), inv.PeerURL(m))
			check("advertise client", types.URLs(ec.AdvertiseClientUrls).String(), inv.ClientURL(m))
			check("state", ec.ClusterState, "new")
			switch inv.Cluster.Bootstrap {
			case inventory.BootstrapStatic:
				check("initial cluster", ec.InitialCluster, inv.InitialCluster(nil))
				check("token", ec.InitialClusterToken, inv.Cluster.Token)
			case inventory.BootstrapDNSSRV:
				check("discovery srv", ec.DNSCluster, inv.Cluster.DNSSRV.Domain)
			case inventory.BootstrapDiscovery:
				check("discovery token", ec.DiscoveryCfg.Token, inv.Cluster.Discovery.Token)
				check("discovery endpoints", strings.Join(ec.DiscoveryCfg.Endpoints, ","), strings.Join(inv.Cluster.Discovery.Endpoints, ","))
			}
			if ec.TickMs != tun.HeartbeatMs || ec.ElectionMs != tun.ElectionMs || ec.SnapshotCount != tun.SnapshotCount ||
				ec.QuotaBackendBytes != tun.QuotaBytes || ec.LogLevel != tun.LogLevel ||
				ec.AutoCompactionMode != tun.CompactionMode || ec.AutoCompactionRetention != tun.CompactionRetention {
				t.Errorf("%s %s: tuning %d/%d/%d/%d/%s/%s/%s, want %+v", c, m.Name, ec.TickMs, ec.ElectionMs, ec.SnapshotCount,
					ec.QuotaBackendBytes, ec.LogLevel, ec.AutoCompactionMode, ec.AutoCompactionRetention, tun)
			}
			if inv.TLSEnabled() {
				check("cert", ec.ClientTLSInfo.CertFile, inv.TLS.CertFile)
				check("peer ca", ec.PeerTLSInfo.TrustedCAFile, inv.TLS.CAFile)
				if !ec.ClientTLSInfo.ClientCertAuth || !ec.PeerTLSInfo.ClientCertAuth {
					t.Errorf("%s %s: client certificate auth off", c, m.Name)
				}
			}
			if v, ok := inv.Cluster.Options["max-request-bytes"]; ok {
				check("max-request-bytes", strconv.Itoa(int(ec.MaxRequestBytes)), v)
			}
		}
	}
}

var proxyFlagRE = regexp.MustCompile(`--([a-z0-9-]+)`)

// TestRenderedProxyFlags: every flag a proxy env file carries is one the
// real `etcd grpc-proxy start` accepts.
func TestRenderedProxyFlags(t *testing.T) {
	help, err := exec.Command(filepath.Join(etcdtest.BinDir(t), "etcd"), "grpc-proxy", "start", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("grpc-proxy --help: %v\n%s", err, help)
	}
	known := map[string]bool{}
	for _, m := range proxyFlagRE.FindAllStringSubmatch(string(help), -1) {
		known[m[1]] = true
	}
	cases, _ := filepath.Glob("testdata/golden/*/inventory.toml")
	n := 0
	for _, c := range cases {
		inv := loadValid(t, c)
		for i := range inv.Proxies {
			files, err := RenderHost(inv, inv.Proxies[i].Name, MemberOptions{})
			if err != nil {
				t.Fatal(err)
			}
			env := envfile.Map(must(envfile.Parse("", bytes.NewReader(files[0].Data))))
			for _, f := range strings.Fields(env[layout.ProxyFlagsVar]) {
				name, _, _ := strings.Cut(strings.TrimPrefix(f, "--"), "=")
				if !known[name] {
					t.Errorf("%s %s: grpc-proxy has no flag --%s", c, inv.Proxies[i].Name, name)
				}
				n++
			}
		}
	}
	if n == 0 {
		t.Fatal("no proxy flags checked")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
