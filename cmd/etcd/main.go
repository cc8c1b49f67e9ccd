// Command etcd is the appliance's multi-call binary: the etcd server, and
// etcdctl, etcdutl or etcd-installer when invoked under those names (the
// package installs them as links), as busybox and k3s do.
package main

import (
	"os"
	"path/filepath"

	"github.com/etcd-appliance/appliance/cli/etcdctl"
	"github.com/etcd-appliance/appliance/cli/etcdutl"
	"github.com/etcd-appliance/appliance/cli/installer"
	"github.com/etcd-appliance/appliance/node"
)

func main() {
	switch filepath.Base(os.Args[0]) {
	case "etcdctl":
		os.Exit(etcdctl.Main(os.Args[1:]))
	case "etcdutl":
		os.Exit(etcdutl.Main(os.Args[1:]))
	case "etcd-installer":
		os.Exit(installer.Main(os.Args[1:], os.Stdout, os.Stderr))
	default:
		os.Exit(node.Main(os.Args, os.Stdout, os.Stderr))
	}
}
