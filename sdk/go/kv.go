package concord

import (
	"context"
	"time"
	"unicode/utf8"

	"connectrpc.com/connect"
	concordv1 "github.com/concord-kv/concord/proto/gen/go/concord/v1"
)

// Limits the cluster enforces; the client checks them before sending.
const (
	MaxKeyBytes   = 512
	MaxValueBytes = 1 << 20
	MaxBatchItems = 500
)

// ContentTypeBytes is the content type of raw values written by Put.
const ContentTypeBytes = "application/octet-stream"

// KV is a stored key as read.
type KV struct {
	Key   string
	Value []byte
	// ContentType given when the value was written (application/json for
	// values written as JSON through REST or Typed).
	ContentType string
	// CreateRevision is the revision that created the key; ModRevision the
	// revision of its last write; Version the number of writes since creation.
	CreateRevision uint64
	ModRevision    uint64
	Version        uint64
	// ExpiresAt is zero when the key does not expire.
	ExpiresAt time.Time
	// TTL is the remaining time to live, when asked for (GetWithTTL,
	// WithRemainingTTL) and the key expires.
	TTL time.Duration
	// Revision is the revision the read was served at; Node the replica that served it.
	Revision uint64
	Node     string
}

// WriteResult is the outcome of a write.
type WriteResult struct {
	// Revision is the Raft index that applied the write.
	Revision uint64
	Node     string
}

// DeleteResult is the outcome of Delete.
type DeleteResult struct {
	Revision uint64
	// Deleted reports whether a live key was removed.
	Deleted bool
	// Node is the replica that served the call.
	Node string
}

func checkKey(k string) error {
	if k == "" || len(k) > MaxKeyBytes {
		return invalid("key must be 1..%d bytes, got %d", MaxKeyBytes, len(k))
	}
	if !utf8.ValidString(k) {
		return invalid("key %q is not UTF-8", k)
	}
	for _, r := range k {
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) {
			return invalid("key %q contains a control character", k)
		}
	}
	return nil
}

func checkValue(v []byte) error {
	if len(v) > MaxValueBytes {
		return invalid("value is %d bytes, more than %d", len(v), MaxValueBytes)
	}
	return nil
}

func (c *Client) level(l ConsistencyLevel) (concordv1.Consistency, bool) {
	if l == Default {
		l = c.opts.consistency
	}
	switch l {
	case Eventual:
		return concordv1.Consistency_CONSISTENCY_EVENTUAL, false
	case Strong:
		return concordv1.Consistency_CONSISTENCY_STRONG, true
	}
	return concordv1.Consistency_CONSISTENCY_LEADER, true
}

func header(h *concordv1.ResponseHeader) WriteResult {
	return WriteResult{Revision: h.GetRevision(), Node: h.GetNodeId()}
}

func compressMode(compress *bool) concordv1.CompressMode {
	switch {
	case compress == nil:
		return concordv1.CompressMode_COMPRESS_MODE_UNSPECIFIED
	case *compress:
		return concordv1.CompressMode_COMPRESS_MODE_FORCE
	}
	return concordv1.CompressMode_COMPRESS_MODE_OFF
}

func ttlSeconds(o *op) int64 {
	if o.ttl == nil {
		return 0
	}
	return int64(*o.ttl / time.Second)
}

// Put stores value under key. Options: WithTTL, IfAbsent, IfModRevision,
// Compress, WithContentType.
func (c *Client) Put(ctx context.Context, key string, value []byte, opts ...OpOption) (WriteResult, error) {
	o, err := buildOp("Put", putOptions, opts)
	if err != nil {
		return WriteResult{}, err
	}
	if err := checkKey(key); err != nil {
		return WriteResult{}, err
	}
	if err := checkValue(value); err != nil {
		return WriteResult{}, err
	}
	ct := o.contentType
	if ct == "" {
		ct = ContentTypeBytes
	}
	if c.co != nil && !o.ifAbsent && o.ifModRevision == 0 {
		return c.co.put(ctx, &concordv1.PutItem{
			Key: key, Value: value, TtlSeconds: ttlSeconds(o), ContentType: ct, Compress: compressMode(o.compress),
		})
	}
	return c.putOne(ctx, &concordv1.PutRequest{
		Key: key, Value: value, TtlSeconds: ttlSeconds(o), ContentType: ct, Compress: compressMode(o.compress),
		IfAbsent: o.ifAbsent, IfModRevision: o.ifModRevision,
	})
}

// putOne sends one Put RPC (with routing and retries).
func (c *Client) putOne(ctx context.Context, req *concordv1.PutRequest) (WriteResult, error) {
	var res WriteResult
	err := c.do(ctx, "put", writeCall, true, func(ctx context.Context, e *endpoint) error {
		resp, err := e.kv.Put(ctx, connect.NewRequest(req))
		if err == nil {
			res = header(resp.Msg.GetHeader())
		}
		return err
	})
	return res, err
}

