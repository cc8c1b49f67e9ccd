// Package e2e is the system test (`make system-test`): on real systemd
// hosts booted by package testbed, it installs the packages with dpkg and
// rpm, provisions a cluster over SSH from a control host, and runs the
// cluster suite, a table of scenarios (scenarios.go) grouped by file:
// provisioning, faults under the writer (package writer), day-2
// operations, and what comes after the writer.
package e2e
