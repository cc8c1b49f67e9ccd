// Package etcdctl runs upstream etcdctl. Its root command is a package
// global in ctlv3, so it can run once per process, and it exits by itself.
package etcdctl

import (
	"os"

	"go.etcd.io/etcd/etcdctl/v3/ctlv3"
)

// Main runs etcdctl with args (without the program name).
func Main(args []string) int {
	// ctlv3 reads os.Args through cobra.
	os.Args = append([]string{"etcdctl"}, args...)
	ctlv3.MustStart()
	return 0
}
