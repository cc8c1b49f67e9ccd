// Package apply makes hosts what the inventory says: Host applies one host
// in named steps (render, preflight, plan, files, units, start), All and
// Every apply many (new members started together, changed running members
// restarted one at a time, the leader last). A dry run through the same
// steps is what `etcd-installer plan` shows as a diff.
package apply
