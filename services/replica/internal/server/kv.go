package server

import (
	"context"
	"encoding/base64"
	"fmt"
	"unicode/utf8"

	"connectrpc.com/connect"
	raftv1 "github.com/concord-kv/concord/proto/gen/go/concord/raft/v1"
	concordv1 "github.com/concord-kv/concord/proto/gen/go/concord/v1"
	"github.com/concord-kv/concord/proto/gen/go/concord/v1/concordv1connect"
	"github.com/concord-kv/concord/services/replica/internal/compress"
	"github.com/concord-kv/concord/services/replica/internal/store"
)

// KV implements concord.v1.KVService on top of a store.
type KV struct {
	Store              *store.Store
	Compressor         *compress.Compressor
	MaxValueBytes      int
	DefaultConsistency concordv1.Consistency
}

var _ concordv1connect.KVServiceHandler = (*KV)(nil)

const (
	defaultListLimit = 100
	msPerSecond      = 1000
)

func (h *KV) header(rev uint64) *concordv1.ResponseHeader {
	return &concordv1.ResponseHeader{Revision: rev, NodeId: h.Store.ID()}
}

func (h *KV) checkValue(v []byte) error {
	if len(v) > h.MaxValueBytes {
		return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("value is %d bytes, larger than the %d byte limit", len(v), h.MaxValueBytes))
	}
	return nil
}

func (h *KV) encodePut(key string, value []byte, ttlSeconds int64, contentType string, mode concordv1.CompressMode) (*raftv1.Put, error) {
	if err := h.checkValue(value); err != nil {
		return nil, err
	}
	stored, algo, err := h.Compressor.Encode(value, mode)
	if err != nil {
		return nil, err
	}
	return &raftv1.Put{
		Key: key, Value: stored, ContentType: contentType, Compression: algo,
		TtlMs: ttlSeconds * msPerSecond, OriginalSize: uint64(len(value)),
	}, nil
}

func (h *KV) apply(ctx context.Context, cmd *raftv1.Command) (*raftv1.Result, error) {
	res, err := h.Store.Apply(ctx, cmd)
	return res, toConnectError(err)
}

// Put stores a value.
func (h *KV) Put(ctx context.Context, req *connect.Request[concordv1.PutRequest]) (*connect.Response[concordv1.PutResponse], error) {
	m := req.Msg
	p, err := h.encodePut(m.GetKey(), m.GetValue(), m.GetTtlSeconds(), m.GetContentType(), m.GetCompress())
	if err != nil {
		return nil, toConnectError(err)
	}
	p.IfAbsent, p.IfModRevision = m.GetIfAbsent(), m.GetIfModRevision()
	res, err := h.apply(ctx, &raftv1.Command{Op: &raftv1.Command_Put{Put: p}})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&concordv1.PutResponse{Header: h.header(res.GetRevision())}), nil
}

func (h *KV) consistency(c concordv1.Consistency) store.Consistency {
	if c == concordv1.Consistency_CONSISTENCY_UNSPECIFIED {
		c = h.DefaultConsistency
	}
	switch c {
	case concordv1.Consistency_CONSISTENCY_EVENTUAL:
		return store.Eventual
	case concordv1.Consistency_CONSISTENCY_STRONG:
		return store.Strong
	}
	return store.Leader
}

func (h *KV) barrier(ctx context.Context, c concordv1.Consistency, minRevision uint64) error {
	return toConnectError(h.Store.ReadBarrier(ctx, h.consistency(c), minRevision))
}

// toKV converts a stored entry to the API form, decompressing the value.
func (h *KV) toKV(e *store.Entry, nowMs int64, withValue, withTTL bool) (*concordv1.KeyValue, error) {
	kv := &concordv1.KeyValue{
		Key: e.Key, ContentType: e.ContentType, CreateRevision: e.CreateRevision,
		ModRevision: e.ModRevision, Version: e.Version, ExpiresAtUnixMs: e.ExpiresAtMs,
		Compression: e.Compression,
	}
	if kv.Compression == concordv1.CompressionAlgorithm_COMPRESSION_ALGORITHM_UNSPECIFIED {
		kv.Compression = compress.None
	}
	if withValue {
		v, err := compress.Decode(e.Value, e.Compression, max(h.MaxValueBytes, int(e.OriginalSize)))
		if err != nil {
			return nil, toConnectError(fmt.Errorf("key %q: %w", e.Key, err))
		}
		kv.Value = v
	}
	if withTTL && e.ExpiresAtMs != 0 {
		ttl := remainingSeconds(e.ExpiresAtMs, nowMs)
		kv.TtlSeconds = &ttl
	}
	return kv, nil
}

// ttlNow is the time remaining TTLs count from (the later of the log's
// clock and the wall clock), or 0 when no TTL is asked for.
func (h *KV) ttlNow(withTTL bool) int64 {
	if !withTTL {
		return 0
	}
	return h.Store.FSM().LogNow(h.Store.NowMs())
}

