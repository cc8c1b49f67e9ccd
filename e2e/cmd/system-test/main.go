// Command system-test boots real systemd hosts in containers and runs the
// appliance on them (make system-test; root).
package main

import (
	"os"

	"github.com/etcd-appliance/appliance/e2e"
)

func main() { os.Exit(e2e.Main(os.Args[1:], os.Stdout, os.Stderr)) }
