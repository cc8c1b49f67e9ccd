// Package units holds the systemd units the package ships, embedded so the
// packager and the installer use the very bytes that are tested.
package units

import "embed"

// FS holds etcd.service and etcd-grpc-proxy.service.
//
//go:embed *.service
var FS embed.FS

// Names of the shipped units.
const (
	Etcd      = "etcd.service"
	GRPCProxy = "etcd-grpc-proxy.service"
)
