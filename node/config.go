package node

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/pkg/v3/flags"

	suggestpkg "github.com/etcd-appliance/appliance/internal/suggest"
	cconfig "go.etcd.io/etcd/server/v3/config"
	"go.etcd.io/etcd/server/v3/embed"
)

// ErrConfig is wrapped by every configuration error, so that Main can exit
// with ExitConfig and systemd does not restart a member that cannot start.
var ErrConfig = errors.New("invalid etcd configuration")

// envPrefix is etcd's prefix for configuration variables.
const envPrefix = "ETCD"

// DefaultStartTimeout bounds start-up under systemd: backend open, WAL
// replay and waiting for quorum together. A first member of a new cluster
// may wait this long for its peers before it gives up and lets systemd
// restart it.
const DefaultStartTimeout = 15 * time.Minute

// Config is everything the node needs to run one member: etcd's own
// configuration plus the appliance's few settings.
type Config struct {
	// Etcd is the configuration handed to embed.StartEtcd.
	Etcd *embed.Config
	// ConfigFile is the YAML file etcd was configured from, if any.
	ConfigFile string
	// StartTimeout bounds start-up when running under systemd; 0 disables it.
	StartTimeout time.Duration
	// ShowVersion and ShowHelp ask for output instead of a server.
	ShowVersion, ShowHelp bool
	// Warnings are translations applied to legacy options; they are logged
	// once the logger exists.
	Warnings []string
	// defaultInitialCluster is embed's default, needed to resolve the
	// advertise host the way etcdmain does.
	defaultInitialCluster string

	fs           *flag.FlagSet
	clusterState *flags.SelectiveStringValue
	fallback     *flags.SelectiveStringValue
	v2depr       *flags.SelectiveStringsValue
}

// ownFlags are the appliance's additions to etcd's flag set; they are the
// only flags allowed next to --config-file.
var ownFlags = map[string]bool{"start-timeout": true}

// etcdmainIgnored are the flags etcdmain accepts and ignores (2.x leftovers).
var etcdmainIgnored = []string{
	"cluster-active-size", "cluster-remove-delay", "cluster-sync-interval",
	"config", "force", "max-result-buffer", "max-retry-attempts",
	"peer-heartbeat-interval", "peer-election-timeout", "retry-interval",
	"snapshot", "v", "vv",
}

