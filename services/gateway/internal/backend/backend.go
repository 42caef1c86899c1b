// Package backend implements concord.v1 KVService and ClusterService with the
// Go SDK: it is the gateway's only way to the replicas.
//
// The SDK client learns the members from the replicas' status, sends writes
// and leader or strong reads to the leader, spreads eventual reads over the
// healthy replicas (power of two choices on latency), and retries what is
// safe to retry. This package adapts the generated handler interfaces to it:
// proto requests become SDK calls, SDK results become proto responses with
// their revision and serving node, and SDK errors become Connect codes in
// one place (errors.go).
//
// The replicas need not be up when the gateway starts: a Backend connects in
// the background and calls wait for it (within their deadline) until then.
package backend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"connectrpc.com/connect"
	concordv1 "github.com/concord-kv/concord/proto/gen/go/concord/v1"
	"github.com/concord-kv/concord/proto/gen/go/concord/v1/concordv1connect"
	concord "github.com/concord-kv/concord/sdk/go"
)

// DefaultTimeout bounds a call (retries included) whose context has no
// deadline.
const DefaultTimeout = 10 * time.Second

// refreshInterval is how often the client refreshes the member list and
// the leader: a gateway is long-lived, and a Status call every 2 s is cheap.
const refreshInterval = 2 * time.Second

// Connection retry backoff while no replica has answered yet.
const (
	minConnectBackoff = 100 * time.Millisecond
	maxConnectBackoff = 2 * time.Second
)

// Options configure New.
type Options struct {
	// DefaultConsistency is the read level of requests that name none
	// (default Leader).
	DefaultConsistency concord.ConsistencyLevel
	// Timeout bounds calls without a deadline (default DefaultTimeout).
	Timeout time.Duration
	// Logger receives connection failures and the SDK's debug logs.
	Logger *slog.Logger
	// SDKOptions are appended to the client's options (tests use them).
	SDKOptions []concord.Option
	// Seeds, if set, supplies the replica URLs to connect to (at each
	// attempt) instead of New's list, waiting until it has some.
	Seeds func(ctx context.Context) ([]string, error)
	// Follow, if set, runs with the connected client until Close: it keeps
	// the client's seeds current (the gateway follows Consul with it).
	Follow func(ctx context.Context, c *concord.Client)
}

// Backend is a KVServiceHandler and ClusterServiceHandler over an SDK
// client. It is safe for concurrent use.
type Backend struct {
	// Methods the SDK has no call for yet answer Unimplemented, so that the
	// gateway builds while the services grow.
	concordv1connect.UnimplementedKVServiceHandler
	concordv1connect.UnimplementedClusterServiceHandler

	replicas []string
	opts     Options

	ready   chan struct{} // closed once client is set
	client  *concord.Client
	mu      sync.Mutex
	lastErr error // why the last connection attempt failed

	cancel context.CancelFunc // stops connect
	done   chan struct{}      // closed when connect returns
}

var (
	_ concordv1connect.KVServiceHandler      = (*Backend)(nil)
	_ concordv1connect.ClusterServiceHandler = (*Backend)(nil)
)

