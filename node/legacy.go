package node

import (
	"flag"
	"fmt"
	"sort"
	"strings"

	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/features"
)

// legacyKind says what became of an option written for an older etcd.
type legacyKind int

const (
	// renamed: same meaning under a new name; translated with a warning.
	renamed legacyKind = iota
	// gate: a boolean that became a feature gate in 3.6.
	gate
	// debugLevel: 3.4's --debug, which survives as --log-level=debug.
	debugLevel
	// removed: the meaning is gone; refused with the replacement named.
	removed
)

type legacyOption struct {
	kind legacyKind
	to   string // new flag name (renamed) or feature gate (gate)
	fix  string // for removed options: what to do instead
}

const (
	fixV2API = "the v2 API was removed in etcd 3.6: drop the option; " +
		"clients use the v3 API (etcdctl does by default) and a 3.5 data dir upgrades in place"
	fixV2Proxy = "the v2 proxy was removed in etcd 3.6: run a gRPC proxy instead " +
		"(`etcd grpc-proxy start --endpoints=...`, or a [[proxy]] table in the inventory)"
	fixV2Discovery = "v2 discovery URLs (discovery.etcd.io) were removed in etcd 3.6: " +
		"use v3 discovery (--discovery-endpoints and --discovery-token), DNS SRV (--discovery-srv) or a static --initial-cluster"
)

// legacyOptions maps flag names from etcd 2.x-3.6 guides to what 3.7 does
// with them. The experimental table follows the 3.6 deprecation list
// (etcdmain/config.go deprecatedFlags and features.ExperimentalFlagToFeatureMap
// in etcd v3.6), all of which 3.7 deleted.
var legacyOptions = map[string]legacyOption{
	// 3.4/3.5 spellings.
	"log-output":   {kind: renamed, to: "log-outputs"},
	"ca-file":      {kind: renamed, to: "trusted-ca-file"},
	"peer-ca-file": {kind: renamed, to: "peer-trusted-ca-file"},
	"debug":        {kind: debugLevel, to: "log-level"},
	"experimental-backend-bbolt-freelist-type": {kind: renamed, to: "backend-bbolt-freelist-type"},

	// 3.6 experimental options that kept their meaning under a plain name.
	"experimental-compact-hash-check-time":              {kind: renamed, to: "compact-hash-check-time"},
	"experimental-corrupt-check-time":                   {kind: renamed, to: "corrupt-check-time"},
	"experimental-compaction-batch-limit":               {kind: renamed, to: "compaction-batch-limit"},
	"experimental-watch-progress-notify-interval":       {kind: renamed, to: "watch-progress-notify-interval"},
	"experimental-warning-apply-duration":               {kind: renamed, to: "warning-apply-duration"},
	"experimental-warning-unary-request-duration":       {kind: renamed, to: "warning-unary-request-duration"},
	"experimental-bootstrap-defrag-threshold-megabytes": {kind: renamed, to: "bootstrap-defrag-threshold-megabytes"},
	"experimental-memory-mlock":                         {kind: renamed, to: "memory-mlock"},
	"experimental-snapshot-catchup-entries":             {kind: renamed, to: "snapshot-catchup-entries"},
	"experimental-compaction-sleep-interval":            {kind: renamed, to: "compaction-sleep-interval"},
	"experimental-downgrade-check-time":                 {kind: renamed, to: "downgrade-check-time"},
	"experimental-peer-skip-client-san-verification":    {kind: renamed, to: "peer-skip-client-san-verification"},
	"experimental-max-learners":                         {kind: renamed, to: "max-learners"},
	"experimental-enable-distributed-tracing":           {kind: renamed, to: "enable-distributed-tracing"},
	"experimental-distributed-tracing-address":          {kind: renamed, to: "distributed-tracing-address"},
	"experimental-distributed-tracing-service-name":     {kind: renamed, to: "distributed-tracing-service-name"},
	"experimental-distributed-tracing-instance-id":      {kind: renamed, to: "distributed-tracing-instance-id"},
	"experimental-distributed-tracing-sampling-rate":    {kind: renamed, to: "distributed-tracing-sampling-rate"},

	// 3.6 experimental booleans that became feature gates.
	"experimental-initial-corrupt-check":             {kind: gate, to: string(features.InitialCorruptCheck)},
	"experimental-compact-hash-check-enabled":        {kind: gate, to: string(features.CompactHashCheck)},
	"experimental-txn-mode-write-with-shared-buffer": {kind: gate, to: string(features.TxnModeWriteWithSharedBuffer)},
	"experimental-enable-lease-checkpoint":           {kind: gate, to: string(features.LeaseCheckpoint)},
	"experimental-enable-lease-checkpoint-persist":   {kind: gate, to: string(features.LeaseCheckpointPersist)},
	"experimental-stop-grpc-service-on-defrag":       {kind: gate, to: string(features.StopGRPCServiceOnDefrag)},
	"experimental-set-member-localaddr":              {kind: gate, to: string(features.SetMemberLocalAddr)},

	// Gone for good.
	"enable-v2":                {kind: removed, fix: fixV2API},
	"experimental-enable-v2v3": {kind: removed, fix: fixV2API},
	"proxy":                    {kind: removed, fix: fixV2Proxy},
	"proxy-failure-wait":       {kind: removed, fix: fixV2Proxy},
	"proxy-refresh-interval":   {kind: removed, fix: fixV2Proxy},
	"proxy-dial-timeout":       {kind: removed, fix: fixV2Proxy},
	"proxy-write-timeout":      {kind: removed, fix: fixV2Proxy},
	"proxy-read-timeout":       {kind: removed, fix: fixV2Proxy},
	"discovery":                {kind: removed, fix: fixV2Discovery},
	"discovery-proxy":          {kind: removed, fix: fixV2Discovery},
	"log-package-levels": {kind: removed, fix: "per-package log levels were removed in etcd 3.5: " +
		"use --log-level (debug, info, warn, error)"},
}