func newConfig() *Config {
	c := &Config{Etcd: embed.NewConfig()}
	c.defaultInitialCluster = c.Etcd.InitialCluster
	fs := flag.NewFlagSet("etcd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.Etcd.AddFlags(fs)
	// What etcdmain adds on top of embed (etcdmain/config.go newConfig).
	c.clusterState = flags.NewSelectiveStringValue(embed.ClusterStateFlagNew, embed.ClusterStateFlagExisting)
	c.fallback = flags.NewSelectiveStringValue("exit", "proxy")
	c.v2depr = flags.NewSelectiveStringsValue(
		string(cconfig.V2Depr1WriteOnly), string(cconfig.V2Depr1WriteOnlySkipCheck),
		string(cconfig.V2Depr1WriteOnlyDrop), string(cconfig.V2Depr2Gone))
	fs.StringVar(&c.ConfigFile, "config-file", "", "Path to a YAML configuration file; when set, no other etcd flag or ETCD_* variable may be given.")
	fs.Var(c.fallback, "discovery-fallback", fmt.Sprintf("Valid values include %q", c.fallback.Valids()))
	fs.Var(c.clusterState, "initial-cluster-state", "Initial cluster state ('new' when bootstrapping a new cluster or 'existing' when adding new members to an existing cluster).")
	fs.Var(c.v2depr, "v2-deprecation", "Ignored: etcd 3.7 enforces the default (deprecated, removed in 3.8).")
	fs.BoolVar(&c.ShowVersion, "version", false, "Print the version and exit.")
	for _, f := range etcdmainIgnored {
		fs.Var(&flags.IgnoredFlag{Name: f}, f, "")
	}
	// The appliance's own settings.
	fs.DurationVar(&c.StartTimeout, "start-timeout", DefaultStartTimeout,
		"Under systemd, the longest start-up (backend open, WAL replay, waiting for quorum) before giving up; 0 for no limit.")
	c.fs = fs
	return c
}

// FlagNames returns every flag the server accepts, sorted.
func FlagNames() []string {
	var names []string
	newConfig().fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	sort.Strings(names)
	return names
}

// CheckOption parses value as etcd's own flag name would, so that a value
// of the wrong type is refused where it is written (an inventory), not
// when the member starts.
func CheckOption(name, value string) error {
	c := newConfig()
	if c.fs.Lookup(name) == nil {
		return fmt.Errorf("no flag --%s", name)
	}
	return c.fs.Set(name, value)
}

// PrintDefaults writes the flag reference, as `etcd --help` shows it.
func PrintDefaults(w io.Writer) {
	c := newConfig()
	c.fs.SetOutput(w)
	c.fs.PrintDefaults()
}

func flagToEnv(name string) string { return flags.FlagToEnv(envPrefix, name) }

// configErrors collects problems so that the operator sees all of them.
type configErrors []string

func (e *configErrors) add(format string, args ...any) { *e = append(*e, fmt.Sprintf(format, args...)) }

func (e configErrors) err() error {
	if len(e) == 0 {
		return nil
	}
	errs := make([]error, 0, len(e)+1)
	for _, s := range e {
		errs = append(errs, errors.New(s))
	}
	return fmt.Errorf("%w:\n%w", ErrConfig, errors.Join(errs...))
}

// Parse reads the command line (without the program name) and the
// environment the way etcd 3.7 does, and stricter: unknown ETCD_*
// variables, a setting given both as flag and variable, and options whose
// meaning is gone are errors; options renamed since older releases are
// translated with a warning. It neither logs nor touches the disk.
func Parse(args, environ []string) (*Config, error) {
	c := newConfig()
	var errs configErrors

	args, gates := c.translateArgs(args, &errs)
	if err := c.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.ShowHelp = true
			return c, nil
		}
		errs.add("%v (run `etcd --help` for the list of flags)", err)
		return nil, errs.err()
	}
	if c.fs.NArg() != 0 {
		errs.add("%q is not a flag: every setting is written --name=value", c.fs.Arg(0))
	}
	if c.ShowVersion {
		return c, errs.err()
	}

	setByFlag := map[string]bool{}
	c.fs.Visit(func(f *flag.Flag) { setByFlag[f.Name] = true })
	env, envGates := c.readEnv(environ, setByFlag, &errs)
	gates = append(gates, envGates...)

	if c.ConfigFile == "" {
		c.ConfigFile = env["config-file"]
	}
	if c.ConfigFile != "" {
		c.checkConfigFileAlone(setByFlag, env, gates, &errs)
		if err := errs.err(); err != nil {
			return nil, err
		}
		return c, c.loadConfigFile(env)
	}

	// Apply variables in flag order so that errors come out in a fixed order.
	c.fs.VisitAll(func(f *flag.Flag) {
		v, ok := env[f.Name]
		if !ok {
			return
		}
		if err := c.fs.Set(f.Name, v); err != nil {
			errs.add("invalid value for %s: %v", flagToEnv(f.Name), err)
		}
	})
	c.applyGates(gates, setByFlag, env, &errs)
	if err := errs.err(); err != nil {
		return nil, err
	}
	c.copyBack()
	return c, nil
}

