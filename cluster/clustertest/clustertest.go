// Package clustertest has a fake of cluster.Membership for unit tests of
// orchestration logic; tests of real behaviour run etcd members on
// loopback.
package clustertest

import (
	"context"
	"fmt"
	"sort"

	"github.com/etcd-appliance/appliance/cluster"
)

// Membership answers from a fixed member list; unhealthy endpoints fail
// Healthy. It records the changes asked of it.
type Membership struct {
	List      []cluster.Member
	Unhealthy map[string]bool
	Err       error
	Removed   []uint64
	Promoted  []uint64
	Added     [][]string
	// Statuses answer Status by endpoint (else an empty status).
	Statuses map[string]cluster.EndpointStatus
}

func (f *Membership) Members(context.Context) ([]cluster.Member, error) {
	ms := append([]cluster.Member(nil), f.List...)
	sort.Slice(ms, func(i, j int) bool { return ms[i].Name < ms[j].Name })
	return ms, f.Err
}
func (f *Membership) AddLearner(_ context.Context, urls []string) (cluster.Member, error) {
	f.Added = append(f.Added, urls)
	m := cluster.Member{ID: uint64(1000 + len(f.Added)), PeerURLs: urls, Learner: true}
	f.List = append(f.List, m)
	return m, nil
}
func (f *Membership) Promote(_ context.Context, id uint64) error {
	f.Promoted = append(f.Promoted, id)
	return nil
}
func (f *Membership) Remove(_ context.Context, id uint64) error {
	f.Removed = append(f.Removed, id)
	return nil
}
func (f *Membership) Status(_ context.Context, ep string) cluster.EndpointStatus {
	if st, ok := f.Statuses[ep]; ok {
		return st
	}
	if f.Statuses != nil {
		// With statuses given, an endpoint without one is down.
		return cluster.EndpointStatus{Endpoint: ep, Err: fmt.Errorf("%s: context deadline exceeded", ep)}
	}
	return cluster.EndpointStatus{Endpoint: ep}
}
func (f *Membership) Healthy(_ context.Context, ep string) error {
	if f.Unhealthy[ep] {
		return fmt.Errorf("%s: context deadline exceeded", ep)
	}
	return nil
}
func (f *Membership) Close() error                                          { return nil }
func (f *Membership) HashKV(context.Context, string, int64) (uint32, error) { return 42, nil }