// remainingSeconds rounds the time left up to whole seconds. A key is read
// at the log's clock, which may trail the wall clock by a moment (until the
// reaper's Expire command): one still there past its expiry has at least 1
// second left, never 0, which would read as "no TTL".
func remainingSeconds(expiresAtMs, nowMs int64) int64 {
	left := expiresAtMs - nowMs
	if left <= 0 {
		return 1
	}
	return (left + msPerSecond - 1) / msPerSecond
}

func notFound(key string) error {
	return connect.NewError(connect.CodeNotFound, fmt.Errorf("key %q not found", key))
}

// Get reads one key.
func (h *KV) Get(ctx context.Context, req *connect.Request[concordv1.GetRequest]) (*connect.Response[concordv1.GetResponse], error) {
	m := req.Msg
	if err := h.barrier(ctx, m.GetConsistency(), m.GetMinRevision()); err != nil {
		return nil, err
	}
	now := h.ttlNow(m.GetWithTtl())
	e, rev := h.Store.FSM().Get(m.GetKey(), store.AtLogTime)
	if e == nil {
		return nil, notFound(m.GetKey())
	}
	kv, err := h.toKV(e, now, true, m.GetWithTtl())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&concordv1.GetResponse{Header: h.header(rev), Kv: kv}), nil
}

// Delete removes a key.
func (h *KV) Delete(ctx context.Context, req *connect.Request[concordv1.DeleteRequest]) (*connect.Response[concordv1.DeleteResponse], error) {
	res, err := h.apply(ctx, &raftv1.Command{Op: &raftv1.Command_Delete{Delete: &raftv1.Delete{
		Key: req.Msg.GetKey(), IfModRevision: req.Msg.GetIfModRevision(),
	}}})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&concordv1.DeleteResponse{Header: h.header(res.GetRevision()), Deleted: res.GetDeleted() > 0}), nil
}

// Touch sets a key's TTL.
func (h *KV) Touch(ctx context.Context, req *connect.Request[concordv1.TouchRequest]) (*connect.Response[concordv1.TouchResponse], error) {
	res, err := h.apply(ctx, &raftv1.Command{Op: &raftv1.Command_Touch{Touch: &raftv1.Touch{
		Key: req.Msg.GetKey(), TtlMs: req.Msg.GetTtlSeconds() * msPerSecond,
	}}})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&concordv1.TouchResponse{Header: h.header(res.GetRevision())}), nil
}

// GetTTL reads a key's remaining TTL.
func (h *KV) GetTTL(ctx context.Context, req *connect.Request[concordv1.GetTTLRequest]) (*connect.Response[concordv1.GetTTLResponse], error) {
	m := req.Msg
	if err := h.barrier(ctx, m.GetConsistency(), 0); err != nil {
		return nil, err
	}
	now := h.ttlNow(true)
	e, rev := h.Store.FSM().Get(m.GetKey(), store.AtLogTime)
	if e == nil {
		return nil, notFound(m.GetKey())
	}
	resp := &concordv1.GetTTLResponse{Header: h.header(rev)}
	if e.ExpiresAtMs != 0 {
		ttl := remainingSeconds(e.ExpiresAtMs, now)
		resp.TtlSeconds = &ttl
	}
	return connect.NewResponse(resp), nil
}

// BatchPut stores many items in one Raft entry.
func (h *KV) BatchPut(ctx context.Context, req *connect.Request[concordv1.BatchPutRequest]) (*connect.Response[concordv1.BatchPutResponse], error) {
	puts := make([]*raftv1.Put, 0, len(req.Msg.GetItems()))
	for i, it := range req.Msg.GetItems() {
		p, err := h.encodePut(it.GetKey(), it.GetValue(), it.GetTtlSeconds(), it.GetContentType(), it.GetCompress())
		if err != nil {
			return nil, toConnectError(fmt.Errorf("item %d: %w", i, err))
		}
		puts = append(puts, p)
	}
	res, err := h.apply(ctx, &raftv1.Command{Op: &raftv1.Command_BatchPut{BatchPut: &raftv1.BatchPut{Puts: puts}}})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&concordv1.BatchPutResponse{Header: h.header(res.GetRevision())}), nil
}

// BatchGet reads many keys from one view.
func (h *KV) BatchGet(ctx context.Context, req *connect.Request[concordv1.BatchGetRequest]) (*connect.Response[concordv1.BatchGetResponse], error) {
	m := req.Msg
	if err := h.barrier(ctx, m.GetConsistency(), m.GetMinRevision()); err != nil {
		return nil, err
	}
	now := h.ttlNow(m.GetWithTtl())
	entries, rev := h.Store.FSM().GetMany(m.GetKeys(), store.AtLogTime)
	resp := &concordv1.BatchGetResponse{Header: h.header(rev), Kvs: make([]*concordv1.KeyValue, 0, len(entries))}
	for i, e := range entries {
		if e == nil {
			resp.Missing = append(resp.Missing, m.GetKeys()[i])
			continue
		}
		kv, err := h.toKV(e, now, true, m.GetWithTtl())
		if err != nil {
			return nil, err
		}
		resp.Kvs = append(resp.Kvs, kv)
	}
	return connect.NewResponse(resp), nil
}