// translateArgs rewrites legacy flags. It walks the arguments the way
// package flag does, so a value that merely looks like a flag is left alone.
func (c *Config) translateArgs(args []string, errs *configErrors) ([]string, []gateSetting) {
	var out []string
	var gates []gateSetting
	for i := 0; i < len(args); i++ {
		a := args[i]
		if len(a) < 2 || a[0] != '-' || a == "--" {
			out = append(out, args[i:]...)
			break
		}
		dashes := "-"
		body := a[1:]
		if body[0] == '-' {
			dashes, body = "--", body[1:]
		}
		name, value, hasValue := strings.Cut(body, "=")
		if o, ok := legacyOptions[name]; ok && c.fs.Lookup(name) == nil {
			switch o.kind {
			case removed:
				errs.add("--%s is not supported by etcd 3.7: %s", name, o.fix)
				if !hasValue && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
					i++ // its value
				}
				continue
			case renamed:
				c.Warnings = append(c.Warnings, o.describe(name))
				a = dashes + o.to
				if hasValue {
					a += "=" + value
				}
			case gate, debugLevel:
				c.Warnings = append(c.Warnings, o.describe(name))
				on := true
				if hasValue {
					b, err := strconv.ParseBool(value)
					if err != nil {
						errs.add("--%s=%s: want true or false", name, value)
						continue
					}
					on = b
				}
				if o.kind == gate {
					gates = append(gates, gateSetting{gate: o.to, on: on, from: "--" + name})
				} else if on {
					out = append(out, "--log-level=debug")
				}
				continue
			}
			name = o.to
		} else if strings.HasPrefix(name, "experimental-") && c.fs.Lookup(name) == nil {
			errs.add("--%s is not an etcd 3.7 option: 3.7 removed every --experimental-* flag; "+
				"see `etcd --help` for --feature-gates and the renamed options", name)
			continue
		}
		out = append(out, a)
		if !hasValue {
			if f := c.fs.Lookup(name); f != nil && !isBoolFlag(f) && i+1 < len(args) {
				i++
				out = append(out, args[i])
			}
		}
	}
	return out, gates
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

type gateSetting struct {
	gate string
	on   bool
	from string // the legacy option, for messages
}

// readEnv maps ETCD_* variables to flag names, translating legacy names
// and reporting unknown ones and conflicts with flags.
func (c *Config) readEnv(environ []string, setByFlag map[string]bool, errs *configErrors) (map[string]string, []gateSetting) {
	known := map[string]string{} // ETCD_X -> flag name
	c.fs.VisitAll(func(f *flag.Flag) { known[flagToEnv(f.Name)] = f.Name })

	env := map[string]string{}
	source := map[string]string{} // flag name -> variable that set it
	var gates []gateSetting
	var keys []string
	vals := map[string]string{}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(k, envPrefix+"_") {
			continue
		}
		keys = append(keys, k)
		vals[k] = v
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := vals[k]
		switch k {
		case "ETCD_UNSUPPORTED_ARCH":
			continue // read by etcd itself on unsupported architectures
		case "ETCD_VERSION":
			c.Warnings = append(c.Warnings, "ETCD_VERSION is ignored: it cannot configure etcd (some images set it for information)")
			continue
		}
		if uq, ok := unquote(v); ok {
			c.Warnings = append(c.Warnings, fmt.Sprintf("%s is wrapped in quotes that nothing removed (an env file read by a tool that does not unquote); the quotes were dropped", k))
			v = uq
		}
		name, isFlag := known[k]
		if !isFlag {
			if fix, gone := isRemovedEnv(k); gone {
				errs.add("%s is not supported by etcd 3.7: %s", k, fix)
				continue
			}
			old, isLegacy := legacyByEnv[k]
			if !isLegacy {
				errs.add("unknown variable %s: it is not an etcd 3.7 setting%s; fix or remove it where it is set (for the packaged service, /etc/etcd/etcd.conf)",
					k, suggest(k, known))
				continue
			}
			o := legacyOptions[old]
			switch o.kind {
			case removed:
				errs.add("%s is not supported by etcd 3.7: %s", k, o.fix)
				continue
			case renamed:
				c.Warnings = append(c.Warnings, strings.Replace(o.describe(old), "--"+old, k, 1))
				name = o.to
			case gate, debugLevel:
				c.Warnings = append(c.Warnings, strings.Replace(o.describe(old), "--"+old, k, 1))
				on := true
				if v != "" {
					b, err := strconv.ParseBool(v)
					if err != nil {
						errs.add("%s=%s: want true or false", k, v)
						continue
					}
					on = b
				}
				if o.kind == gate {
					gates = append(gates, gateSetting{gate: o.to, on: on, from: k})
					continue
				}
				if !on {
					continue
				}
				name, v = "log-level", "debug"
			}
		}
		if v == "" {
			// etcd ignores empty variables (CentOS-style templates list
			// them); so do we, after the spelling check above.
			continue
		}
		if setByFlag[name] {
			errs.add("--%s is given both as a flag and as %s in the environment: keep one "+
				"(flags live on the command line or in the unit's ExecStart=, variables in the env file)", name, k)
			continue
		}
		if prev, dup := source[name]; dup {
			errs.add("%s and %s both set --%s: keep only %s", prev, k, name, flagToEnv(name))
			continue
		}
		source[name] = k
		env[name] = v
	}
	return env, gates
}

