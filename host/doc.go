// Package host reaches one machine: it runs commands there (Runner: this
// machine, or over SSH with host keys checked), reads and writes its files
// (FS: directly, or through commands, always atomically and never
// world-readable on the way) and drives its service manager (Services:
// systemd, or child processes with a real notify socket standing in for
// it). Workflows depend on these interfaces only, never on SSH or systemd
// directly; package host/hosttest has fakes for their unit tests.
package host