// legacyByEnv indexes legacyOptions by environment variable name.
var legacyByEnv = func() map[string]string {
	m := make(map[string]string, len(legacyOptions))
	for name := range legacyOptions {
		m[flagToEnv(name)] = name
	}
	return m
}()

// isRemovedEnv reports whether an ETCD_* variable belongs to a removed
// family whose members are not all listed (ETCD_PROXY_* in 2.x guides).
func isRemovedEnv(key string) (string, bool) {
	if key == "ETCD_PROXY" || strings.HasPrefix(key, "ETCD_PROXY_") {
		return fixV2Proxy, true
	}
	return "", false
}

// LegacyNames returns the legacy option names, sorted, for documentation
// and tests.
func LegacyNames() []string {
	names := make([]string, 0, len(legacyOptions))
	for n := range legacyOptions {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (o legacyOption) describe(old string) string {
	switch o.kind {
	case renamed:
		return fmt.Sprintf("--%s is the pre-3.7 spelling of --%s (%s); translated, please update the configuration",
			old, o.to, flagToEnv(o.to))
	case gate:
		return fmt.Sprintf("--%s became the feature gate %s; translated to --feature-gates=%s=<value> (%s), please update the configuration",
			old, o.to, o.to, flagToEnv("feature-gates"))
	case debugLevel:
		return fmt.Sprintf("--%s was removed in etcd 3.5; translated to --log-level=debug (%s), please update the configuration",
			old, flagToEnv("log-level"))
	}
	return ""
}

// Legacy reports whether name (a flag name without dashes) belongs to an
// older etcd release, and what etcd 3.7 uses instead.
func Legacy(name string) (replacement string, ok bool) {
	o, ok := legacyOptions[name]
	if !ok {
		return "", false
	}
	switch o.kind {
	case renamed:
		return "renamed to " + o.to, true
	case gate:
		return "replaced by the feature gate " + o.to + " (options: \"feature-gates\" = \"" + o.to + "=true\")", true
	case debugLevel:
		return "replaced by log_level = \"debug\"", true
	}
	return o.fix, true
}

// Translate rewrites ETCD_* settings written for an older etcd (an env
// file of a distribution's package) into etcd 3.7's, as Parse reads them:
// renamed options get their new names, experimental booleans become
// ETCD_FEATURE_GATES, ETCD_DEBUG becomes ETCD_LOG_LEVEL=debug, quotes an
// env file left around values are dropped, empty ones omitted. An option
// whose meaning is gone is an error naming its replacement. The result is
// in etcd's flag order; warnings say what was translated.
func Translate(environ []string) (out, warnings []string, err error) {
	c := newConfig()
	var errs configErrors
	env, gates := c.readEnv(environ, map[string]bool{}, &errs)
	if err := errs.err(); err != nil {
		return nil, nil, err
	}
	var on []string
	for _, g := range gates {
		on = append(on, fmt.Sprintf("%s=%t", g.gate, g.on))
	}
	if len(on) > 0 {
		fg := embed.ServerFeatureGateFlagName
		if env[fg] != "" {
			on = append([]string{env[fg]}, on...)
		}
		env[fg] = strings.Join(on, ",")
	}
	c.fs.VisitAll(func(f *flag.Flag) {
		if v, ok := env[f.Name]; ok {
			out = append(out, flagToEnv(f.Name)+"="+v)
		}
	})
	if _, err := Parse(nil, out); err != nil {
		return nil, nil, err
	}
	return out, c.Warnings, nil
}
