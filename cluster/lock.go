package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// MaintenanceLock is the prefix of the cluster-wide lock that every
// disruptive maintenance of one member takes (a package upgrade's restart,
// and later defragmentation), so that two hosts never do it at once. It is
// an etcd mutex (`etcdctl lock` uses the same scheme): a key per waiter
// under the prefix, held by the oldest, each on a lease, so a holder that
// dies releases it when its lease expires. Each key's value names its
// holder: `etcdctl get --prefix /etcd-appliance/locks/maintenance/`.
const MaintenanceLock = "/etcd-appliance/locks/maintenance/"

// LockTTL is the lease of a held lock: how long a crashed holder keeps
// the others waiting.
const LockTTL = 30 * time.Second

// ErrLockTimeout means the lock was not free before the deadline.
var ErrLockTimeout = errors.New("the maintenance lock was not free in time")

// Held is a held lock.
type Held struct {
	s *concurrency.Session
	m *concurrency.Mutex
}

// ErrLockLost means the lock's lease ended while it was held (its
// keepalives did not reach the cluster for LockTTL): another may hold it.
var ErrLockLost = errors.New("the maintenance lock was lost")

// Check confirms the lock is still held: its session alive and its key
// still the oldest (etcd compares the key's creation revision).
func (h *Held) Check(ctx context.Context) error {
	select {
	case <-h.s.Done():
		return fmt.Errorf("%w: its lease expired", ErrLockLost)
	default:
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// The Get is what makes the answer current: etcd serves a
	// transaction of compares alone, or of serializable reads only, from
	// the local member's state without a linearizable read, and a member
	// behind the leader (one just restarted, catching up) then says the
	// key is gone when it has not yet applied it, or held when it was
	// deleted since.
	// A linearizable read needs a leader: an election under way answers
	// Unavailable or times out, which is not the lock lost. Asked again
	// within the bound; still unanswered, the lock is unconfirmed (the
	// callers refuse to disrupt anything either way).
	for {
		actx, acancel := context.WithTimeout(ctx, 3*time.Second)
		resp, err := h.s.Client().Txn(actx).If(h.m.IsOwner()).Then(clientv3.OpGet(h.m.Key(), clientv3.WithCountOnly())).Commit()
		acancel()
		if err == nil && !resp.Succeeded {
			return fmt.Errorf("%w: its key is gone", ErrLockLost)
		}
		if err == nil {
			return nil
		}
		if code := status.Code(err); (code != codes.Unavailable && code != codes.DeadlineExceeded && !errors.Is(err, context.DeadlineExceeded)) || ctx.Err() != nil {
			return fmt.Errorf("the maintenance lock could not be confirmed: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the maintenance lock could not be confirmed: %w", err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Waiters counts the others queued for the lock behind this holder.
func (h *Held) Waiters(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := h.s.Client().Get(ctx, MaintenanceLock, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, err
	}
	return max(int(resp.Count)-1, 0), nil
}

// Release frees the lock (and ends its lease, so even a failed unlock
// frees it within LockTTL).
func (h *Held) Release(ctx context.Context) error {
	err := h.m.Unlock(ctx)
	return errors.Join(err, h.s.Close())
}

// Lock takes the maintenance lock as holder, waiting up to wait; while it
// waits, waiting hears who holds it (when that changes). Connect the
// client to members that stay up: the lease is kept alive through them.
func Lock(ctx context.Context, c *clientv3.Client, holder string, wait time.Duration, waiting func(holder string)) (*Held, error) {
	// Every request is bounded: the client waits for a connection by
	// default, and a package script must never hang on an unreachable
	// member. The lease itself lives on with ctx.
	lctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	gctx, gcancel := context.WithTimeout(lctx, 10*time.Second)
	lease, err := c.Grant(gctx, int64(LockTTL/time.Second))
	gcancel()
	if err != nil {
		return nil, fmt.Errorf("lock %s: lease: %w", MaintenanceLock, err)
	}
	s, err := concurrency.NewSession(c, concurrency.WithLease(lease.ID), concurrency.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("lock %s: lease: %w", MaintenanceLock, err)
	}
	m := concurrency.NewMutex(s, MaintenanceLock)
	done := make(chan struct{})
	defer close(done)
	if waiting != nil {
		go watchHolder(lctx, c, s.Lease(), waiting, done)
	}
	if err := m.Lock(lctx); err != nil {
		s.Close()
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return nil, fmt.Errorf("%w (waited %s; held by %s; its holder frees it when done, or its lease within %s if it died: etcdctl get --prefix %s)",
				ErrLockTimeout, wait, Holder(ctx, c), LockTTL, MaintenanceLock)
		}
		return nil, fmt.Errorf("lock %s: %w", MaintenanceLock, err)
	}
	// The mutex's key orders waiters by creation; its value is free to
	// say who holds it.
	pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
	_, err = c.Put(pctx, m.Key(), holder, clientv3.WithLease(s.Lease()))
	pcancel()
	if err != nil {
		h := &Held{s: s, m: m}
		return nil, errors.Join(fmt.Errorf("lock %s: naming the holder: %w", MaintenanceLock, err), h.Release(ctx))
	}
	return &Held{s: s, m: m}, nil
}

// Holder names who holds the maintenance lock ("nobody" when it is free).
func Holder(ctx context.Context, c *clientv3.Client) string {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	resp, err := c.Get(ctx, MaintenanceLock, clientv3.WithFirstCreate()...)
	switch {
	case err != nil:
		return fmt.Sprintf("unknown (%v)", err)
	case len(resp.Kvs) == 0:
		return "nobody"
	case len(resp.Kvs[0].Value) == 0:
		return fmt.Sprintf("lease %x (no name yet)", resp.Kvs[0].Lease)
	}
	return string(resp.Kvs[0].Value)
}

// watchHolder reports the lock's holder while Lock waits, each time it
// changes (polled: a waiter only needs to say whom it waits for).
func watchHolder(ctx context.Context, c *clientv3.Client, own clientv3.LeaseID, waiting func(string), done <-chan struct{}) {
	last := ""
	for i := 0; ; i++ {
		if i > 0 {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
		resp, err := c.Get(ctx, MaintenanceLock, clientv3.WithFirstCreate()...)
		if err != nil || len(resp.Kvs) == 0 || clientv3.LeaseID(resp.Kvs[0].Lease) == own {
			continue
		}
		h := string(resp.Kvs[0].Value)
		if h == "" {
			h = fmt.Sprintf("lease %x", resp.Kvs[0].Lease)
		}
		// Said when the holder changes, and every minute: a long wait
		// is not a silent one.
		if h != last || i%60 == 0 {
			select {
			case <-done:
				return
			default:
			}
			waiting(h)
			last = h
		}
	}
}
