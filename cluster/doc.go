// Package cluster talks to a running etcd cluster through its client API:
// who the members are and how each one is (status, health, served
// certificates), membership changes (learners, promotion through the
// leader, removal), authentication, and the checks that keep a change
// from costing quorum. Membership is the interface workflows use;
// package cluster/clustertest has a fake for their unit tests.
package cluster