func toKV(kv *concordv1.KeyValue, h *concordv1.ResponseHeader) *KV {
	out := &KV{
		Key: kv.GetKey(), Value: kv.GetValue(), ContentType: kv.GetContentType(),
		CreateRevision: kv.GetCreateRevision(), ModRevision: kv.GetModRevision(), Version: kv.GetVersion(),
		Revision: h.GetRevision(), Node: h.GetNodeId(),
	}
	if ms := kv.GetExpiresAtUnixMs(); ms != 0 {
		out.ExpiresAt = time.UnixMilli(ms)
	}
	if kv.TtlSeconds != nil {
		out.TTL = time.Duration(kv.GetTtlSeconds()) * time.Second
	}
	return out
}

func (c *Client) get(ctx context.Context, call, key string, withTTL bool, opts []OpOption) (*KV, error) {
	o, err := buildOp(call, readOptions, opts)
	if err != nil {
		return nil, err
	}
	if err := checkKey(key); err != nil {
		return nil, err
	}
	cons, toLeader := c.level(o.consistency)
	if c.co != nil {
		return c.co.get(ctx, getLaneKey{cons: cons, toLeader: toLeader, withTTL: withTTL, minRev: o.minRevision}, key)
	}
	return c.getOne(ctx, &concordv1.GetRequest{Key: key, Consistency: cons, WithTtl: withTTL, MinRevision: o.minRevision}, toLeader)
}

// getOne sends one Get RPC (with routing and retries).
func (c *Client) getOne(ctx context.Context, req *concordv1.GetRequest, toLeader bool) (*KV, error) {
	var out *KV
	err := c.do(ctx, "get", readCall, toLeader, func(ctx context.Context, e *endpoint) error {
		resp, err := e.kv.Get(ctx, connect.NewRequest(req))
		if err == nil {
			out = toKV(resp.Msg.GetKv(), resp.Msg.GetHeader())
		}
		return err
	})
	return out, err
}

// Get reads key. Options: Consistency, MinRevision. A missing or expired
// key fails with ErrNotFound.
func (c *Client) Get(ctx context.Context, key string, opts ...OpOption) (*KV, error) {
	return c.get(ctx, "Get", key, false, opts)
}

// GetWithTTL reads key and its remaining TTL (KV.TTL, zero when the key does
// not expire).
func (c *Client) GetWithTTL(ctx context.Context, key string, opts ...OpOption) (*KV, error) {
	return c.get(ctx, "GetWithTTL", key, true, opts)
}

// TTL returns the remaining time to live of key; ok is false when the key
// does not expire.
func (c *Client) TTL(ctx context.Context, key string, opts ...OpOption) (ttl time.Duration, ok bool, err error) {
	o, err := buildOp("TTL", allow("Consistency"), opts)
	if err != nil {
		return 0, false, err
	}
	if err := checkKey(key); err != nil {
		return 0, false, err
	}
	cons, toLeader := c.level(o.consistency)
	req := &concordv1.GetTTLRequest{Key: key, Consistency: cons}
	err = c.do(ctx, "ttl", readCall, toLeader, func(ctx context.Context, e *endpoint) error {
		resp, err := e.kv.GetTTL(ctx, connect.NewRequest(req))
		if err == nil && resp.Msg.TtlSeconds != nil {
			ttl, ok = time.Duration(resp.Msg.GetTtlSeconds())*time.Second, true
		}
		return err
	})
	return ttl, ok, err
}

// Touch sets key's TTL to ttl from now; 0 removes the expiry. It does not
// change the key's ModRevision. A missing key fails with ErrNotFound.
func (c *Client) Touch(ctx context.Context, key string, ttl time.Duration) (WriteResult, error) {
	if err := checkKey(key); err != nil {
		return WriteResult{}, err
	}
	if ttl < 0 || ttl%time.Second != 0 {
		return WriteResult{}, invalid("Touch: TTL %v must be a whole number of seconds >= 0", ttl)
	}
	req := &concordv1.TouchRequest{Key: key, TtlSeconds: int64(ttl / time.Second)}
	var res WriteResult
	err := c.do(ctx, "touch", writeCall, true, func(ctx context.Context, e *endpoint) error {
		resp, err := e.kv.Touch(ctx, connect.NewRequest(req))
		if err == nil {
			res = header(resp.Msg.GetHeader())
		}
		return err
	})
	return res, err
}

// Delete removes key. Deleting a missing key succeeds with Deleted false.
// Options: IfModRevision.
func (c *Client) Delete(ctx context.Context, key string, opts ...OpOption) (DeleteResult, error) {
	o, err := buildOp("Delete", deleteOptions, opts)
	if err != nil {
		return DeleteResult{}, err
	}
	if err := checkKey(key); err != nil {
		return DeleteResult{}, err
	}
	req := &concordv1.DeleteRequest{Key: key, IfModRevision: o.ifModRevision}
	var res DeleteResult
	err = c.do(ctx, "delete", writeCall, true, func(ctx context.Context, e *endpoint) error {
		resp, err := e.kv.Delete(ctx, connect.NewRequest(req))
		if err == nil {
			h := resp.Msg.GetHeader()
			res = DeleteResult{Revision: h.GetRevision(), Deleted: resp.Msg.GetDeleted(), Node: h.GetNodeId()}
		}
		return err
	})
	return res, err
}
