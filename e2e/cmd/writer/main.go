// Command e2e-writer is the system test's client, run inside a test host:
// it writes through every fault and checks no acknowledged write is lost.
package main

import (
	"os"

	"github.com/etcd-appliance/appliance/e2e/writer"
)

func main() { os.Exit(writer.Main(os.Args[1:], os.Stdout, os.Stderr)) }
