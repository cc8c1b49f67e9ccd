package node

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/features"
)

var update = flag.Bool("update", false, "rewrite golden files")

var fixedVars = map[string]string{
	"NAME": "etcd0", "DATA": "/var/lib/etcd/etcd0", "IP1": "10.0.1.10", "IP2": "10.0.1.11",
	"CLIENT": "2379", "PEER1": "2380", "PEER2": "7001",
	"C1": "2379", "C2": "22379", "C3": "32379", "P1": "12380", "P2": "22380", "P3": "32380",
}

func mustParse(t *testing.T, args, env []string) *Config {
	t.Helper()
	c, err := Parse(args, env)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

func urls(c []string) string { return strings.Join(c, ",") }

func TestParseUnitEnvironment(t *testing.T) {
	env := unitEnvironment(t, fill(t, "testdata/styles/unit.service", fixedVars))
	c := mustParse(t, nil, env)
	ec := c.Etcd
	if ec.Name != "etcd0" || ec.Dir != "/var/lib/etcd/etcd0" || ec.ElectionMs != 1200 {
		t.Errorf("name/dir/election = %q %q %d", ec.Name, ec.Dir, ec.ElectionMs)
	}
	if got := urlsOf(ec.ListenPeerUrls); got != "http://10.0.1.10:2380,http://10.0.1.11:7001" {
		t.Errorf("listen peer urls = %s", got)
	}
	if got := urlsOf(ec.AdvertiseClientUrls); got != "http://10.0.1.10:2379,http://10.0.1.11:2379" {
		t.Errorf("advertise client urls = %s", got)
	}
	if got := urlsOf(ec.ListenClientUrls); got != "http://0.0.0.0:2379" {
		t.Errorf("listen client urls = %s", got)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("unexpected warnings: %q", c.Warnings)
	}
}

func TestParseCentOSEnvFile(t *testing.T) {
	env := envFileEnvironment(t, fill(t, "testdata/styles/centos-etcd.conf", fixedVars))
	c := mustParse(t, nil, env)
	ec := c.Etcd
	if ec.Dir != "/var/lib/etcd/etcd0" {
		t.Errorf("data dir %q: quotes must be removed", ec.Dir)
	}
	if ec.InitialCluster != "etcd0=http://10.0.1.10:2380" || ec.ClusterState != "new" || ec.InitialClusterToken != "etcd-cluster-1" {
		t.Errorf("cluster = %q %q %q", ec.InitialCluster, ec.ClusterState, ec.InitialClusterToken)
	}
	if got := urlsOf(ec.ListenClientUrls); got != "http://10.0.1.10:2379,http://127.0.0.1:2379" {
		t.Errorf("listen client urls = %s", got)
	}
}

func TestParseProcfileFlags(t *testing.T) {
	cmds := procfileCommands(t, fill(t, "testdata/styles/Procfile", map[string]string{
		"C1": "2379", "C2": "22379", "C3": "32379", "P1": "12380", "P2": "22380", "P3": "32380", "DATA": "/tmp/d",
	}))
	c := mustParse(t, cmds["etcd2"], nil)
	ec := c.Etcd
	if ec.Name != "infra2" || !ec.EnablePprof || ec.ClusterState != "new" {
		t.Errorf("name %q pprof %v state %q", ec.Name, ec.EnablePprof, ec.ClusterState)
	}
	if !strings.Contains(ec.InitialCluster, "infra3=http://127.0.0.1:32380") {
		t.Errorf("initial cluster %q", ec.InitialCluster)
	}
	if urls(ec.LogOutputs) != "stderr" {
		t.Errorf("--log-output not translated to --log-outputs: %q", ec.LogOutputs)
	}
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "--log-outputs") {
		t.Errorf("want one warning naming --log-outputs, got %q", c.Warnings)
	}
}

