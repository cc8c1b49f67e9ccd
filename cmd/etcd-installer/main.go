// Command etcd-installer provisions and operates etcd clusters from one
// TOML inventory.
package main

import (
	"os"

	"github.com/etcd-appliance/appliance/cli/installer"
)

func main() { os.Exit(installer.Main(os.Args[1:], os.Stdout, os.Stderr)) }
