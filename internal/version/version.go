// Package version holds the appliance's own version, stamped at link time
// by the Makefile, next to the etcd version it is built from.
package version

import "go.etcd.io/etcd/api/v3/version"

// Version and Commit are set with -ldflags -X by the Makefile; a plain
// `go build` leaves the development defaults.
var (
	Version = "0.0.0-dev"
	Commit  = "unknown"
)

// Etcd is the etcd version the binaries are built from.
var Etcd = version.Version

// String is the one-line description printed by every binary's --version.
func String() string {
	return "etcd-appliance " + Version + " (commit " + Commit + ", etcd " + Etcd + ")"
}