// Value-backed flags are only copied into the config after parsing; each
// must arrive from both a flag and a variable.
func TestValueFlagsCopiedBack(t *testing.T) {
	cases := []struct {
		flag, value string
		get         func(*Config) string
	}{
		{"listen-peer-urls", "http://127.0.0.1:1", func(c *Config) string { return urlsOf(c.Etcd.ListenPeerUrls) }},
		{"initial-advertise-peer-urls", "http://127.0.0.1:1", func(c *Config) string { return urlsOf(c.Etcd.AdvertisePeerUrls) }},
		{"listen-client-urls", "http://127.0.0.1:2", func(c *Config) string { return urlsOf(c.Etcd.ListenClientUrls) }},
		{"listen-client-http-urls", "http://127.0.0.1:3", func(c *Config) string { return urlsOf(c.Etcd.ListenClientHttpUrls) }},
		{"advertise-client-urls", "http://127.0.0.1:2", func(c *Config) string { return urlsOf(c.Etcd.AdvertiseClientUrls) }},
		{"listen-metrics-urls", "http://127.0.0.1:4", func(c *Config) string { return urlsOf(c.Etcd.ListenMetricsUrls) }},
		{"discovery-endpoints", "http://127.0.0.1:5", func(c *Config) string { return urls(c.Etcd.DiscoveryCfg.Endpoints) }},
		{"client-cert-allowed-hostname", "a.example", func(c *Config) string { return urls(c.Etcd.ClientTLSInfo.AllowedHostnames) }},
		{"peer-cert-allowed-cn", "peer", func(c *Config) string { return urls(c.Etcd.PeerTLSInfo.AllowedCNs) }},
		{"peer-cert-allowed-hostname", "b.example", func(c *Config) string { return urls(c.Etcd.PeerTLSInfo.AllowedHostnames) }},
		{"cipher-suites", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", func(c *Config) string { return urls(c.Etcd.CipherSuites) }},
		{"log-outputs", "stdout", func(c *Config) string { return urls(c.Etcd.LogOutputs) }},
		{"max-concurrent-streams", "77", func(c *Config) string { return itoa(int(c.Etcd.MaxConcurrentStreams)) }},
		{"initial-cluster-state", "existing", func(c *Config) string { return c.Etcd.ClusterState }},
		{"host-whitelist", "h.example", func(c *Config) string { return keys(c.Etcd.HostWhitelist) }},
		{"cors", "http://c.example:8080", func(c *Config) string { return keys(c.Etcd.CORS) }},
	}
	for _, tc := range cases {
		for _, viaEnv := range []bool{false, true} {
			var args, env []string
			if viaEnv {
				env = []string{flagToEnv(tc.flag) + "=" + tc.value}
			} else {
				args = []string{"--" + tc.flag + "=" + tc.value}
			}
			c := mustParse(t, args, env)
			if got := tc.get(c); got != tc.value {
				t.Errorf("%s (env=%v): got %q want %q", tc.flag, viaEnv, got, tc.value)
			}
		}
	}
}

func TestLegacyRenamedTranslated(t *testing.T) {
	cases := []struct {
		old, value string
		get        func(*Config) string
	}{
		{"experimental-corrupt-check-time", "3m0s", func(c *Config) string { return c.Etcd.CorruptCheckTime.String() }},
		{"experimental-compaction-batch-limit", "77", func(c *Config) string { return itoa(c.Etcd.CompactionBatchLimit) }},
		{"experimental-snapshot-catchup-entries", "1234", func(c *Config) string { return itoa(int(c.Etcd.SnapshotCatchUpEntries)) }},
		{"experimental-max-learners", "3", func(c *Config) string { return itoa(c.Etcd.MaxLearners) }},
		{"experimental-warning-unary-request-duration", "2s", func(c *Config) string { return c.Etcd.WarningUnaryRequestDuration.String() }},
		{"experimental-watch-progress-notify-interval", "7s", func(c *Config) string { return c.Etcd.WatchProgressNotifyInterval.String() }},
		{"experimental-backend-bbolt-freelist-type", "array", func(c *Config) string { return c.Etcd.BackendFreelistType }},
		{"log-output", "stdout", func(c *Config) string { return urls(c.Etcd.LogOutputs) }},
		{"ca-file", "/etc/ca.pem", func(c *Config) string { return c.Etcd.ClientTLSInfo.TrustedCAFile }},
		{"peer-ca-file", "/etc/pca.pem", func(c *Config) string { return c.Etcd.PeerTLSInfo.TrustedCAFile }},
	}
	for _, tc := range cases {
		for _, form := range []string{"flag=", "flag space", "env"} {
			var args, env []string
			switch form {
			case "flag=":
				args = []string{"--" + tc.old + "=" + tc.value}
			case "flag space":
				args = []string{"-" + tc.old, tc.value, "--name", "x"}
			case "env":
				env = []string{flagToEnv(tc.old) + "=" + tc.value}
			}
			c := mustParse(t, args, env)
			if got := tc.get(c); got != tc.value {
				t.Errorf("%s (%s): got %q want %q", tc.old, form, got, tc.value)
			}
			if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], legacyOptions[tc.old].to) {
				t.Errorf("%s (%s): want one warning naming the new spelling, got %q", tc.old, form, c.Warnings)
			}
		}
	}
}