// New returns a Backend for the replicas' base URLs (http://host:port) and
// starts connecting to them in the background. Close stops it.
func New(replicas []string, opts Options) (*Backend, error) {
	if len(replicas) == 0 && opts.Seeds == nil {
		return nil, errors.New("backend: no replicas")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &Backend{
		replicas: replicas, opts: opts, lastErr: errors.New("connecting"),
		ready: make(chan struct{}), cancel: cancel, done: make(chan struct{}),
	}
	go b.connect(ctx)
	return b, nil
}

// connect creates the SDK client, retrying with backoff until a replica
// answers or ctx (canceled by Close) ends.
func (b *Backend) connect(ctx context.Context) {
	defer close(b.done)
	opts := append([]concord.Option{
		concord.WithDiscovery(true),
		concord.WithDefaultConsistency(b.opts.DefaultConsistency),
		concord.WithTimeout(b.opts.Timeout),
		concord.WithRefreshInterval(refreshInterval),
		concord.WithLogger(b.opts.Logger),
	}, b.opts.SDKOptions...)
	backoff := minConnectBackoff
	for {
		c, err := b.dial(ctx, opts)
		if err == nil {
			b.client = c
			close(b.ready)
			if b.opts.Follow != nil {
				b.opts.Follow(ctx, c)
			}
			return
		}
		b.mu.Lock()
		b.lastErr = err
		b.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, concord.ErrInvalidArgument) {
			b.opts.Logger.Error("replica URLs rejected: the gateway cannot serve", "error", err)
			return
		}
		b.opts.Logger.Warn("no replica answered yet; retrying", "error", err, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, maxConnectBackoff)
	}
}

// dial makes one attempt at creating the client: Seeds (waited for without
// a bound) or the replicas New was given, then concord.New.
func (b *Backend) dial(ctx context.Context, opts []concord.Option) (*concord.Client, error) {
	replicas := b.replicas
	if b.opts.Seeds != nil {
		var err error
		if replicas, err = b.opts.Seeds(ctx); err != nil {
			return nil, err
		}
	}
	attempt, cancel := context.WithTimeout(ctx, b.opts.Timeout)
	defer cancel()
	return concord.New(attempt, replicas, opts...)
}

// Close stops connecting and closes the SDK client. Call it once.
func (b *Backend) Close() error {
	b.cancel()
	<-b.done
	select {
	case <-b.ready:
		return b.client.Close()
	default:
		return nil
	}
}

// Served reports how many calls each replica has served, by URL; nil before
// the first replica answered.
func (b *Backend) Served() map[string]uint64 {
	select {
	case <-b.ready:
		return b.client.Served()
	default:
		return nil
	}
}

// call runs f with the SDK client once it is connected, bounding ctx by the
// call timeout, and maps f's error to a Connect error.
func call[T any](ctx context.Context, b *Backend, f func(context.Context, *concord.Client) (T, error)) (T, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, b.opts.Timeout)
		defer cancel()
	}
	var zero T
	if err := b.waitReady(ctx); err != nil {
		return zero, err
	}
	out, err := f(ctx, b.client)
	if err != nil {
		return zero, toConnectError(err)
	}
	return out, nil
}

// waitReady waits until the client is connected or ctx ends.
func (b *Backend) waitReady(ctx context.Context) error {
	select {
	case <-b.ready: // connected wins over an ended ctx
		return nil
	default:
	}
	select {
	case <-b.ready:
		return nil
	case <-ctx.Done():
		b.mu.Lock()
		cause := b.lastErr
		b.mu.Unlock()
		return connect.NewError(connect.CodeUnavailable, fmt.Errorf("no replica has answered yet: %s", message(cause)))
	}
}

// level maps a request's consistency to the SDK's (unspecified: the
// client's default).
func level(c concordv1.Consistency) concord.ConsistencyLevel {
	switch c {
	case concordv1.Consistency_CONSISTENCY_EVENTUAL:
		return concord.Eventual
	case concordv1.Consistency_CONSISTENCY_LEADER:
		return concord.Leader
	case concordv1.Consistency_CONSISTENCY_STRONG:
		return concord.Strong
	}
	return concord.Default
}

// readOptions are the SDK options of a read.
func readOptions(c concordv1.Consistency, minRevision uint64) []concord.OpOption {
	opts := []concord.OpOption{concord.Consistency(level(c))}
	if minRevision != 0 {
		opts = append(opts, concord.MinRevision(minRevision))
	}
	return opts
}

func header(revision uint64, node string) *concordv1.ResponseHeader {
	return &concordv1.ResponseHeader{Revision: revision, NodeId: node}
}

func seconds(n int64) time.Duration { return time.Duration(n) * time.Second }

