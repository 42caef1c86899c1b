package chaos

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
	concord "github.com/concord-kv/concord/sdk/go"
)

// The richer workload (Workload.RichOps): touch, batch put (PutMany),
// strong batch get (GetMany) and leader-consistency reads, besides the
// single-key operations.
//
// Porcupine's model is partitioned by key, so a multi-key operation is
// recorded as one operation per key, each with the batch's call and return
// times (Input.Batch names the batch). For a batch get that only weakens
// what is checked: each key may be linearized anywhere in the call, not all
// at one point. For a batch put it is sound because the batch is applied
// at one revision, and each key's part carries that revision; what the
// per-key check cannot see, that all keys of a batch took effect together,
// is checked apart:
//   - every read that saw a value of a batch saw it at the same mod_revision
//     as every other read of that batch's values, and as the acknowledged
//     revision (CheckBatches);
//   - a batch get that returns a key of batch B at revision r never returns
//     another key of B with a mod_revision older than r (torn batch).
//
// Leader reads (concord.Leader) are not linearizable across leader changes
// (a deposed leader may serve stale data for a lease period), so they stay
// out of the history. They are checked with weaker rules: a value they
// return was written by a put of that key that was invoked; their
// revisions are in order (checkRevisions); and the revision a replica
// serves them at never goes back for one client while the replica process
// stays the same.

// Ledger remembers every value a put was invoked with and every batch
// put, for the checks that porcupine cannot make. Safe for concurrent use.
type Ledger struct {
	mu      sync.Mutex
	invoked map[string]string // value -> key
	batchOf map[string]int    // value -> batch id
	batches map[int]*batchRecord
	next    int
}

type batchRecord struct {
	id     int
	client int
	keys   []string
	values []string
	acked  uint64              // the acknowledged revision; 0 if not acknowledged
	revs   map[uint64][]string // revision -> values that reads saw at it
}

// NewLedger returns an empty ledger.
func NewLedger() *Ledger {
	return &Ledger{invoked: map[string]string{}, batchOf: map[string]int{}, batches: map[int]*batchRecord{}}
}

// invoke records that a put of value to key is about to be sent.
func (l *Ledger) invoke(key, value string) {
	l.mu.Lock()
	l.invoked[value] = key
	l.mu.Unlock()
}

// invokedKey returns the key a put of value was invoked on.
func (l *Ledger) invokedKey(value string) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k, ok := l.invoked[value]
	return k, ok
}

// id returns a fresh batch id (batch puts and batch gets share them).
func (l *Ledger) id() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.next++
	return l.next
}

// newBatch records a batch put of values to keys that is about to be sent.
func (l *Ledger) newBatch(client int, keys, values []string) int {
	id := l.id()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := &batchRecord{id: id, client: client, keys: keys, values: values, revs: map[uint64][]string{}}
	l.batches[id] = b
	for i, v := range values {
		l.invoked[v] = keys[i]
		l.batchOf[v] = id
	}
	return id
}

func (l *Ledger) ack(id int, rev uint64) {
	l.mu.Lock()
	l.batches[id].acked = rev
	l.mu.Unlock()
}

// batchKeys returns the keys of the batch put that wrote value, and that
// batch's id (0 if value was not written by a batch).
func (l *Ledger) batchKeys(value string) (int, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	id, ok := l.batchOf[value]
	if !ok {
		return 0, nil
	}
	return id, l.batches[id].keys
}

// observe records that a read saw value at mod_revision rev.
func (l *Ledger) observe(value string, rev uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	id, ok := l.batchOf[value]
	if !ok {
		return
	}
	b := l.batches[id]
	if !slices.Contains(b.revs[rev], value) {
		b.revs[rev] = append(b.revs[rev], value)
	}
}

// Batches counts the batch puts recorded.
func (l *Ledger) Batches() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.batches)
}