// unquote reports a value still wrapped in matching quotes.
func unquote(v string) (string, bool) {
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		return v[1 : len(v)-1], true
	}
	return v, false
}

func (c *Config) checkConfigFileAlone(setByFlag map[string]bool, env map[string]string, gates []gateSetting, errs *configErrors) {
	var others []string
	for name := range setByFlag {
		if name != "config-file" && !ownFlags[name] {
			others = append(others, "--"+name)
		}
	}
	for name := range env {
		if name != "config-file" && !ownFlags[name] {
			others = append(others, flagToEnv(name))
		}
	}
	for _, g := range gates {
		others = append(others, g.from)
	}
	if len(others) == 0 {
		return
	}
	sort.Strings(others)
	errs.add("%s given with --config-file/%s, which makes etcd ignore every other flag and variable: "+
		"move the settings into %s or drop the config file",
		strings.Join(others, ", "), flagToEnv("config-file"), c.ConfigFile)
}

func (c *Config) loadConfigFile(env map[string]string) error {
	ec, err := embed.ConfigFromFile(c.ConfigFile)
	if err != nil {
		return fmt.Errorf("%w: reading %s: %w", ErrConfig, c.ConfigFile, err)
	}
	c.Etcd = ec
	if v, ok := env["start-timeout"]; ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrConfig, flagToEnv("start-timeout"), err)
		}
		c.StartTimeout = d
	}
	c.Etcd.V2Deprecation = cconfig.V2DeprDefault
	if c.Etcd.WarningUnaryRequestDuration == 0 {
		c.Etcd.WarningUnaryRequestDuration = embed.DefaultWarningUnaryRequestDuration
	}
	return nil
}

func (c *Config) applyGates(gates []gateSetting, setByFlag map[string]bool, env map[string]string, errs *configErrors) {
	if len(gates) == 0 {
		return
	}
	explicit := ""
	if setByFlag[embed.ServerFeatureGateFlagName] || env[embed.ServerFeatureGateFlagName] != "" {
		explicit = c.fs.Lookup(embed.ServerFeatureGateFlagName).Value.String()
	}
	for _, g := range gates {
		if strings.Contains(explicit, g.gate+"=") {
			errs.add("%s and --feature-gates both set %s: keep only --feature-gates=%s=%t", g.from, g.gate, g.gate, g.on)
			continue
		}
		if err := c.fs.Set(embed.ServerFeatureGateFlagName, fmt.Sprintf("%s=%t", g.gate, g.on)); err != nil {
			errs.add("%s: %v", g.from, err)
		}
	}
}

