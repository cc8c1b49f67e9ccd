// Command etcdctl is upstream etcdctl, built from the same module versions
// as the server.
package main

import (
	"os"

	"github.com/etcd-appliance/appliance/cli/etcdctl"
)

func main() { os.Exit(etcdctl.Main(os.Args[1:])) }
