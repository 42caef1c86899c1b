package concord

import (
	"context"
	"iter"

	"connectrpc.com/connect"
	concordv1 "github.com/concord-kv/concord/proto/gen/go/concord/v1"
)

// Page is one page of keys read by ListPage.
type Page struct {
	KVs []*KV
	// NextCursor continues the listing: pass it to the next ListPage. It is
	// empty on the last page.
	NextCursor string
	// Revision is the revision the page was read at; Node the replica that
	// served it.
	Revision uint64
	Node     string
}

// List iterates over every key starting with prefix, in key order, fetching
// a page at a time. Options: Consistency, KeysOnly, WithPageSize,
// WithRemainingTTL. Iteration stops at the first error, which is yielded.
//
// Each page is read at its own revision: keys written while the iteration
// runs may or may not appear, but no key present throughout is skipped or
// yielded twice.
func (c *Client) List(ctx context.Context, prefix string, opts ...OpOption) iter.Seq2[*KV, error] {
	return func(yield func(*KV, error) bool) {
		cursor := ""
		for {
			page, err := c.ListPage(ctx, prefix, cursor, opts...)
			if err != nil {
				yield(nil, err)
				return
			}
			for _, kv := range page.KVs {
				if !yield(kv, nil) {
					return
				}
			}
			if page.NextCursor == "" {
				return
			}
			cursor = page.NextCursor
		}
	}
}

// ListPage reads one page of the keys starting with prefix, in key order,
// after cursor: "" for the first page, then the NextCursor of the page
// before. It takes List's options (WithPageSize sets the page size, default
// 100). Use it to hand pages to someone else, such as a REST or web client;
// List is simpler for iterating in-process. A malformed cursor fails with
// ErrInvalidArgument.
func (c *Client) ListPage(ctx context.Context, prefix, cursor string, opts ...OpOption) (*Page, error) {
	o, err := buildOp("List", listOptions, opts)
	if err != nil {
		return nil, err
	}
	if len(prefix) > MaxKeyBytes {
		return nil, invalid("prefix longer than %d bytes", MaxKeyBytes)
	}
	cons, toLeader := c.level(o.consistency)
	req := &concordv1.ListRequest{
		Prefix: prefix, Cursor: cursor, Limit: uint32(o.limit), KeysOnly: o.keysOnly, Consistency: cons, WithTtl: o.withTTL,
	}
	var page *Page
	err = c.do(ctx, "list", readCall, toLeader, func(ctx context.Context, e *endpoint) error {
		resp, err := e.kv.List(ctx, connect.NewRequest(req))
		if err != nil {
			return err
		}
		h := resp.Msg.GetHeader()
		page = &Page{
			KVs:        make([]*KV, 0, len(resp.Msg.GetKvs())),
			NextCursor: resp.Msg.GetNextCursor(), Revision: h.GetRevision(), Node: h.GetNodeId(),
		}
		for _, kv := range resp.Msg.GetKvs() {
			page.KVs = append(page.KVs, toKV(kv, h))
		}
		return nil
	})
	return page, err
}
