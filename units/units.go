// Package units holds the systemd units the package ships, embedded so the
// packager and the installer use the very bytes that are tested.
package units

import "embed"

// FS holds etcd.service, etcd-grpc-proxy.service, the scheduled backup's
// etcd-backup.service and etcd-backup.timer, and the scheduled
// maintenance's etcd-maintenance.service and etcd-maintenance.timer.
//
//go:embed *.service *.timer
var FS embed.FS

// Names of the shipped units.
const (
	Etcd      = "etcd.service"
	GRPCProxy = "etcd-grpc-proxy.service"
	Backup    = "etcd-backup.service"
	// BackupTimer starts Backup on the inventory's schedule.
	BackupTimer = "etcd-backup.timer"
	Maintenance = "etcd-maintenance.service"
	// MaintenanceTimer starts Maintenance on the inventory's schedule.
	MaintenanceTimer = "etcd-maintenance.timer"
)
