package concord

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	concordv1 "github.com/concord-kv/concord/proto/gen/go/concord/v1"
)

// Request coalescing (see the package doc, "Coalescing").
//
// Each kind of call (unconditional Put; Get with one set of read options)
// has a lane. A call that finds its lane with fewer than coalesceInflight
// RPCs in flight and nobody waiting goes out at once, alone, with the plain
// single-key RPC. Otherwise it queues; whenever an RPC of the lane ends, the
// queue is sent as one batch RPC (BatchGet or BatchPut) by a goroutine that
// lives as long as that RPC. So there is no added delay: batches form only
// from calls that would otherwise wait for the connection or the server.

// coalesceInflight is how many RPCs of one lane may be in flight at once:
// more than one, so that a batch forms while the previous one is served.
// With concord-bench at 16 and 64 clients on 2 cores, 2 beat 4, 8 and 16
// for puts, strong and eventual gets alike (fewer, larger batches: less CPU
// per call, the bottleneck).
const coalesceInflight = 2

// coalesceMaxBytes bounds the keys and values of one batch of Puts, so that
// a batch stays under the request limits a single Put meets (a gateway
// takes 2 MiB bodies by default, a value is at most 1 MiB): a larger value
// goes in a batch of its own.
const coalesceMaxBytes = 1 << 20

// coalescer holds the lanes of one Client.
type coalescer struct {
	c *Client

	mu   sync.Mutex
	gets map[getLaneKey]*lane[*getCall]
	puts lane[*putCall]
}

func newCoalescer(c *Client) *coalescer {
	return &coalescer{c: c, gets: map[getLaneKey]*lane[*getCall]{}}
}

// lane is the queue and in-flight count of one kind of call. It is guarded
// by coalescer.mu.
type lane[C any] struct {
	queue    []C
	inflight int
}

// getLaneKey holds the read options that must be equal for Gets to share a
// BatchGet.
type getLaneKey struct {
	cons     concordv1.Consistency
	toLeader bool
	withTTL  bool
	minRev   uint64
}

// flight is one batch RPC in flight. Its context is detached from the
// callers' (one caller giving up must not cancel the others) and is
// cancelled once every caller has given up.
type flight struct {
	waiting atomic.Int32
	cancel  context.CancelFunc
}

func (f *flight) leave() {
	if f.waiting.Add(-1) == 0 {
		f.cancel()
	}
}

// call is the state shared by queued calls of every kind.
type call struct {
	// ctx is the caller's: its batch takes the values and the deadline.
	ctx  context.Context
	done chan struct{} // closed once err (and the result) or alone is set
	err  error
	// alone: the batch was refused with a verdict that may concern only
	// some of its items; the caller makes its call alone instead.
	alone bool
	sent  *flight // nil while queued; guarded by coalescer.mu
}

type getCall struct {
	call
	key string
	kv  *KV
}

type putCall struct {
	call
	item *concordv1.PutItem
	res  WriteResult
}

// batchContext returns the context of a batch carrying calls: the values of
// the first call's context and the latest of their deadlines (the client's
// timeout for calls without one).
func (co *coalescer) batchContext(calls []*call) (context.Context, *flight) {
	var latest time.Time
	for _, c := range calls {
		dl, ok := c.ctx.Deadline()
		if !ok {
			dl = time.Now().Add(co.c.opts.timeout)
		}
		if dl.After(latest) {
			latest = dl
		}
	}
	ctx, cancel := context.WithDeadline(context.WithoutCancel(calls[0].ctx), latest)
	f := &flight{cancel: cancel}
	f.waiting.Store(int32(len(calls)))
	for _, c := range calls {
		c.sent = f
	}
	return ctx, f
}

// wait blocks until c is answered or its context ends; remove takes c out
// of its queue if it was not sent yet (called with co.mu held). It reports
// whether c was answered; if not, the caller's context ended.
func (co *coalescer) wait(c *call, remove func()) bool {
	select {
	case <-c.done:
		return true
	case <-c.ctx.Done():
	}
	co.mu.Lock()
	f := c.sent
	if f == nil {
		remove()
	}
	co.mu.Unlock()
	if f != nil {
		f.leave()
	}
	return false
}

// itemVerdict reports whether a batch failed with a verdict that may
// concern only some of its items (a bad or forbidden key, value or option):
// then each call is made alone, and gets its own verdict. Other errors
// (unavailable, rate limited, unauthenticated...) would have been each
// call's too.
func itemVerdict(err error) bool {
	if classify(err) != permanent {
		return false
	}
	switch connect.CodeOf(err) {
	case connect.CodeInvalidArgument, connect.CodeOutOfRange, connect.CodePermissionDenied:
		return true
	}
	return false
}