// copyBack moves values held by flag.Value implementations into the
// config, as etcdmain's configFromCmdLine does; skipped, they are silently
// ignored.
func (c *Config) copyBack() {
	fs, ec := c.fs, c.Etcd
	ec.ListenPeerUrls = flags.UniqueURLsFromFlag(fs, "listen-peer-urls")
	ec.AdvertisePeerUrls = flags.UniqueURLsFromFlag(fs, "initial-advertise-peer-urls")
	ec.ListenClientUrls = flags.UniqueURLsFromFlag(fs, "listen-client-urls")
	ec.ListenClientHttpUrls = flags.UniqueURLsFromFlag(fs, "listen-client-http-urls")
	ec.AdvertiseClientUrls = flags.UniqueURLsFromFlag(fs, "advertise-client-urls")
	ec.ListenMetricsUrls = flags.UniqueURLsFromFlag(fs, "listen-metrics-urls")
	ec.DiscoveryCfg.Endpoints = flags.UniqueStringsFromFlag(fs, "discovery-endpoints")
	ec.CORS = flags.UniqueURLsMapFromFlag(fs, "cors")
	ec.HostWhitelist = flags.UniqueStringsMapFromFlag(fs, "host-whitelist")
	ec.ClientTLSInfo.AllowedHostnames = flags.StringsFromFlag(fs, "client-cert-allowed-hostname")
	ec.PeerTLSInfo.AllowedCNs = flags.StringsFromFlag(fs, "peer-cert-allowed-cn")
	ec.PeerTLSInfo.AllowedHostnames = flags.StringsFromFlag(fs, "peer-cert-allowed-hostname")
	ec.CipherSuites = flags.StringsFromFlag(fs, "cipher-suites")
	ec.MaxConcurrentStreams = flags.Uint32FromFlag(fs, "max-concurrent-streams")
	ec.LogOutputs = flags.UniqueStringsFromFlag(fs, "log-outputs")
	ec.ClusterState = c.clusterState.String()
	// --v2-deprecation is accepted and ignored in 3.7.
	ec.V2Deprecation = cconfig.V2DeprDefault
	if ec.WarningUnaryRequestDuration == 0 {
		ec.WarningUnaryRequestDuration = embed.DefaultWarningUnaryRequestDuration
	}

	set := func(name string) bool { return ec.FlagsExplicitlySet[name] }
	fs.Visit(func(f *flag.Flag) { ec.FlagsExplicitlySet[f.Name] = true })
	// Listening on client URLs without advertising them: etcd refuses to
	// guess (embed.ErrUnsetAdvertiseClientURLsFlag).
	if set("listen-client-urls") && !set("advertise-client-urls") {
		ec.AdvertiseClientUrls = nil
	}
	if (ec.DNSCluster != "" || ec.DNSClusterServiceName != "" || len(ec.DiscoveryCfg.Endpoints) > 0) && !set("initial-cluster") {
		ec.InitialCluster = ""
	}
}

// Validate runs etcd's own validation (which also builds etcd's logger)
// and the checks etcdmain does before starting.
func (c *Config) Validate() error {
	if c.fallback.String() == "proxy" {
		return fmt.Errorf("%w: --discovery-fallback=proxy: %s", ErrConfig, fixV2Proxy)
	}
	// A DNS name in a listen URL is resolved on the host when the member
	// starts (ResolveListen); etcd checks an address in its place.
	saved := make([][]url.URL, 0, 4)
	for _, list := range c.listenLists() {
		saved = append(saved, *list)
		var stand []url.URL
		for _, u := range *list {
			if named(u) {
				_, port, _ := net.SplitHostPort(u.Host)
				u.Host = net.JoinHostPort("192.0.2.1", port)
			}
			stand = append(stand, u)
		}
		*list = stand
	}
	err := c.Etcd.Validate()
	for i, list := range c.listenLists() {
		*list = saved[i]
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}

// Secrets returns the configured values that must never reach a log line.
func (c *Config) Secrets() []string {
	var s []string
	d := c.Etcd.DiscoveryCfg
	for _, v := range []string{d.Auth.Password, d.Token} {
		if v != "" {
			s = append(s, v)
		}
	}
	if _, pw, ok := strings.Cut(d.Auth.Username, ":"); ok && pw != "" {
		s = append(s, pw, d.Auth.Username)
	}
	return s
}

// suggest names the closest known variable, for typos.
func suggest(k string, known map[string]string) string {
	names := make([]string, 0, len(known))
	for name := range known {
		names = append(names, name)
	}
	sort.Strings(names)
	if best, ok := suggestpkg.Closest(k, names, 3); ok {
		return fmt.Sprintf(" (did you mean %s?)", best)
	}
	return ""
}
