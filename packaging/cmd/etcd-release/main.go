// Command etcd-release turns built packages into signed apt and yum
// repositories (make release).
package main

import (
	"os"

	"github.com/etcd-appliance/appliance/packaging/repo"
)

func main() { os.Exit(repo.ReleaseMain(os.Args[1:], os.Stdout, os.Stderr)) }