// removeCall takes c out of q (slices.Delete clears the freed slot, so the
// queue keeps no pointer to it).
func removeCall[C comparable](q []C, c C) []C {
	if i := slices.Index(q, c); i >= 0 {
		return slices.Delete(q, i, i+1)
	}
	return q
}

// withTimeout gives ctx the client's timeout if it has no deadline, as do
// would: a call that waits in a queue counts that wait in its timeout.
func (co *coalescer) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, co.c.opts.timeout)
}

// get reads key through the coalescer.
func (co *coalescer) get(ctx context.Context, k getLaneKey, key string) (*KV, error) {
	ctx, cancel := co.withTimeout(ctx)
	defer cancel()
	co.mu.Lock()
	l := co.gets[k]
	if l == nil {
		l = &lane[*getCall]{}
		co.gets[k] = l
	}
	if l.inflight < coalesceInflight && len(l.queue) == 0 {
		l.inflight++
		co.mu.Unlock()
		defer func() { // deferred: a panic in a transport must not leak the slot
			co.mu.Lock()
			l.inflight--
			co.startGetsLocked(k, l)
			co.mu.Unlock()
		}()
		return co.c.getOne(ctx, co.getRequest(k, key), k.toLeader)
	}
	gc := &getCall{call: call{ctx: ctx, done: make(chan struct{})}, key: key}
	l.queue = append(l.queue, gc)
	co.mu.Unlock()
	if !co.wait(&gc.call, func() { l.queue = removeCall(l.queue, gc) }) {
		return nil, fmt.Errorf("get: %w: %w", ErrTimeout, ctx.Err())
	}
	if gc.alone {
		return co.c.getOne(ctx, co.getRequest(k, key), k.toLeader)
	}
	return gc.kv, gc.err
}

func (co *coalescer) getRequest(k getLaneKey, key string) *concordv1.GetRequest {
	return &concordv1.GetRequest{Key: key, Consistency: k.cons, WithTtl: k.withTTL, MinRevision: k.minRev}
}

// startGetsLocked sends the queued Gets of lane k while it has room, and
// forgets the lane once it is idle.
func (co *coalescer) startGetsLocked(k getLaneKey, l *lane[*getCall]) {
	for l.inflight < coalesceInflight && len(l.queue) > 0 {
		n := min(len(l.queue), MaxBatchItems)
		calls := make([]*getCall, n)
		copy(calls, l.queue)
		l.queue = slices.Delete(l.queue, 0, n)
		base := make([]*call, n)
		for i, gc := range calls {
			base[i] = &gc.call
		}
		ctx, f := co.batchContext(base)
		l.inflight++
		go co.runGets(ctx, f, k, l, calls)
	}
	if l.inflight == 0 && len(l.queue) == 0 {
		delete(co.gets, k)
	}
}

// runGets sends one batch of Gets and answers its callers.
func (co *coalescer) runGets(ctx context.Context, f *flight, k getLaneKey, l *lane[*getCall], calls []*getCall) {
	defer func() {
		f.cancel()
		co.mu.Lock()
		l.inflight--
		co.startGetsLocked(k, l)
		co.mu.Unlock()
	}()
	if len(calls) == 1 {
		gc := calls[0]
		gc.kv, gc.err = co.c.getOne(ctx, co.getRequest(k, gc.key), k.toLeader)
		close(gc.done)
		return
	}
	keys := make([]string, 0, len(calls))
	seen := make(map[string]bool, len(calls))
	for _, gc := range calls {
		if !seen[gc.key] {
			seen[gc.key] = true
			keys = append(keys, gc.key)
		}
	}
	req := &concordv1.BatchGetRequest{Keys: keys, Consistency: k.cons, WithTtl: k.withTTL, MinRevision: k.minRev}
	var resp *concordv1.BatchGetResponse
	var refused bool
	err := co.c.do(ctx, "get", readCall, k.toLeader, func(ctx context.Context, e *endpoint) error {
		r, err := e.kv.BatchGet(ctx, connect.NewRequest(req))
		if err != nil {
			refused = itemVerdict(err)
			return err
		}
		resp = r.Msg
		return nil
	})
	if err != nil {
		for _, gc := range calls {
			gc.err, gc.alone = err, refused
			close(gc.done)
		}
		return
	}
	found := make(map[string]*concordv1.KeyValue, len(resp.GetKvs()))
	for _, kv := range resp.GetKvs() {
		found[kv.GetKey()] = kv
	}
	answered := make(map[string]bool, len(calls))
	for _, gc := range calls {
		if kv := found[gc.key]; kv != nil {
			gc.kv = toKV(kv, resp.GetHeader())
			if answered[gc.key] {
				// Callers of one key each get their own value to change.
				gc.kv.Value = bytes.Clone(gc.kv.Value)
			}
			answered[gc.key] = true
		} else {
			gc.err = fmt.Errorf("get: %w: key %q not found", ErrNotFound, gc.key)
		}
		close(gc.done)
	}
}