func TestLegacyGatesTranslated(t *testing.T) {
	c := mustParse(t, []string{"--experimental-initial-corrupt-check", "--experimental-enable-lease-checkpoint=true"},
		[]string{"ETCD_EXPERIMENTAL_COMPACT_HASH_CHECK_ENABLED=true", "ETCD_EXPERIMENTAL_TXN_MODE_WRITE_WITH_SHARED_BUFFER=false"})
	fg := c.Etcd.ServerFeatureGate
	for gate, want := range map[string]bool{
		string(features.InitialCorruptCheck): true, string(features.LeaseCheckpoint): true,
		string(features.CompactHashCheck): true, string(features.TxnModeWriteWithSharedBuffer): false,
	} {
		if got := fg.Enabled(featureOf(gate)); got != want {
			t.Errorf("gate %s = %v, want %v", gate, got, want)
		}
	}
	if len(c.Warnings) != 4 {
		t.Errorf("want 4 warnings, got %q", c.Warnings)
	}
	_, err := Parse([]string{"--experimental-initial-corrupt-check", "--feature-gates=InitialCorruptCheck=false"}, nil)
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "keep only --feature-gates") {
		t.Errorf("legacy gate and --feature-gates together: %v", err)
	}
}

func TestDebugTranslated(t *testing.T) {
	c := mustParse(t, []string{"--debug"}, nil)
	if c.Etcd.LogLevel != "debug" {
		t.Errorf("--debug: log level %q", c.Etcd.LogLevel)
	}
	c = mustParse(t, nil, []string{"ETCD_DEBUG=true"})
	if c.Etcd.LogLevel != "debug" {
		t.Errorf("ETCD_DEBUG: log level %q", c.Etcd.LogLevel)
	}
	c = mustParse(t, nil, []string{"ETCD_DEBUG=false"})
	if c.Etcd.LogLevel != "info" {
		t.Errorf("ETCD_DEBUG=false: log level %q", c.Etcd.LogLevel)
	}
}

func TestLegacyRefused(t *testing.T) {
	cases := []struct {
		args, env []string
		want      string
	}{
		{args: []string{"--enable-v2"}, want: "v2 API was removed"},
		{args: []string{"--enable-v2=true"}, want: "v2 API was removed"},
		{env: []string{"ETCD_ENABLE_V2=true"}, want: "v2 API was removed"},
		{args: []string{"--proxy", "on"}, want: "grpc-proxy start"},
		{env: []string{"ETCD_PROXY=on"}, want: "grpc-proxy start"},
		{env: []string{"ETCD_PROXY_DIAL_TIMEOUT=1000"}, want: "grpc-proxy start"},
		{env: []string{"ETCD_PROXY_SOMETHING_NEW=1"}, want: "grpc-proxy start"},
		{args: []string{"--discovery=https://discovery.etcd.io/abc"}, want: "--discovery-endpoints and --discovery-token"},
		{env: []string{"ETCD_DISCOVERY=https://discovery.etcd.io/abc"}, want: "--discovery-endpoints and --discovery-token"},
		{args: []string{"--log-package-levels=etcdserver=DEBUG"}, want: "use --log-level"},
		{args: []string{"--experimental-enable-v2v3=/v2"}, want: "v2 API was removed"},
		{args: []string{"--experimental-no-such-thing=1"}, want: "removed every --experimental-*"},
		{args: []string{"--discovery-fallback=proxy"}, want: ""}, // refused by Validate
	}
	for _, tc := range cases {
		c, err := Parse(tc.args, tc.env)
		if tc.want == "" {
			if err == nil {
				err = c.Validate()
			}
			tc.want = "grpc-proxy start"
		}
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q %q: got %v, want an ErrConfig containing %q", tc.args, tc.env, err, tc.want)
		}
	}
}

func TestUnknownVariableRefused(t *testing.T) {
	_, err := Parse(nil, []string{"ETCD_NAEM=x", "ETCD_DATA_DRI=/d", "ETCDCTL_API=3", "HOME=/root"})
	if !errors.Is(err, ErrConfig) {
		t.Fatalf("want ErrConfig, got %v", err)
	}
	for _, want := range []string{"ETCD_NAEM", "did you mean ETCD_NAME?", "ETCD_DATA_DRI", "did you mean ETCD_DATA_DIR?"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "/d") || strings.Contains(err.Error(), "ETCDCTL_API") {
		t.Errorf("error shows a value or a non-ETCD_ variable:\n%v", err)
	}
}

