// Command etcd-package builds the etcd deb and rpm packages (make package).
package main

import (
	"os"

	"github.com/etcd-appliance/appliance/packaging"
)

func main() { os.Exit(packaging.Main(os.Args[1:], os.Stdout, os.Stderr)) }
