package concord

import (
	"context"
	"iter"

	"connectrpc.com/connect"
	concordv1 "github.com/concord-kv/concord/proto/gen/go/concord/v1"
)

// List iterates over every key starting with prefix, in key order, fetching
// a page at a time. Options: Consistency, KeysOnly, WithPageSize,
// WithRemainingTTL. Iteration stops at the first error, which is yielded.
//
// Each page is read at its own revision: keys written while the iteration
// runs may or may not appear, but no key present throughout is skipped or
// yielded twice.
func (c *Client) List(ctx context.Context, prefix string, opts ...OpOption) iter.Seq2[*KV, error] {
	return func(yield func(*KV, error) bool) {
		o, err := buildOp("List", listOptions, opts)
		if err == nil && len(prefix) > MaxKeyBytes {
			err = invalid("prefix longer than %d bytes", MaxKeyBytes)
		}
		if err != nil {
			yield(nil, err)
			return
		}
		cons, toLeader := c.level(o.consistency)
		req := &concordv1.ListRequest{
			Prefix: prefix, Limit: uint32(o.limit), KeysOnly: o.keysOnly, Consistency: cons, WithTtl: o.withTTL,
		}
		for {
			var page *concordv1.ListResponse
			err := c.do(ctx, "list", readCall, toLeader, func(ctx context.Context, e *endpoint) error {
				resp, err := e.kv.List(ctx, connect.NewRequest(req))
				if err == nil {
					page = resp.Msg
				}
				return err
			})
			if err != nil {
				yield(nil, err)
				return
			}
			for _, kv := range page.GetKvs() {
				if !yield(toKV(kv, page.GetHeader()), nil) {
					return
				}
			}
			if page.GetNextCursor() == "" {
				return
			}
			req.Cursor = page.GetNextCursor()
		}
	}
}
