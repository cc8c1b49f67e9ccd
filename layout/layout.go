// Package layout says where the appliance keeps its files on a host: the
// environment files its units read, the etcdctl settings, certificates and
// data. The server, etcdctl, the renderer and the workflows all agree on
// these paths through this package, which imports nothing of the
// appliance so that the server can use it.
package layout

// Files on every host.
const (
	// ConfDir holds every file the appliance writes outside data dirs.
	ConfDir = "/etc/etcd"
	// NodeConf is an etcd-node-HOST package's env file (the etcd package
	// owns EtcdConf).
	NodeConf = "/etc/etcd/node/etcd.conf"
	// EtcdConf is the member's environment file (EnvironmentFile= of
	// etcd.service).
	EtcdConf = "/etc/etcd/etcd.conf"
	// EtcdctlEnv points etcdctl on the host at the cluster.
	EtcdctlEnv = "/etc/etcd/etcdctl.env"
	// ProxyConf is the gRPC proxy's environment file.
	ProxyConf = "/etc/etcd/grpc-proxy.conf"
	// EtcdDropInDir holds drop-ins for etcd.service.
	EtcdDropInDir = "/etc/systemd/system/etcd.service.d"
	// DataDirDropIn opens a data dir outside DataDir to the unit's sandbox.
	DataDirDropIn = EtcdDropInDir + "/10-data-dir.conf"
	// ProxyFlagsVar carries the proxy's flags; its unit expands it.
	ProxyFlagsVar = "ETCD_GRPC_PROXY_FLAGS"
)

// Directories on every host.
const (
	// DataDir is the parent of members' data dirs (StateDirectory=etcd).
	DataDir = "/var/lib/etcd"
	// PKIDir holds the host's certificates and keys.
	PKIDir = "/etc/etcd/pki"
	// ProxyDataDir is the gRPC proxy's state (StateDirectory=).
	ProxyDataDir = "/var/lib/etcd-grpc-proxy"
	// BackupDir holds scheduled backups by default.
	BackupDir = "/var/lib/etcd-backup"
)

// Scheduled backups.
const (
	// BackupConf is etcd-backup.service's environment file.
	BackupConf = "/etc/etcd/backup.conf"
	// BackupTimerDropIn sets the timer's schedule.
	BackupTimerDropIn = "/etc/systemd/system/etcd-backup.timer.d/10-schedule.conf"
	// BackupServiceDropIn opens a backup dir other than BackupDir to the
	// service's sandbox.
	BackupServiceDropIn = "/etc/systemd/system/etcd-backup.service.d/10-dir.conf"
	// BackupStatus is where etcd-backup.service records the last good
	// backup; the server exports it as metrics (it is etcd's state dir,
	// which etcd may read whatever the backup dir).
	BackupStatus = "/var/lib/etcd/backup-status.json"
	// BackupSSHKey (0600 root, made by apply) logs the member into the
	// [backup] copy_to host; BackupSSHKey.pub is what that host
	// authorizes (`etcd-installer backup keys` lists them).
	BackupSSHKey = "/etc/etcd/backup-ssh-key"
	// BackupKnownHosts holds the copy_to host's keys, from the operator's
	// known_hosts at apply.
	BackupKnownHosts = "/etc/etcd/backup-known_hosts"
)

// Scheduled maintenance.
const (
	// MaintenanceConf is etcd-maintenance.service's environment file.
	MaintenanceConf = "/etc/etcd/maintenance.conf"
	// DefragmentEnv is an environment file etcd.service reads when it
	// exists: a scheduled maintenance writes the defragment-at-start
	// threshold into it for the one restart it makes. It lives in
	// etcd-maintenance.service's RuntimeDirectory, so systemd removes it
	// when the run ends however it ends, and no other restart (an
	// upgrade, a reboot) waits for a defragmentation.
	DefragmentEnv = "/run/etcd-maintenance/defragment.env"
	// MaintenanceTimerDropIn sets the timer's schedule.
	MaintenanceTimerDropIn = "/etc/systemd/system/etcd-maintenance.timer.d/10-schedule.conf"
)
