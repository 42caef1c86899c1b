// Package forward implements concord.v1 KVService and ClusterService by
// forwarding each call to a replica with the generated Connect clients.
//
// Calls go round robin over the replicas. A call that failed where it
// certainly did not apply (a dial error, or a replica answering Unavailable)
// is tried on the next replica, with a small backoff, until the request's
// deadline; reads are also retried after any transport failure. Every other
// error is passed through with its code, message and details.
//
// It is the gateway's stand-in for the Go SDK, which will replace it: the
// REST and Connect layers only see the generated handler interfaces.
package forward

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	concordv1 "github.com/concord-kv/concord/proto/gen/go/concord/v1"
	"github.com/concord-kv/concord/proto/gen/go/concord/v1/concordv1connect"
)

// DefaultTimeout bounds a call (retries included) whose context has no
// deadline.
const DefaultTimeout = 10 * time.Second

const (
	minBackoff = 10 * time.Millisecond
	maxBackoff = 250 * time.Millisecond
)

// Options configure a Forwarder.
type Options struct {
	// DefaultConsistency replaces CONSISTENCY_UNSPECIFIED on reads; leave it
	// unspecified to let the replica's default apply.
	DefaultConsistency concordv1.Consistency
	// Timeout bounds calls without a deadline (default DefaultTimeout).
	Timeout time.Duration
}

// Forwarder is a KVServiceHandler and ClusterServiceHandler backed by
// replicas. It is safe for concurrent use.
type Forwarder struct {
	transport *http.Transport
	kv        []concordv1connect.KVServiceClient
	cluster   []concordv1connect.ClusterServiceClient
	next      atomic.Uint64
	opts      Options
}

var (
	_ concordv1connect.KVServiceHandler      = (*Forwarder)(nil)
	_ concordv1connect.ClusterServiceHandler = (*Forwarder)(nil)
)

// New returns a Forwarder over the replicas' base URLs (http://host:port).
func New(replicas []string, opts Options) (*Forwarder, error) {
	if len(replicas) == 0 {
		return nil, errors.New("forward: no replicas")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	// HTTP/2 without TLS (h2c), as the replicas serve it: one multiplexed
	// connection per replica.
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	t := &http.Transport{Protocols: &protocols, MaxIdleConnsPerHost: 16, IdleConnTimeout: 90 * time.Second}
	client := &http.Client{Transport: t}
	f := &Forwarder{transport: t, opts: opts}
	for _, r := range replicas {
		f.kv = append(f.kv, concordv1connect.NewKVServiceClient(client, r))
		f.cluster = append(f.cluster, concordv1connect.NewClusterServiceClient(client, r))
	}
	return f, nil
}

// Close releases idle connections.
func (f *Forwarder) Close() { f.transport.CloseIdleConnections() }

// idempotent says whether a call may be repeated after any transport failure.
type idempotent bool

const (
	write idempotent = false
	read  idempotent = true
)

// call runs method on replicas in turn until it succeeds, fails in a way
// that must not be retried, or ctx ends.
func call[C, Req, Res any](ctx context.Context, f *Forwarder, clients []C, kind idempotent, msg *Req,
	method func(C, context.Context, *connect.Request[Req]) (*connect.Response[Res], error),
) (*connect.Response[Res], error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.opts.Timeout)
		defer cancel()
	}
	start := f.next.Add(1)
	backoff := minBackoff
	for attempt := uint64(0); ; attempt++ {
		c := clients[(start+attempt)%uint64(len(clients))]
		res, err := method(c, ctx, connect.NewRequest(msg))
		if err == nil {
			return connect.NewResponse(res.Msg), nil
		}
		if !retryable(err, kind) || ctx.Err() != nil {
			return nil, relay(err)
		}
		timer := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, relay(err)
		case <-timer.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// retryable reports whether err proves the call did not apply (or the call
// is a read, which may always be repeated).
func retryable(err error, kind idempotent) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true // never reached a replica
	}
	if connect.IsWireError(err) {
		// The replica answered; Unavailable means it did not apply the call
		// (no leader, shutting down).
		return connect.CodeOf(err) == connect.CodeUnavailable
	}
	// A transport failure after the request may have been sent.
	return bool(kind)
}

// relay passes a replica's error on with its code, message and details but
// without the upstream HTTP metadata.
func relay(err error) error {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return connect.NewError(connect.CodeUnknown, err)
	}
	if !connect.IsWireError(ce) {
		return ce
	}
	out := connect.NewError(ce.Code(), errors.New(ce.Message()))
	for _, d := range ce.Details() {
		out.AddDetail(d)
	}
	return out
}