// BatchDelete removes many keys in one Raft entry.
func (h *KV) BatchDelete(ctx context.Context, req *connect.Request[concordv1.BatchDeleteRequest]) (*connect.Response[concordv1.BatchDeleteResponse], error) {
	res, err := h.apply(ctx, &raftv1.Command{Op: &raftv1.Command_BatchDelete{BatchDelete: &raftv1.BatchDelete{Keys: req.Msg.GetKeys()}}})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&concordv1.BatchDeleteResponse{Header: h.header(res.GetRevision()), Deleted: res.GetDeleted()}), nil
}

// BatchTouch sets many TTLs in one Raft entry.
func (h *KV) BatchTouch(ctx context.Context, req *connect.Request[concordv1.BatchTouchRequest]) (*connect.Response[concordv1.BatchTouchResponse], error) {
	touches := make([]*raftv1.Touch, 0, len(req.Msg.GetItems()))
	for _, it := range req.Msg.GetItems() {
		touches = append(touches, &raftv1.Touch{Key: it.GetKey(), TtlMs: it.GetTtlSeconds() * msPerSecond})
	}
	res, err := h.apply(ctx, &raftv1.Command{Op: &raftv1.Command_BatchTouch{BatchTouch: &raftv1.BatchTouch{Touches: touches}}})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&concordv1.BatchTouchResponse{Header: h.header(res.GetRevision()), Missing: res.GetMissing()}), nil
}

// EncodeCursor makes the opaque cursor that resumes a listing after key.
func EncodeCursor(key string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(key))
}

// DecodeCursor reverses EncodeCursor.
func DecodeCursor(c string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || !utf8.Valid(b) || len(b) > 512 {
		return "", connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("cursor %q is not a cursor returned by List", c))
	}
	return string(b), nil
}

// List pages through keys in order.
func (h *KV) List(ctx context.Context, req *connect.Request[concordv1.ListRequest]) (*connect.Response[concordv1.ListResponse], error) {
	m := req.Msg
	after := ""
	if m.GetCursor() != "" {
		var err error
		if after, err = DecodeCursor(m.GetCursor()); err != nil {
			return nil, err
		}
	}
	limit := int(m.GetLimit())
	if limit == 0 {
		limit = defaultListLimit
	}
	if err := h.barrier(ctx, m.GetConsistency(), 0); err != nil {
		return nil, err
	}
	now := h.ttlNow(m.GetWithTtl())
	entries, more, rev := h.Store.FSM().List(m.GetPrefix(), after, limit, store.AtLogTime)
	resp := &concordv1.ListResponse{Header: h.header(rev), Kvs: make([]*concordv1.KeyValue, 0, len(entries))}
	for _, e := range entries {
		kv, err := h.toKV(e, now, !m.GetKeysOnly(), m.GetWithTtl())
		if err != nil {
			return nil, err
		}
		resp.Kvs = append(resp.Kvs, kv)
	}
	if more && len(entries) > 0 {
		resp.NextCursor = EncodeCursor(entries[len(entries)-1].Key)
	}
	return connect.NewResponse(resp), nil
}

// CompressionStats reports compression of a stored key or a given value.
func (h *KV) CompressionStats(ctx context.Context, req *connect.Request[concordv1.CompressionStatsRequest]) (*connect.Response[concordv1.CompressionStatsResponse], error) {
	var st compress.Stats
	var rev uint64
	switch src := req.Msg.GetSource().(type) {
	case *concordv1.CompressionStatsRequest_Key:
		if err := h.barrier(ctx, concordv1.Consistency_CONSISTENCY_UNSPECIFIED, 0); err != nil {
			return nil, err
		}
		var e *store.Entry
		e, rev = h.Store.FSM().Get(src.Key, store.AtLogTime)
		if e == nil {
			return nil, notFound(src.Key)
		}
		algo := e.Compression
		if algo == concordv1.CompressionAlgorithm_COMPRESSION_ALGORITHM_UNSPECIFIED {
			algo = compress.None
		}
		st = compress.StatsOf(algo, int(e.OriginalSize), len(e.Value))
	case *concordv1.CompressionStatsRequest_Value:
		var err error
		if st, err = h.Compressor.Stats(src.Value); err != nil {
			return nil, toConnectError(err)
		}
		rev = h.Store.FSM().Applied()
	}
	return connect.NewResponse(&concordv1.CompressionStatsResponse{
		Header: h.header(rev), Algorithm: st.Algorithm,
		OriginalSize: uint64(st.OriginalSize), CompressedSize: uint64(st.CompressedSize),
		CompressionRatio: st.RatioPercent, SavingsBytes: int64(st.SavingsBytes), SavingsPercent: st.SavingsPercent,
	}), nil
}