// put writes one unconditional item through the coalescer.
func (co *coalescer) put(ctx context.Context, item *concordv1.PutItem) (WriteResult, error) {
	ctx, cancel := co.withTimeout(ctx)
	defer cancel()
	co.mu.Lock()
	l := &co.puts
	if l.inflight < coalesceInflight && len(l.queue) == 0 {
		l.inflight++
		co.mu.Unlock()
		defer func() { // deferred: a panic in a transport must not leak the slot
			co.mu.Lock()
			l.inflight--
			co.startPutsLocked()
			co.mu.Unlock()
		}()
		return co.c.putOne(ctx, putRequest(item))
	}
	// A queued write may be sent after its caller has returned (timed out):
	// it takes its own copy of the value, which the caller may reuse.
	queued := &concordv1.PutItem{
		Key: item.GetKey(), Value: bytes.Clone(item.GetValue()), TtlSeconds: item.GetTtlSeconds(),
		ContentType: item.GetContentType(), Compress: item.Compress,
	}
	pc := &putCall{call: call{ctx: ctx, done: make(chan struct{})}, item: queued}
	l.queue = append(l.queue, pc)
	co.mu.Unlock()
	if !co.wait(&pc.call, func() { l.queue = removeCall(l.queue, pc) }) {
		return WriteResult{}, unknownOutcome("put", ctx.Err())
	}
	if pc.alone {
		return co.c.putOne(ctx, putRequest(item))
	}
	return pc.res, pc.err
}

func putRequest(it *concordv1.PutItem) *concordv1.PutRequest {
	return &concordv1.PutRequest{
		Key: it.GetKey(), Value: it.GetValue(), TtlSeconds: it.GetTtlSeconds(),
		ContentType: it.GetContentType(), Compress: it.GetCompress(),
	}
}

// startPutsLocked sends the queued Puts while the lane has room. A batch
// never holds two writes of one key: each write of a key must get its own
// revision, so the second waits for a later batch.
func (co *coalescer) startPutsLocked() {
	l := &co.puts
	for l.inflight < coalesceInflight && len(l.queue) > 0 {
		var calls []*putCall
		var keys map[string]bool
		size := 0
		rest := l.queue[:0]
		for _, pc := range l.queue {
			k := pc.item.GetKey()
			n := len(k) + len(pc.item.GetValue())
			if len(calls) == MaxBatchItems || keys[k] || len(calls) > 0 && size+n > coalesceMaxBytes {
				rest = append(rest, pc)
				continue
			}
			if keys == nil {
				keys = make(map[string]bool, len(l.queue))
			}
			keys[k] = true
			size += n
			calls = append(calls, pc)
		}
		clear(l.queue[len(rest):])
		l.queue = rest
		base := make([]*call, len(calls))
		for i, pc := range calls {
			base[i] = &pc.call
		}
		ctx, f := co.batchContext(base)
		l.inflight++
		go co.runPuts(ctx, f, calls)
	}
}

// errCallersLeft ends a batch whose callers have all given up.
var errCallersLeft = errors.New("every caller of the batch gave up")

// runPuts sends one batch of Puts and answers its callers.
func (co *coalescer) runPuts(ctx context.Context, f *flight, calls []*putCall) {
	defer func() {
		f.cancel()
		co.mu.Lock()
		co.puts.inflight--
		co.startPutsLocked()
		co.mu.Unlock()
	}()
	if len(calls) == 1 {
		pc := calls[0]
		pc.res, pc.err = co.c.putOne(ctx, putRequest(pc.item))
		close(pc.done)
		return
	}
	var res WriteResult
	var refused bool
	err := co.c.do(ctx, "put", writeCall, true, func(ctx context.Context, e *endpoint) error {
		// Only the writes of callers still waiting go out: a retry follows
		// a failure that wrote nothing, and a caller that gave up has been
		// told "outcome unknown", so its write must not land later (after
		// a newer write of the same key, say).
		req := &concordv1.BatchPutRequest{Items: make([]*concordv1.PutItem, 0, len(calls))}
		for _, pc := range calls {
			if pc.ctx.Err() == nil {
				req.Items = append(req.Items, pc.item)
			}
		}
		if len(req.Items) == 0 {
			return errCallersLeft // nothing sent: every caller has returned
		}
		resp, err := e.kv.BatchPut(ctx, connect.NewRequest(req))
		if err != nil {
			// A verdict means nothing was written (BatchPut is atomic): the
			// items that are fine on their own can still go alone.
			refused = itemVerdict(err)
			return err
		}
		// Every item is written by the batch's one Raft entry: its
		// ModRevision is the batch's revision.
		res = header(resp.Msg.GetHeader())
		return nil
	})
	for _, pc := range calls {
		pc.res, pc.err, pc.alone = res, err, err != nil && refused
		close(pc.done)
	}
}