func (f *Forwarder) consistency(c concordv1.Consistency) concordv1.Consistency {
	if c == concordv1.Consistency_CONSISTENCY_UNSPECIFIED {
		return f.opts.DefaultConsistency
	}
	return c
}

type kv = concordv1connect.KVServiceClient

// Put forwards KVService.Put.
func (f *Forwarder) Put(ctx context.Context, req *connect.Request[concordv1.PutRequest]) (*connect.Response[concordv1.PutResponse], error) {
	return call(ctx, f, f.kv, write, req.Msg, kv.Put)
}

// Get forwards KVService.Get.
func (f *Forwarder) Get(ctx context.Context, req *connect.Request[concordv1.GetRequest]) (*connect.Response[concordv1.GetResponse], error) {
	req.Msg.Consistency = f.consistency(req.Msg.GetConsistency())
	return call(ctx, f, f.kv, read, req.Msg, kv.Get)
}

// Delete forwards KVService.Delete.
func (f *Forwarder) Delete(ctx context.Context, req *connect.Request[concordv1.DeleteRequest]) (*connect.Response[concordv1.DeleteResponse], error) {
	return call(ctx, f, f.kv, write, req.Msg, kv.Delete)
}

// Touch forwards KVService.Touch.
func (f *Forwarder) Touch(ctx context.Context, req *connect.Request[concordv1.TouchRequest]) (*connect.Response[concordv1.TouchResponse], error) {
	return call(ctx, f, f.kv, write, req.Msg, kv.Touch)
}

// GetTTL forwards KVService.GetTTL.
func (f *Forwarder) GetTTL(ctx context.Context, req *connect.Request[concordv1.GetTTLRequest]) (*connect.Response[concordv1.GetTTLResponse], error) {
	req.Msg.Consistency = f.consistency(req.Msg.GetConsistency())
	return call(ctx, f, f.kv, read, req.Msg, kv.GetTTL)
}

// BatchPut forwards KVService.BatchPut.
func (f *Forwarder) BatchPut(ctx context.Context, req *connect.Request[concordv1.BatchPutRequest]) (*connect.Response[concordv1.BatchPutResponse], error) {
	return call(ctx, f, f.kv, write, req.Msg, kv.BatchPut)
}

// BatchGet forwards KVService.BatchGet.
func (f *Forwarder) BatchGet(ctx context.Context, req *connect.Request[concordv1.BatchGetRequest]) (*connect.Response[concordv1.BatchGetResponse], error) {
	req.Msg.Consistency = f.consistency(req.Msg.GetConsistency())
	return call(ctx, f, f.kv, read, req.Msg, kv.BatchGet)
}

// BatchDelete forwards KVService.BatchDelete.
func (f *Forwarder) BatchDelete(ctx context.Context, req *connect.Request[concordv1.BatchDeleteRequest]) (*connect.Response[concordv1.BatchDeleteResponse], error) {
	return call(ctx, f, f.kv, write, req.Msg, kv.BatchDelete)
}

// BatchTouch forwards KVService.BatchTouch.
func (f *Forwarder) BatchTouch(ctx context.Context, req *connect.Request[concordv1.BatchTouchRequest]) (*connect.Response[concordv1.BatchTouchResponse], error) {
	return call(ctx, f, f.kv, write, req.Msg, kv.BatchTouch)
}

// List forwards KVService.List.
func (f *Forwarder) List(ctx context.Context, req *connect.Request[concordv1.ListRequest]) (*connect.Response[concordv1.ListResponse], error) {
	req.Msg.Consistency = f.consistency(req.Msg.GetConsistency())
	return call(ctx, f, f.kv, read, req.Msg, kv.List)
}

// CompressionStats forwards KVService.CompressionStats.
func (f *Forwarder) CompressionStats(ctx context.Context, req *connect.Request[concordv1.CompressionStatsRequest]) (*connect.Response[concordv1.CompressionStatsResponse], error) {
	return call(ctx, f, f.kv, read, req.Msg, kv.CompressionStats)
}

type cluster = concordv1connect.ClusterServiceClient

// Status forwards ClusterService.Status (of whichever replica answers).
func (f *Forwarder) Status(ctx context.Context, req *connect.Request[concordv1.StatusRequest]) (*connect.Response[concordv1.StatusResponse], error) {
	return call(ctx, f, f.cluster, read, req.Msg, cluster.Status)
}

// Members forwards ClusterService.Members.
func (f *Forwarder) Members(ctx context.Context, req *connect.Request[concordv1.MembersRequest]) (*connect.Response[concordv1.MembersResponse], error) {
	return call(ctx, f, f.cluster, read, req.Msg, cluster.Members)
}
