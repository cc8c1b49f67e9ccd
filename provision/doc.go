// Package provision makes hosts become what an inventory says and keeps
// them there: it writes files, drives systemd and changes etcd membership.
// Every side effect goes through a small interface (Runner, FS, Services,
// Membership) with a real implementation and a scripted fake for unit
// tests; package installer stays pure.
package provision
