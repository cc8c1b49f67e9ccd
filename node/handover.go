package node

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/server/v3/etcdserver"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// proposing are the client calls that go through raft as a proposal and
// that clientv3 never retries by itself (the lease calls it retries on
// Unavailable are left alone: an early answer would have it grant a
// second lease when the first was granted after all).
var proposing = map[string]bool{
	pb.KV_Put_FullMethodName:         true,
	pb.KV_DeleteRange_FullMethodName: true,
	pb.KV_Txn_FullMethodName:         true,
	pb.KV_Compact_FullMethodName:     true,
}

// handover answers, soon after a leader change, the writes the change
// may have lost. A follower forwards a client's write to the leader; a
// leader handing over (every planned restart of a leader, every
// `etcdctl move-leader`) drops what reaches it during the handover, and
// so does a member between leaders, without telling the follower that
// forwarded it. etcd's follower then waits for the write's result until
// its request timeout (5 s and two election timeouts: 7 s by default),
// longer than most clients' deadline for one attempt, so a restart's
// handover cost an application a whole attempt (etcd-io/etcd#8975). A
// write still pending one election timeout after a new leader is known
// was lost, or is as good as lost: it ends with "etcdserver: leader
// changed" (Unavailable), and the application tries again at once (clientv3
// does not retry a write by itself). Its outcome is unknown to the client,
// as after any timeout; the clients' history checks (e2e/lincheck) treat
// it so. A write this member has committed but not yet applied (a slow
// disk, a large transaction, a defragmentation holding the backend) is
// waited for: the grace ends only once the member applied what it knew
// committed then (at most appliedWait later).
type handover struct {
	grace time.Duration
	// gen is the current generation: its context is cancelled one grace
	// after the next leader change, and a write started in it ends then.
	gen atomic.Pointer[context.Context]
}

func newHandover(electionMs uint) *handover {
	// A zero election timeout is etcd's default (1 s), and a grace
	// shorter than a few heartbeats would end writes a new leader is
	// about to commit.
	grace := time.Duration(electionMs) * time.Millisecond
	if grace == 0 {
		grace = time.Second
	}
	return &handover{grace: max(grace, 200*time.Millisecond)}
}

// leaderChanges is what it needs of the server (*etcdserver.EtcdServer).
type leaderChanges interface {
	// LeaderChangedNotify is closed at the next change of leader.
	LeaderChangedNotify() <-chan struct{}
	StopNotify() <-chan struct{}
	CommittedIndex() uint64
	AppliedIndex() uint64
}

var _ leaderChanges = (*etcdserver.EtcdServer)(nil)

// errLeaderChanged ends a generation; a stop ends the last one with
// another cause, which leaves its writes to etcd's own ending.
var errLeaderChanged = errors.New("leader changed")

// serving is called with the server once it runs (before, writes pass):
// one goroutine follows its leader changes, for as long as it runs, so
// that a write costs no goroutine of its own.
func (h *handover) serving(s leaderChanges) {
	ctx, cancel := context.WithCancelCause(context.Background())
	changed := s.LeaderChangedNotify()
	h.gen.Store(&ctx)
	go func() {
		for {
			select {
			case <-changed:
			case <-s.StopNotify():
				cancel(context.Canceled)
				return
			}
			// Taken before the next generation starts: a change after
			// this one closes it.
			changed = s.LeaderChangedNotify()
			next, nextCancel := context.WithCancelCause(context.Background())
			h.gen.Store(&next)
			end := cancel
			time.AfterFunc(h.grace, func() { h.applied(s); end(errLeaderChanged) })
			cancel = nextCancel
		}
	}()
}

// appliedWait bounds the wait for the member to apply what it knew
// committed at the end of a grace (etcd's own timeout, 7 s by default,
// ends a write still waiting after that).
const appliedWait = 5 * time.Second

// applied returns once the member applied every entry it knew committed,
// or after appliedWait: a write committed by then gets its own result.
func (h *handover) applied(s leaderChanges) {
	target := s.CommittedIndex()
	deadline := time.Now().Add(appliedWait)
	for s.AppliedIndex() < target && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

// option is the gRPC server option that puts it on etcd's unary calls.
func (h *handover) option() grpc.ServerOption { return grpc.ChainUnaryInterceptor(h.intercept) }

func (h *handover) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	gen := h.gen.Load()
	if gen == nil || !proposing[info.FullMethod] {
		return handler(ctx, req)
	}
	caller := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var gaveUp atomic.Bool
	stop := context.AfterFunc(*gen, func() {
		if context.Cause(*gen) == errLeaderChanged {
			gaveUp.Store(true)
			cancel()
		}
	})
	defer stop()
	resp, err := handler(ctx, req)
	// Only the end this interceptor caused is relabelled: an answer of
	// etcd's own (no such lease, compacted, no space, denied) stands.
	if err != nil && gaveUp.Load() && caller.Err() == nil &&
		(status.Code(err) == codes.Canceled || errors.Is(err, context.Canceled)) {
		return nil, rpctypes.ErrGRPCLeaderChanged
	}
	return resp, err
}
