// Package etcdctl runs upstream etcdctl. Its root command is a package
// global in ctlv3, so it can run once per process, and it exits by itself.
//
// On a host provisioned by etcd-installer, etcdctl also reads the host's
// /etc/etcd/etcdctl.env (endpoints and the TLS files), so it works there
// without flags, as operators expect of a packaged etcdctl.
package etcdctl

import (
	"bytes"
	"fmt"
	"os"
	"strings"

	"go.etcd.io/etcd/etcdctl/v3/ctlv3"

	"github.com/etcd-appliance/appliance/cli/etcdctl/v2compat"
	"github.com/etcd-appliance/appliance/internal/envfile"
	"github.com/etcd-appliance/appliance/layout"
)

// Main runs etcdctl with args (without the program name). A command line
// of etcd 2's etcdctl is answered with its v3 equivalent (v2compat), which
// runs when it means the same.
func Main(args []string) int {
	set, unset, notes := v2compat.Env(os.Getenv)
	for _, n := range notes {
		fmt.Fprintln(os.Stderr, n)
	}
	for _, k := range unset {
		os.Unsetenv(k)
	}
	for k, v := range set {
		os.Setenv(k, v)
	}
	if a, ok := v2compat.Translate(args); ok {
		fmt.Fprint(os.Stderr, a.Message())
		if !a.Run {
			return a.Exit
		}
		args = a.Commands[0].Args
	}
	if data, err := os.ReadFile(layout.EtcdctlEnv); err == nil {
		for _, kv := range HostEnv(data, args, os.Getenv) {
			k, v, _ := strings.Cut(kv, "=")
			os.Setenv(k, v)
		}
	}
	// ctlv3 reads os.Args through cobra.
	os.Args = append([]string{"etcdctl"}, args...)
	ctlv3.MustStart()
	return 0
}

// HostEnv returns the ETCDCTL_* settings of a host's etcdctl.env that
// apply: none when the user points etcdctl elsewhere (ETCDCTL_ENDPOINTS or
// --endpoints), and never one the user set as a variable or a flag.
func HostEnv(data []byte, args []string, getenv func(string) string) []string {
	if getenv("ETCDCTL_ENDPOINTS") != "" || hasFlag(args, "endpoints") {
		return nil
	}
	entries, err := envfile.Parse(layout.EtcdctlEnv, bytes.NewReader(data))
	if err != nil {
		return nil
	}
	var out []string
	for _, kv := range envfile.Environ(entries) {
		k, _, _ := strings.Cut(kv, "=")
		name, ok := strings.CutPrefix(k, "ETCDCTL_")
		if !ok || getenv(k) != "" || hasFlag(args, strings.ReplaceAll(strings.ToLower(name), "_", "-")) {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func hasFlag(args []string, name string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if a == "--"+name || strings.HasPrefix(a, "--"+name+"=") {
			return true
		}
	}
	return false
}
