// Package node runs one etcd member as a systemd-native service on top of
// etcd's embed package.
//
// It reads the configuration operators already have (flags, ETCD_*
// variables and YAML files as etcd 3.7 accepts them, plus older spellings
// translated or refused with the fix), and tells systemd the truth about
// the member: READY only once the member's own /readyz answers, STATUS at
// every phase, EXTEND_TIMEOUT_USEC while start-up goes on, WATCHDOG while
// the local member is alive (never gated on quorum), STOPPING on SIGTERM,
// and distinct exit codes for configuration errors and removal.
package node