func TestFlagAndVariableConflict(t *testing.T) {
	_, err := Parse([]string{"--name=a"}, []string{"ETCD_NAME=b"})
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "--name is given both as a flag and as ETCD_NAME") {
		t.Errorf("got %v", err)
	}
	_, err = Parse([]string{"--log-output=stderr"}, []string{"ETCD_LOG_OUTPUTS=stdout"})
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "ETCD_LOG_OUTPUTS") {
		t.Errorf("legacy flag vs new variable: %v", err)
	}
	_, err = Parse(nil, []string{"ETCD_LOG_OUTPUT=stderr", "ETCD_LOG_OUTPUTS=stdout"})
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "keep only ETCD_LOG_OUTPUTS") {
		t.Errorf("legacy and new variable: %v", err)
	}
}

func TestEmptyVariableIgnored(t *testing.T) {
	c := mustParse(t, nil, []string{"ETCD_NAME=n", "ETCD_WAL_DIR="})
	if c.Etcd.WalDir != "" || c.Etcd.Name != "n" {
		t.Errorf("got wal %q name %q", c.Etcd.WalDir, c.Etcd.Name)
	}
}

func TestQuotedValueUnquoted(t *testing.T) {
	c := mustParse(t, nil, []string{`ETCD_DATA_DIR="/var/lib/etcd/x"`})
	if c.Etcd.Dir != "/var/lib/etcd/x" || len(c.Warnings) != 1 {
		t.Errorf("dir %q warnings %q", c.Etcd.Dir, c.Warnings)
	}
}

func TestConfigFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "etcd.yaml")
	if err := os.WriteFile(path, []byte("name: fromfile\ndata-dir: /tmp/ff\nlisten-client-urls: http://127.0.0.1:3379\nadvertise-client-urls: http://127.0.0.1:3379\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := mustParse(t, []string{"--config-file", path}, []string{"ETCD_START_TIMEOUT=1m"})
	if c.Etcd.Name != "fromfile" || c.StartTimeout != time.Minute {
		t.Errorf("name %q start timeout %s", c.Etcd.Name, c.StartTimeout)
	}
	c = mustParse(t, nil, []string{"ETCD_CONFIG_FILE=" + path})
	if c.Etcd.Name != "fromfile" {
		t.Errorf("ETCD_CONFIG_FILE: name %q", c.Etcd.Name)
	}
	_, err := Parse([]string{"--config-file", path, "--name=x"}, []string{"ETCD_DATA_DIR=/d"})
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "--name, ETCD_DATA_DIR given with --config-file") {
		t.Errorf("config file with other settings: %v", err)
	}
}

func TestNotAFlag(t *testing.T) {
	_, err := Parse([]string{"--name", "a", "stray"}, nil)
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), `"stray" is not a flag`) {
		t.Errorf("got %v", err)
	}
	_, err = Parse([]string{"--no-such-flag"}, nil)
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "no-such-flag") {
		t.Errorf("got %v", err)
	}
}

func TestSecrets(t *testing.T) {
	c := mustParse(t, nil, []string{"ETCD_DISCOVERY_TOKEN=tok", "ETCD_DISCOVERY_USER=u:pw", "ETCD_DISCOVERY_PASSWORD=pass",
		"ETCD_DISCOVERY_ENDPOINTS=http://127.0.0.1:1"})
	got := strings.Join(c.Secrets(), " ")
	for _, want := range []string{"tok", "pw", "pass"} {
		if !strings.Contains(got, want) {
			t.Errorf("secrets %q lack %q", got, want)
		}
	}
}

// TestFlagSet fixes the server's flag set: a change in etcd's flags (or
// ours) shows up here and must be reviewed. Update with -update.
func TestFlagSet(t *testing.T) {
	got := strings.Join(FlagNames(), "\n") + "\n"
	golden := "testdata/flags.golden"
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("flag set changed (run go test ./node -run TestFlagSet -update and review the diff)")
	}
	for _, name := range LegacyNames() {
		if strings.Contains(got, "\n"+name+"\n") {
			t.Errorf("legacy option %q is also a current flag: the translation would never apply", name)
		}
	}
}
