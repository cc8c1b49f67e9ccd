package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Defragment defragments one member's backend (endpoint: its client URL).
// The member serves no reads or writes until it returns.
func (c *Client) Defragment(ctx context.Context, endpoint string) error {
	_, err := c.c.Defragment(ctx, endpoint)
	return err
}

// MoveLeader hands leadership from the leader (leaderEndpoint, its client
// URL: etcd takes the request only there) to member to.
func (c *Client) MoveLeader(ctx context.Context, leaderEndpoint string, to uint64) error {
	cli, err := clientv3.New(c.cr.Config([]string{leaderEndpoint}))
	if err != nil {
		return err
	}
	defer cli.Close()
	_, err = cli.MoveLeader(ctx, to)
	return err
}

// Compact compacts the key space up to rev, physically (it returns once
// every member has applied it), as `etcdctl compact --physical` does.
func (c *Client) Compact(ctx context.Context, rev int64) error {
	_, err := c.c.Compact(ctx, rev, clientv3.WithCompactPhysical())
	return err
}

// Revision is the cluster's current revision (a linearizable read).
func (c *Client) Revision(ctx context.Context) (int64, error) {
	resp, err := c.c.Get(ctx, "/etcd-appliance/revision", clientv3.WithCountOnly())
	if err != nil {
		return 0, err
	}
	return resp.Header.Revision, nil
}

// Alarm is a raised alarm: its kind (NOSPACE, CORRUPT) and the member
// that raised it.
type Alarm struct {
	Kind   string
	Member uint64
}

// Alarms lists the cluster's raised alarms.
func (c *Client) Alarms(ctx context.Context) ([]Alarm, error) {
	resp, err := c.c.AlarmList(ctx)
	if err != nil {
		return nil, err
	}
	var out []Alarm
	for _, a := range resp.Alarms {
		out = append(out, Alarm{Kind: a.Alarm.String(), Member: a.MemberID})
	}
	return out, nil
}

// DisarmNoSpace disarms every NOSPACE alarm (and no other).
func (c *Client) DisarmNoSpace(ctx context.Context) error {
	alarms, err := c.Alarms(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, a := range alarms {
		if a.Kind != pb.AlarmType_NOSPACE.String() {
			continue
		}
		if _, err := c.c.AlarmDisarm(ctx, &clientv3.AlarmMember{MemberID: a.Member, Alarm: pb.AlarmType_NOSPACE}); err != nil {
			errs = append(errs, fmt.Errorf("disarming NOSPACE of member %x: %w", a.Member, err))
		}
	}
	return errors.Join(errs...)
}

// LeaderSelf tells a member's scheduled job whether it is the one to act:
// when member name is the leader, its row; otherwise why it skips ("etcd1
// is not the leader; etcd0 is, and " + does).
func LeaderSelf(ctx context.Context, c *Client, name, does string) (*EndpointRow, string, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	members, err := c.Members(cctx)
	if err != nil {
		return nil, "", fmt.Errorf("the cluster does not answer: %w", err)
	}
	var me *Member
	for i := range members {
		if members[i].Name == name {
			me = &members[i]
		}
	}
	if me == nil || len(me.ClientURLs) == 0 {
		return nil, "", fmt.Errorf("the cluster has no member %s serving clients", name)
	}
	st := c.Status(cctx, me.ClientURLs[0])
	if st.Err != nil {
		return nil, "", fmt.Errorf("member %s does not answer: %w", name, st.Err)
	}
	if st.Leader != st.ID {
		leader := fmt.Sprintf("%x", st.Leader)
		for _, m := range members {
			if m.ID == st.Leader {
				leader = m.Name
			}
		}
		if st.Leader == 0 {
			return nil, "", fmt.Errorf("the cluster has no leader")
		}
		return nil, fmt.Sprintf("%s is not the leader; %s is, and %s", name, leader, does), nil
	}
	return &EndpointRow{Name: name, Endpoint: me.ClientURLs[0], Version: st.Version, DBSize: st.DBSize, Leader: true, Healthy: true}, "", nil
}

// HeldLock is a held maintenance lock.
type HeldLock interface {
	// Check confirms it is still held (just before the disruption).
	Check(ctx context.Context) error
	// Waiters counts the others queued for it.
	Waiters(ctx context.Context) (int, error)
	Release(ctx context.Context) error
}

// Locker takes the maintenance lock through endpoints (members that stay
// up while it is held).
type Locker func(ctx context.Context, endpoints []string, holder string, wait time.Duration, waiting func(holder string)) (HeldLock, error)

// EtcdLocker is the Locker over etcd itself, with credentials cr.
func EtcdLocker(cr Credentials) Locker {
	return func(ctx context.Context, endpoints []string, holder string, wait time.Duration, waiting func(string)) (HeldLock, error) {
		c, err := DialWith(endpoints, cr)
		if err != nil {
			return nil, err
		}
		h, err := Lock(ctx, c.KV(), holder, wait, waiting)
		if err != nil {
			c.Close()
			return nil, err
		}
		return heldOver{h, c}, nil
	}
}

type heldOver struct {
	h *Held
	c *Client
}

func (e heldOver) Check(ctx context.Context) error          { return e.h.Check(ctx) }
func (e heldOver) Waiters(ctx context.Context) (int, error) { return e.h.Waiters(ctx) }
func (e heldOver) Release(ctx context.Context) error {
	return errors.Join(e.h.Release(ctx), e.c.Close())
}

// PrefixSize is the data under one prefix.
type PrefixSize struct {
	Prefix string
	Bytes  int64
	Keys   int64
}

// PrefixSizes sums key and value sizes by prefix (a key up to its third
// '/' when it starts with one, else up to its second: /registry/events/,
// app/config/; a key with fewer up to its last), reading the key
// space in small pages (values may be 1.5 MiB each). partial says ctx
// ended before the last key.
func (c *Client) PrefixSizes(ctx context.Context) (sizes []PrefixSize, partial bool, err error) {
	by := map[string]*PrefixSize{}
	var order []string
	key := "\x00"
	var rev int64
	for {
		opts := []clientv3.OpOption{clientv3.WithFromKey(), clientv3.WithLimit(64), clientv3.WithSerializable()}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := c.c.Get(ctx, key, opts...)
		if err != nil {
			partial = true
			break
		}
		rev = resp.Header.Revision
		for _, kv := range resp.Kvs {
			p := prefixOf(string(kv.Key))
			s, ok := by[p]
			if !ok {
				s = &PrefixSize{Prefix: p}
				by[p] = s
				order = append(order, p)
			}
			s.Bytes += int64(len(kv.Key) + len(kv.Value))
			s.Keys++
		}
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	for _, p := range order {
		sizes = append(sizes, *by[p])
	}
	if partial && len(sizes) == 0 {
		return nil, true, ctx.Err()
	}
	return sizes, partial, nil
}

func prefixOf(key string) string {
	n := 2
	if strings.HasPrefix(key, "/") {
		n = 3
	}
	end := -1
	for i := 0; i < len(key) && n > 0; i++ {
		if key[i] == '/' {
			end, n = i, n-1
		}
	}
	if end < 0 {
		return key
	}
	return key[:end+1]
}
