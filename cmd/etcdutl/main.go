// Command etcdutl is upstream etcdutl, assembled from its exported
// commands.
package main

import (
	"os"

	"github.com/etcd-appliance/appliance/cli/etcdutl"
)

func main() { os.Exit(etcdutl.Main(os.Args[1:])) }