// compress maps a CompressMode to the SDK's optional flag.
func compress(m concordv1.CompressMode) *bool {
	switch m {
	case concordv1.CompressMode_COMPRESS_MODE_FORCE:
		return new(true)
	case concordv1.CompressMode_COMPRESS_MODE_OFF:
		return new(false)
	}
	return nil
}

// keyValue converts an SDK KV; withTTL fills ttl_seconds when the key expires.
func keyValue(kv *concord.KV, withTTL bool) *concordv1.KeyValue {
	out := &concordv1.KeyValue{
		Key: kv.Key, Value: kv.Value, ContentType: kv.ContentType,
		CreateRevision: kv.CreateRevision, ModRevision: kv.ModRevision, Version: kv.Version,
	}
	if !kv.ExpiresAt.IsZero() {
		out.ExpiresAtUnixMs = kv.ExpiresAt.UnixMilli()
		if withTTL {
			out.TtlSeconds = new(int64(kv.TTL / time.Second))
		}
	}
	return out
}

// Put implements KVService.Put.
func (b *Backend) Put(ctx context.Context, req *connect.Request[concordv1.PutRequest]) (*connect.Response[concordv1.PutResponse], error) {
	m := req.Msg
	var opts []concord.OpOption
	if m.GetTtlSeconds() > 0 {
		opts = append(opts, concord.WithTTL(seconds(m.GetTtlSeconds())))
	}
	if m.GetIfAbsent() {
		opts = append(opts, concord.IfAbsent())
	}
	if m.GetIfModRevision() != 0 {
		opts = append(opts, concord.IfModRevision(m.GetIfModRevision()))
	}
	if c := compress(m.GetCompress()); c != nil {
		opts = append(opts, concord.Compress(*c))
	}
	if m.GetContentType() != "" {
		opts = append(opts, concord.WithContentType(m.GetContentType()))
	}
	res, err := call(ctx, b, func(ctx context.Context, c *concord.Client) (concord.WriteResult, error) {
		return c.Put(ctx, m.GetKey(), m.GetValue(), opts...)
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&concordv1.PutResponse{Header: header(res.Revision, res.Node)}), nil
}

// Get implements KVService.Get.
func (b *Backend) Get(ctx context.Context, req *connect.Request[concordv1.GetRequest]) (*connect.Response[concordv1.GetResponse], error) {
	m := req.Msg
	kv, err := call(ctx, b, func(ctx context.Context, c *concord.Client) (*concord.KV, error) {
		if m.GetWithTtl() {
			return c.GetWithTTL(ctx, m.GetKey(), readOptions(m.GetConsistency(), m.GetMinRevision())...)
		}
		return c.Get(ctx, m.GetKey(), readOptions(m.GetConsistency(), m.GetMinRevision())...)
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&concordv1.GetResponse{
		Header: header(kv.Revision, kv.Node), Kv: keyValue(kv, m.GetWithTtl()),
	}), nil
}

// Delete implements KVService.Delete.
func (b *Backend) Delete(ctx context.Context, req *connect.Request[concordv1.DeleteRequest]) (*connect.Response[concordv1.DeleteResponse], error) {
	m := req.Msg
	var opts []concord.OpOption
	if m.GetIfModRevision() != 0 {
		opts = append(opts, concord.IfModRevision(m.GetIfModRevision()))
	}
	res, err := call(ctx, b, func(ctx context.Context, c *concord.Client) (concord.DeleteResult, error) {
		return c.Delete(ctx, m.GetKey(), opts...)
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&concordv1.DeleteResponse{Header: header(res.Revision, res.Node), Deleted: res.Deleted}), nil
}

// Touch implements KVService.Touch.
func (b *Backend) Touch(ctx context.Context, req *connect.Request[concordv1.TouchRequest]) (*connect.Response[concordv1.TouchResponse], error) {
	m := req.Msg
	res, err := call(ctx, b, func(ctx context.Context, c *concord.Client) (concord.WriteResult, error) {
		return c.Touch(ctx, m.GetKey(), seconds(m.GetTtlSeconds()))
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&concordv1.TouchResponse{Header: header(res.Revision, res.Node)}), nil
}

// GetTTL implements KVService.GetTTL. It reads the key with its TTL, because
// that read also says which revision and node served it.
func (b *Backend) GetTTL(ctx context.Context, req *connect.Request[concordv1.GetTTLRequest]) (*connect.Response[concordv1.GetTTLResponse], error) {
	m := req.Msg
	kv, err := call(ctx, b, func(ctx context.Context, c *concord.Client) (*concord.KV, error) {
		return c.GetWithTTL(ctx, m.GetKey(), concord.Consistency(level(m.GetConsistency())))
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&concordv1.GetTTLResponse{
		Header: header(kv.Revision, kv.Node), TtlSeconds: keyValue(kv, true).TtlSeconds,
	}), nil
}

// BatchPut implements KVService.BatchPut.
func (b *Backend) BatchPut(ctx context.Context, req *connect.Request[concordv1.BatchPutRequest]) (*connect.Response[concordv1.BatchPutResponse], error) {
	items := make([]concord.Item, len(req.Msg.GetItems()))
	for i, it := range req.Msg.GetItems() {
		items[i] = concord.Item{
			Key: it.GetKey(), Value: it.GetValue(), TTL: seconds(it.GetTtlSeconds()),
			ContentType: it.GetContentType(), Compress: compress(it.GetCompress()),
		}
	}
	res, err := call(ctx, b, func(ctx context.Context, c *concord.Client) (concord.WriteResult, error) {
		return c.PutMany(ctx, items)
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&concordv1.BatchPutResponse{Header: header(res.Revision, res.Node)}), nil
}

// BatchGet implements KVService.BatchGet.
func (b *Backend) BatchGet(ctx context.Context, req *connect.Request[concordv1.BatchGetRequest]) (*connect.Response[concordv1.BatchGetResponse], error) {
	m := req.Msg
	opts := readOptions(m.GetConsistency(), m.GetMinRevision())
	if m.GetWithTtl() {
		opts = append(opts, concord.WithRemainingTTL())
	}
	res, err := call(ctx, b, func(ctx context.Context, c *concord.Client) (*concord.GetManyResult, error) {
		return c.GetMany(ctx, m.GetKeys(), opts...)
	})
	if err != nil {
		return nil, err
	}
	out := &concordv1.BatchGetResponse{
		Header: header(res.Revision, res.Node), Missing: res.Missing, Kvs: make([]*concordv1.KeyValue, len(res.KVs)),
	}
	for i, kv := range res.KVs {
		out.Kvs[i] = keyValue(kv, m.GetWithTtl())
	}
	return connect.NewResponse(out), nil
}

// BatchDelete implements KVService.BatchDelete.
func (b *Backend) BatchDelete(ctx context.Context, req *connect.Request[concordv1.BatchDeleteRequest]) (*connect.Response[concordv1.BatchDeleteResponse], error) {
	res, err := call(ctx, b, func(ctx context.Context, c *concord.Client) (concord.BatchResult, error) {
		return c.DeleteMany(ctx, req.Msg.GetKeys())
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&concordv1.BatchDeleteResponse{
		Header: header(res.Revision, res.Node), Deleted: uint64(res.Deleted), //nolint:gosec // a count, never negative
	}), nil
}

// BatchTouch implements KVService.BatchTouch.
func (b *Backend) BatchTouch(ctx context.Context, req *connect.Request[concordv1.BatchTouchRequest]) (*connect.Response[concordv1.BatchTouchResponse], error) {
	items := make([]concord.TouchItem, len(req.Msg.GetItems()))
	for i, it := range req.Msg.GetItems() {
		items[i] = concord.TouchItem{Key: it.GetKey(), TTL: seconds(it.GetTtlSeconds())}
	}
	res, err := call(ctx, b, func(ctx context.Context, c *concord.Client) (concord.BatchResult, error) {
		return c.TouchMany(ctx, items)
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&concordv1.BatchTouchResponse{Header: header(res.Revision, res.Node), Missing: res.Missing}), nil
}

// List implements KVService.List: one page, continued by its cursor.
func (b *Backend) List(ctx context.Context, req *connect.Request[concordv1.ListRequest]) (*connect.Response[concordv1.ListResponse], error) {
	m := req.Msg
	opts := []concord.OpOption{concord.Consistency(level(m.GetConsistency()))}
	if m.GetLimit() != 0 {
		opts = append(opts, concord.WithPageSize(int(m.GetLimit())))
	}
	if m.GetKeysOnly() {
		opts = append(opts, concord.KeysOnly())
	}
	if m.GetWithTtl() {
		opts = append(opts, concord.WithRemainingTTL())
	}
	page, err := call(ctx, b, func(ctx context.Context, c *concord.Client) (*concord.Page, error) {
		return c.ListPage(ctx, m.GetPrefix(), m.GetCursor(), opts...)
	})
	if err != nil {
		return nil, err
	}
	out := &concordv1.ListResponse{
		Header: header(page.Revision, page.Node), NextCursor: page.NextCursor,
		Kvs: make([]*concordv1.KeyValue, len(page.KVs)),
	}
	for i, kv := range page.KVs {
		out.Kvs[i] = keyValue(kv, m.GetWithTtl())
	}
	return connect.NewResponse(out), nil
}

// algorithms maps the SDK's algorithm names back to the enum.
var algorithms = map[string]concordv1.CompressionAlgorithm{
	"none": concordv1.CompressionAlgorithm_COMPRESSION_ALGORITHM_NONE,
	"zlib": concordv1.CompressionAlgorithm_COMPRESSION_ALGORITHM_ZLIB,
	"gzip": concordv1.CompressionAlgorithm_COMPRESSION_ALGORITHM_GZIP,
	"zstd": concordv1.CompressionAlgorithm_COMPRESSION_ALGORITHM_ZSTD,
}

// CompressionStats implements KVService.CompressionStats.
func (b *Backend) CompressionStats(ctx context.Context, req *connect.Request[concordv1.CompressionStatsRequest]) (*connect.Response[concordv1.CompressionStatsResponse], error) {
	st, err := call(ctx, b, func(ctx context.Context, c *concord.Client) (*concord.CompressionStats, error) {
		if v, ok := req.Msg.GetSource().(*concordv1.CompressionStatsRequest_Value); ok {
			return c.EstimateCompression(ctx, v.Value)
		}
		return c.CompressionStats(ctx, req.Msg.GetKey())
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&concordv1.CompressionStatsResponse{
		Header: header(st.Revision, st.Node), Algorithm: algorithms[st.Algorithm],
		OriginalSize: st.OriginalSize, CompressedSize: st.CompressedSize, CompressionRatio: st.Ratio,
		SavingsBytes: st.SavingsBytes, SavingsPercent: st.SavingsPercent,
	}), nil
}

// memberStates maps the SDK's member states back to the enum.
var memberStates = map[string]concordv1.MemberState{
	"leader":   concordv1.MemberState_MEMBER_STATE_LEADER,
	"follower": concordv1.MemberState_MEMBER_STATE_FOLLOWER,
	"unknown":  concordv1.MemberState_MEMBER_STATE_UNKNOWN,
}

func member(m concord.Member) *concordv1.Member {
	suffrage := concordv1.Suffrage_SUFFRAGE_VOTER
	if !m.Voter {
		suffrage = concordv1.Suffrage_SUFFRAGE_NONVOTER
	}
	out := &concordv1.Member{
		Id: m.ID, RaftAddress: m.RaftAddress, ApiAddress: m.APIAddress, Suffrage: suffrage, Leader: m.Leader,
		State: memberStates[m.State], UnreachableMs: m.Unreachable.Milliseconds(),
	}
	if m.LastContact >= 0 {
		out.LastContactMs = new(m.LastContact.Milliseconds())
	}
	return out
}

func members(ms []concord.Member) []*concordv1.Member {
	out := make([]*concordv1.Member, len(ms))
	for i, m := range ms {
		out[i] = member(m)
	}
	return out
}

// Status implements ClusterService.Status: the leader's view, or any
// replica's when there is no leader.
func (b *Backend) Status(ctx context.Context, _ *connect.Request[concordv1.StatusRequest]) (*connect.Response[concordv1.StatusResponse], error) {
	st, err := call(ctx, b, func(ctx context.Context, c *concord.Client) (*concord.Status, error) {
		return c.Status(ctx)
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&concordv1.StatusResponse{
		// A replica's status is as of its applied index.
		Header: header(st.AppliedIndex, st.NodeID),
		NodeId: st.NodeID, State: st.State, Term: st.Term, CommitIndex: st.CommitIndex, AppliedIndex: st.AppliedIndex,
		LeaderId: st.LeaderID, LeaderApiAddress: st.LeaderAPI, Members: members(st.Members),
		Storage: &concordv1.StorageStats{Size: st.Size, MemoryBytes: st.MemoryBytes},
	}), nil
}

// Members implements ClusterService.Members. The SDK does not say which
// replica answered, so the response header is empty (so are those of the
// membership changes below).
func (b *Backend) Members(ctx context.Context, _ *connect.Request[concordv1.MembersRequest]) (*connect.Response[concordv1.MembersResponse], error) {
	ms, err := call(ctx, b, func(ctx context.Context, c *concord.Client) ([]concord.Member, error) {
		return c.Members(ctx)
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&concordv1.MembersResponse{Header: &concordv1.ResponseHeader{}, Members: members(ms)}), nil
}

// AddMember implements ClusterService.AddMember through the leader.
func (b *Backend) AddMember(ctx context.Context, req *connect.Request[concordv1.AddMemberRequest]) (*connect.Response[concordv1.AddMemberResponse], error) {
	m := req.Msg
	added, err := call(ctx, b, func(ctx context.Context, c *concord.Client) (*concord.Member, error) {
		return c.AddMember(ctx, concord.NewMember{ID: m.GetId(), RaftAddress: m.GetRaftAddress(), APIAddress: m.GetApiAddress(), Nonvoter: m.GetNonvoter()})
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&concordv1.AddMemberResponse{Header: &concordv1.ResponseHeader{}, Member: member(*added)}), nil
}

// RemoveMember implements ClusterService.RemoveMember through the leader.
func (b *Backend) RemoveMember(ctx context.Context, req *connect.Request[concordv1.RemoveMemberRequest]) (*connect.Response[concordv1.RemoveMemberResponse], error) {
	m := req.Msg
	_, err := call(ctx, b, func(ctx context.Context, c *concord.Client) (struct{}, error) {
		return struct{}{}, c.RemoveMember(ctx, m.GetId(), concord.IfUnreachableFor(time.Duration(m.GetIfUnreachableForSeconds())*time.Second))
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&concordv1.RemoveMemberResponse{Header: &concordv1.ResponseHeader{}}), nil
}

// TransferLeadership implements ClusterService.TransferLeadership through the leader.
func (b *Backend) TransferLeadership(ctx context.Context, req *connect.Request[concordv1.TransferLeadershipRequest]) (*connect.Response[concordv1.TransferLeadershipResponse], error) {
	leader, err := call(ctx, b, func(ctx context.Context, c *concord.Client) (string, error) {
		return c.TransferLeadership(ctx, req.Msg.GetId())
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&concordv1.TransferLeadershipResponse{Header: &concordv1.ResponseHeader{}, LeaderId: leader}), nil
}
