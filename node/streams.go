package node

import (
	"context"
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3election/v3electionpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health/grpc_health_v1"
)

// longLived are the client streams that never end on their own: a watch,
// a lease's keep-alives, an election's observer, a health watch. Every
// other stream (a snapshot above all) ends when its work is done and is
// left to finish. Blocking unary calls (v3lock's Lock, an election's
// Campaign) still hold the close up to etcd's timeout.
var longLived = map[string]bool{
	pb.Watch_Watch_FullMethodName:                true,
	pb.Lease_LeaseKeepAlive_FullMethodName:       true,
	v3electionpb.Election_Observe_FullMethodName: true,
	grpc_health_v1.Health_Watch_FullMethodName:   true,
}

// streamEnder ends the long-lived client streams when the member is asked
// to stop. etcd's Close waits up to its request timeout (5 s and two
// election timeouts: 7 s by default) for open streams before cutting
// them, and a watch is open on nearly every member, so every restart (a
// package upgrade's too) kept the member out of service about 8 s instead
// of about 1. Ended with Unavailable, as a stopping server's are, the
// clients' watches and keep-alives resume at once on another member, from
// the revision they had seen: nothing is lost that the cut would not
// have lost.
type streamEnder struct {
	once     sync.Once
	stopping chan struct{}
}

func newStreamEnder() *streamEnder { return &streamEnder{stopping: make(chan struct{})} }

// stop ends the open long-lived streams and refuses new ones.
func (s *streamEnder) stop() { s.once.Do(func() { close(s.stopping) }) }

// option is the gRPC server option that puts the ender on etcd's streams.
func (s *streamEnder) option() grpc.ServerOption { return grpc.ChainStreamInterceptor(s.intercept) }

func (s *streamEnder) intercept(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if !longLived[info.FullMethod] {
		return handler(srv, ss)
	}
	select {
	case <-s.stopping:
		return rpctypes.ErrGRPCStopped
	default:
	}
	ctx, cancel := context.WithCancel(ss.Context())
	defer cancel()
	go func() {
		select {
		case <-s.stopping:
			cancel()
		case <-ctx.Done():
		}
	}()
	err := handler(srv, endableStream{ServerStream: ss, ctx: ctx})
	select {
	case <-s.stopping:
		if ss.Context().Err() == nil {
			// We ended it, not its client: say so in the code that
			// makes clients go on elsewhere (a Canceled would end an
			// application's watch).
			return rpctypes.ErrGRPCStopped
		}
	default:
	}
	return err
}

// endableStream is a stream whose context the ender can cancel.
type endableStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (e endableStream) Context() context.Context { return e.ctx }
