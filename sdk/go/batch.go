package concord

import (
	"context"
	"time"

	"connectrpc.com/connect"
	concordv1 "github.com/concord-kv/concord/proto/gen/go/concord/v1"
)

// Item is one key of PutMany.
type Item struct {
	Key   string
	Value []byte
	// TTL is 0 for no expiry, else a whole number of seconds.
	TTL time.Duration
	// ContentType defaults to application/octet-stream.
	ContentType string
	// Compress forces (true) or disables (false) compression of this value;
	// nil lets the server compress values above its threshold.
	Compress *bool
}

// TouchItem is one key of TouchMany.
type TouchItem struct {
	Key string
	TTL time.Duration
}

// GetManyResult holds the keys found (in request order) and those missing.
type GetManyResult struct {
	KVs      []*KV
	Missing  []string
	Revision uint64
	// Node is the replica that served the call.
	Node string
}

// BatchResult is the outcome of DeleteMany and TouchMany.
type BatchResult struct {
	Revision uint64
	// Deleted counts the live keys DeleteMany removed.
	Deleted int
	// Missing lists the keys TouchMany did not find.
	Missing []string
	// Node is the replica that served the call.
	Node string
}

func checkBatch(n int) error {
	if n == 0 || n > MaxBatchItems {
		return invalid("a batch holds 1..%d items, got %d", MaxBatchItems, n)
	}
	return nil
}

func checkTTL(d time.Duration) error {
	if d < 0 || d%time.Second != 0 {
		return invalid("TTL %v must be a whole number of seconds >= 0", d)
	}
	return nil
}

// PutMany stores up to 500 items atomically: all are written at one
// revision, or none.
func (c *Client) PutMany(ctx context.Context, items []Item) (WriteResult, error) {
	if err := checkBatch(len(items)); err != nil {
		return WriteResult{}, err
	}
	req := &concordv1.BatchPutRequest{Items: make([]*concordv1.PutItem, len(items))}
	for i, it := range items {
		if err := checkKey(it.Key); err != nil {
			return WriteResult{}, err
		}
		if err := checkValue(it.Value); err != nil {
			return WriteResult{}, err
		}
		if err := checkTTL(it.TTL); err != nil {
			return WriteResult{}, err
		}
		ct := it.ContentType
		if ct == "" {
			ct = ContentTypeBytes
		}
		req.Items[i] = &concordv1.PutItem{
			Key: it.Key, Value: it.Value, TtlSeconds: int64(it.TTL / time.Second), ContentType: ct,
			Compress: compressMode(it.Compress),
		}
	}
	var res WriteResult
	err := c.do(ctx, "put_many", writeCall, true, func(ctx context.Context, e *endpoint) error {
		resp, err := e.kv.BatchPut(ctx, connect.NewRequest(req))
		if err == nil {
			res = header(resp.Msg.GetHeader())
		}
		return err
	})
	return res, err
}

// GetMany reads up to 500 keys from one consistent view. Options:
// Consistency, MinRevision, WithRemainingTTL.
func (c *Client) GetMany(ctx context.Context, keys []string, opts ...OpOption) (*GetManyResult, error) {
	o, err := buildOp("GetMany", getManyOptions, opts)
	if err != nil {
		return nil, err
	}
	if err := checkBatch(len(keys)); err != nil {
		return nil, err
	}
	for _, k := range keys {
		if err := checkKey(k); err != nil {
			return nil, err
		}
	}
	cons, toLeader := c.level(o.consistency)
	req := &concordv1.BatchGetRequest{Keys: keys, Consistency: cons, MinRevision: o.minRevision, WithTtl: o.withTTL}
	var out *GetManyResult
	err = c.do(ctx, "get_many", readCall, toLeader, func(ctx context.Context, e *endpoint) error {
		resp, err := e.kv.BatchGet(ctx, connect.NewRequest(req))
		if err != nil {
			return err
		}
		h := resp.Msg.GetHeader()
		out = &GetManyResult{Missing: resp.Msg.GetMissing(), Revision: h.GetRevision(), Node: h.GetNodeId()}
		for _, kv := range resp.Msg.GetKvs() {
			out.KVs = append(out.KVs, toKV(kv, resp.Msg.GetHeader()))
		}
		return nil
	})
	return out, err
}

// getManyOptions are the options GetMany takes.
var getManyOptions = allow("Consistency", "MinRevision", "WithRemainingTTL")

// DeleteMany removes up to 500 keys atomically.
func (c *Client) DeleteMany(ctx context.Context, keys []string) (BatchResult, error) {
	if err := checkBatch(len(keys)); err != nil {
		return BatchResult{}, err
	}
	for _, k := range keys {
		if err := checkKey(k); err != nil {
			return BatchResult{}, err
		}
	}
	req := &concordv1.BatchDeleteRequest{Keys: keys}
	var res BatchResult
	err := c.do(ctx, "delete_many", writeCall, true, func(ctx context.Context, e *endpoint) error {
		resp, err := e.kv.BatchDelete(ctx, connect.NewRequest(req))
		if err == nil {
			h := resp.Msg.GetHeader()
			res = BatchResult{Revision: h.GetRevision(), Deleted: int(resp.Msg.GetDeleted()), Node: h.GetNodeId()}
		}
		return err
	})
	return res, err
}

// TouchMany sets the TTL of up to 500 keys atomically; missing keys are
// reported in BatchResult.Missing and left alone.
func (c *Client) TouchMany(ctx context.Context, items []TouchItem) (BatchResult, error) {
	if err := checkBatch(len(items)); err != nil {
		return BatchResult{}, err
	}
	req := &concordv1.BatchTouchRequest{Items: make([]*concordv1.TouchItem, len(items))}
	for i, it := range items {
		if err := checkKey(it.Key); err != nil {
			return BatchResult{}, err
		}
		if err := checkTTL(it.TTL); err != nil {
			return BatchResult{}, err
		}
		req.Items[i] = &concordv1.TouchItem{Key: it.Key, TtlSeconds: int64(it.TTL / time.Second)}
	}
	var res BatchResult
	err := c.do(ctx, "touch_many", writeCall, true, func(ctx context.Context, e *endpoint) error {
		resp, err := e.kv.BatchTouch(ctx, connect.NewRequest(req))
		if err == nil {
			h := resp.Msg.GetHeader()
			res = BatchResult{Revision: h.GetRevision(), Missing: resp.Msg.GetMissing(), Node: h.GetNodeId()}
		}
		return err
	})
	return res, err
}