// CheckBatches records every successful read of ops (strong gets, batch
// gets and the final reads) and returns a violation for each batch put
// whose values were seen at more than one revision, or at another
// revision than the one acknowledged: its keys were not written together.
func (l *Ledger) CheckBatches(ops []porcupine.Operation) []string {
	for _, op := range ops {
		in, out := op.Input.(Input), op.Output.(Output)
		if in.Op == OpGet && out.Status == StatusOK {
			l.observe(out.Value, out.Rev)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	ids := make([]int, 0, len(l.batches))
	for id := range l.batches {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	var bad []string
	for _, id := range ids {
		b := l.batches[id]
		revs := map[uint64]bool{}
		for r := range b.revs {
			revs[r] = true
		}
		if b.acked != 0 {
			revs[b.acked] = true
		}
		if len(revs) <= 1 {
			continue
		}
		var seen []string
		for r, vs := range b.revs {
			seen = append(seen, fmt.Sprintf("%v@%d", vs, r))
		}
		sort.Strings(seen)
		bad = append(bad, fmt.Sprintf("batch put %d (client %d, keys %v, values %v, acknowledged at %d) was not applied at one revision: reads saw %s",
			b.id, b.client, b.keys, b.values, b.acked, strings.Join(seen, ", ")))
	}
	return bad
}

// richOp runs one of the richer operations 30% of the time and reports
// whether it did.
func (c *client) richOp(ctx context.Context, w Workload, clock Clock, hist *History) bool {
	p := c.rng.IntN(100)
	switch {
	case p < 8:
		c.touchOp(ctx, w, clock, hist)
	case p < 18:
		c.batchPutOp(ctx, w, clock, hist)
	case p < 24:
		c.batchGetOp(ctx, w, clock, hist)
	case p < 30:
		c.leaderReadOp(ctx, w)
	default:
		return false
	}
	return true
}

// someKeys picks 2 or 3 distinct register keys.
func (c *client) someKeys(w Workload) []string {
	n := min(w.Keys, 2+c.rng.IntN(2))
	var keys []string
	for _, i := range c.rng.Perm(w.Keys)[:n] {
		keys = append(keys, w.RegisterKey(i))
	}
	return keys
}

// shortTTL is, half of the time when w.ShortTTL is set, a TTL of 1 s to
// w.ShortTTL in whole seconds; else 0.
func (c *client) shortTTL(w Workload) time.Duration {
	if w.ShortTTL < time.Second || c.rng.IntN(2) == 0 {
		return 0
	}
	return time.Duration(1+c.rng.Int64N(int64(w.ShortTTL/time.Second))) * time.Second
}

// touchTTL is the TTL of a touch: a short one (w.ShortTTL), none, or one
// that outlasts any run.
func (c *client) touchTTL(w Workload) time.Duration {
	if short := c.shortTTL(w); short > 0 {
		return short
	}
	if c.rng.IntN(2) == 0 {
		return 0
	}
	if w.TTL > 0 {
		return w.TTL
	}
	return 3 * time.Hour
}

func (c *client) touchOp(ctx context.Context, w Workload, clock Clock, hist *History) {
	key := w.RegisterKey(c.rng.IntN(w.Keys))
	ttl := c.touchTTL(w)
	in := Input{Op: OpTouch, Key: key, TTL: int64(ttl / time.Second)}
	octx, cancel := opContext(ctx, w)
	defer cancel()
	call := clock.Now()
	res, err := c.c.Touch(octx, key, ttl)
	ret := clock.Now()
	var out Output
	switch {
	case err == nil:
		out = Output{Status: StatusOK, Rev: res.Revision, Node: res.Node}
	case errors.Is(err, concord.ErrNotFound) && !errors.Is(err, concord.ErrOutcomeUnknown) && !errors.Is(err, concord.ErrTimeout):
		out = Output{Status: StatusNotFound}
	default:
		if classify(err, c.findings) == StatusFailed {
			return
		}
		// A touch has no condition: a conflict is as unexpected as any
		// other error, and leaves the outcome open.
		out, ret = Output{Status: StatusUnknown, Err: err.Error()}, math.MaxInt64
	}
	hist.Add(porcupine.Operation{ClientId: c.id, Input: in, Call: call, Output: out, Return: ret})
}

func (c *client) batchPutOp(ctx context.Context, w Workload, clock Clock, hist *History) {
	keys := c.someKeys(w)
	values := make([]string, len(keys))
	items := make([]concord.Item, len(keys))
	ttl := c.ttl(w)
	for i, k := range keys {
		values[i] = c.value()
		items[i] = concord.Item{Key: k, Value: []byte(values[i]), TTL: time.Duration(ttl) * time.Second}
	}
	id := w.Ledger.newBatch(c.id, keys, values)
	octx, cancel := opContext(ctx, w)
	defer cancel()
	call := clock.Now()
	res, err := c.c.PutMany(octx, items)
	ret := clock.Now()
	out := Output{Status: StatusOK, Rev: res.Revision, Node: res.Node}
	if err != nil {
		if classify(err, c.findings) == StatusFailed {
			return
		}
		out, ret = Output{Status: StatusUnknown, Err: err.Error()}, math.MaxInt64
	} else {
		w.Ledger.ack(id, res.Revision)
	}
	for i, k := range keys {
		if out.Status == StatusOK {
			c.seen[k] = seenValue{value: values[i], rev: out.Rev, found: true}
		} else {
			delete(c.seen, k)
		}
		hist.Add(porcupine.Operation{ClientId: c.id, Input: Input{Op: OpPut, Key: k, Value: values[i], TTL: ttl, Batch: id},
			Call: call, Output: out, Return: ret})
	}
}

func (c *client) batchGetOp(ctx context.Context, w Workload, clock Clock, hist *History) {
	keys := c.someKeys(w)
	id := w.Ledger.id()
	octx, cancel := opContext(ctx, w)
	defer cancel()
	call := clock.Now()
	res, err := c.c.GetMany(octx, keys, concord.Consistency(concord.Strong))
	ret := clock.Now()
	if err != nil {
		return // a failed read observed nothing
	}
	found := map[string]*concord.KV{}
	for _, kv := range res.KVs {
		found[kv.Key] = kv
		c.checkRevisions("strong batch get", kv, 0)
	}
	for _, k := range keys {
		in := Input{Op: OpGet, Key: k, Batch: id}
		out := Output{Status: StatusNotFound, Node: res.Node}
		if kv, ok := found[k]; ok {
			out = Output{Status: StatusOK, Value: string(kv.Value), Rev: kv.ModRevision, Node: res.Node}
			c.seen[k] = seenValue{value: out.Value, rev: out.Rev, found: true}
		} else {
			c.seen[k] = seenValue{}
		}
		hist.Add(porcupine.Operation{ClientId: c.id, Input: in, Call: call, Output: out, Return: ret})
	}
	// A torn batch: one key of a batch put at its revision, another key of
	// the same batch older than that.
	for _, kv := range res.KVs {
		b, bkeys := w.Ledger.batchKeys(string(kv.Value))
		if b == 0 {
			continue
		}
		for _, k := range bkeys {
			if o, ok := found[k]; ok && o.ModRevision < kv.ModRevision {
				c.findings.Add("torn-batch-read", fmt.Sprintf(
					"strong batch get %v on %s at revision %d: %s=%s@%d is from batch put %d, but %s=%s@%d is older",
					keys, res.Node, res.Revision, kv.Key, kv.Value, kv.ModRevision, b, k, o.Value, o.ModRevision))
			}
		}
	}
}

// leaderRead is the last leader read a client had served by one replica
// process.
type leaderRead struct {
	gen int
	rev uint64
}

func (c *client) leaderReadOp(ctx context.Context, w Workload) {
	key := w.RegisterKey(c.rng.IntN(w.Keys))
	octx, cancel := opContext(ctx, w)
	defer cancel()
	var before map[string]int
	if w.Generations != nil {
		before = w.Generations()
	}
	kv, err := c.c.Get(octx, key, concord.Consistency(concord.Leader))
	if err != nil {
		return // not found, or nothing learned
	}
	c.checkRevisions("leader get", kv, 0)
	if k, ok := w.Ledger.invokedKey(string(kv.Value)); !ok || k != key {
		c.findings.Add("leader-read-phantom", fmt.Sprintf(
			"leader get of %s on %s returned %q@%d, a value no put of that key was invoked with",
			key, kv.Node, kv.Value, kv.ModRevision))
	}
	w.Ledger.observe(string(kv.Value), kv.ModRevision)
	if w.Generations == nil {
		return
	}
	gen := w.Generations()[kv.Node]
	if before[kv.Node] != gen || gen == 0 {
		return // the replica restarted during the read
	}
	if c.leaderReads == nil {
		c.leaderReads = map[string]leaderRead{}
	}
	last, ok := c.leaderReads[kv.Node]
	if ok && last.gen == gen && kv.Revision < last.rev {
		c.findings.Add("leader-read-revision-regressed", fmt.Sprintf(
			"client %d: leader get of %s served by %s at revision %d, after an earlier leader get served by the same process at %d",
			c.id, key, kv.Node, kv.Revision, last.rev))
	}
	if !ok || last.gen != gen || kv.Revision > last.rev {
		c.leaderReads[kv.Node] = leaderRead{gen: gen, rev: kv.Revision}
	}
}
