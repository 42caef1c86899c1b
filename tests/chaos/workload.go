package chaos

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
	concord "github.com/concord-kv/concord/sdk/go"
)

// Clock is the one monotonic clock every operation and fault is timed by.
type Clock struct{ start time.Time }

// NewClock starts a clock.
func NewClock() Clock { return Clock{start: time.Now()} }

// Now is the time since the clock started, in nanoseconds (monotonic).
func (c Clock) Now() int64 { return int64(time.Since(c.start)) }

// History collects operations from many goroutines.
type History struct {
	mu  sync.Mutex
	ops []porcupine.Operation
}

// Add records one operation.
func (h *History) Add(op porcupine.Operation) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// Ops returns a copy of the operations recorded so far.
func (h *History) Ops() []porcupine.Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]porcupine.Operation(nil), h.ops...)
}

// Workload settings.
type Workload struct {
	Keys       int // register keys
	Clients    int // register clients
	SetClients int // set clients
	// AnyReplica register clients turn discovery off and send each call
	// to a random replica, so followers forward writes and read-index
	// requests to the leader; the others go to the leader themselves.
	AnyReplica int
	OpTimeout  time.Duration // per operation
	MaxThink   time.Duration // pause between a client's operations
	KeyPrefix  string
	SetPrefix  string
	Seed       uint64
	// EndpointsOf gives a client its seed URLs; AllEndpoints is every
	// replica.
	EndpointsOf  func(client int, rng *rand.Rand) []string
	AllEndpoints []string
	// TTL, if not 0, goes on half of the register puts and on every set
	// add. It must outlast the run (and any clock jump) by far: a set
	// element that expires is a lost write.
	TTL time.Duration
	// ShortTTL, if not 0, puts a TTL of 1 s to ShortTTL on half of the
	// register puts and touches, so keys expire during the run and the
	// model checks when (regState). All replicas must share one clock: no
	// clock jumps.
	ShortTTL time.Duration
	// RichOps adds touch, batch put, batch get and leader reads to the
	// register clients' mix (ops.go); Ledger must be set.
	RichOps bool
	// Ledger records the values puts were invoked with and the batch puts.
	Ledger *Ledger
	// Generations returns, per node id, how many processes of it have
	// started (Cluster.Generation), so that leader reads are compared
	// only within one replica process; nil skips that check.
	Generations func() map[string]int
}

// RegisterKey names register key i.
func (w Workload) RegisterKey(i int) string { return fmt.Sprintf("%sk%d", w.KeyPrefix, i) }

// SetResult is what the set clients learned.
type SetResult struct {
	mu      sync.Mutex
	Acked   []string // certainly added
	Failed  []string // certainly not added
	Unknown []string // maybe added
	Adds    []SetAdd // every add, in the order they ended
}

// SetAdd is one set add as the client saw it.
type SetAdd struct {
	Key    string `json:"key"`
	Client int    `json:"client"`
	Call   int64  `json:"call"`
	Return int64  `json:"return"`
	Result string `json:"result"` // acked, failed, unknown
	Node   string `json:"node,omitempty"`
	Err    string `json:"err,omitempty"`
}

func (s *SetResult) add(list *[]string, a SetAdd) {
	s.mu.Lock()
	*list = append(*list, a.Key)
	s.Adds = append(s.Adds, a)
	s.mu.Unlock()
}

// Add returns the record of the add of key.
func (s *SetResult) Add(key string) (SetAdd, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.Adds {
		if a.Key == key {
			return a, true
		}
	}
	return SetAdd{}, false
}

// Findings collects broken guarantees seen while the workload runs, by
// kind: the first example of each and how often it happened.
type Findings struct {
	mu      sync.Mutex
	kinds   []string
	count   map[string]int
	example map[string]string
}

// Add records one finding of kind.
func (f *Findings) Add(kind, example string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.count == nil {
		f.count, f.example = map[string]int{}, map[string]string{}
	}
	if f.count[kind] == 0 {
		f.kinds = append(f.kinds, kind)
		f.example[kind] = example
	}
	f.count[kind]++
}

// List describes each kind found, in the order first seen.
func (f *Findings) List() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, k := range f.kinds {
		out = append(out, fmt.Sprintf("%s ×%d, first: %s", k, f.count[k], f.example[k]))
	}
	return out
}

// client is one SDK client and its HTTP client.
type client struct {
	id   int
	c    *concord.Client
	http *http.Client
	rng  *rand.Rand
	// seen remembers the last value and revision each key was read at,
	// for CAS.
	seen     map[string]seenValue
	seq      int
	findings *Findings
	// leaderReads is the last leader read served by each replica.
	leaderReads map[string]leaderRead
}

type seenValue struct {
	value string
	rev   uint64
	found bool
}

func newClient(ctx context.Context, id int, urls []string, w Workload, findings *Findings) (*client, error) {
	hc := newHTTPClient()
	opts := []concord.Option{concord.WithHTTPClient(hc), concord.WithTimeout(w.OpTimeout), concord.WithRefreshInterval(time.Second)}
	if id < w.AnyReplica {
		opts = append(opts, concord.WithDiscovery(false))
	}
	c, err := concord.New(ctx, urls, opts...)
	if err != nil {
		hc.CloseIdleConnections()
		return nil, err
	}
	return &client{id: id, c: c, http: hc, rng: rand.New(rand.NewPCG(w.Seed, uint64(id)+1)), seen: map[string]seenValue{}, findings: findings}, nil
}

func (c *client) close() {
	_ = c.c.Close()
	c.http.CloseIdleConnections()
}

// RunWorkload drives the register and set clients until ctx ends and
// returns when every client has finished its last operation. Operations
// already started when ctx ends run to their own timeout.
func RunWorkload(ctx context.Context, w Workload, clock Clock, hist *History, set *SetResult, findings *Findings) error {
	var clients []*client
	defer func() {
		for _, c := range clients {
			c.close()
		}
	}()
	rng := rand.New(rand.NewPCG(w.Seed, 7))
	for id := range w.Clients + w.SetClients {
		nctx, cancel := context.WithTimeout(ctx, time.Minute)
		urls := w.EndpointsOf(id, rng)
		if id < w.AnyReplica {
			urls = w.AllEndpoints
		}
		c, err := newClient(nctx, id, urls, w, findings)
		cancel()
		if err != nil {
			return fmt.Errorf("client %d: %w", id, err)
		}
		clients = append(clients, c)
	}
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() {
			for ctx.Err() == nil {
				if c.id < w.Clients {
					c.registerOp(ctx, w, clock, hist)
				} else {
					c.setOp(ctx, w, clock, set)
				}
				if w.MaxThink > 0 {
					sleepCtx(ctx, time.Duration(c.rng.Int64N(int64(w.MaxThink))))
				}
			}
		})
	}
	wg.Wait()
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) { sleepUntil(ctx, d) }

// sleepUntil sleeps for d and reports whether ctx is still alive.
func sleepUntil(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// opContext bounds one operation by the workload's timeout but not by ctx:
// an operation that started finishes (or times out) on its own, so a write
// is never abandoned by the harness in a state it did not record.
func opContext(ctx context.Context, w Workload) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), w.OpTimeout)
}

func (c *client) value() string {
	c.seq++
	return fmt.Sprintf("c%d-%d", c.id, c.seq)
}

// ttl picks the TTL of a put: a short one half of the time if
// w.ShortTTL is set, else w.TTL half of the time.
func (c *client) ttl(w Workload) int64 {
	if short := c.shortTTL(w); short > 0 {
		return int64(short / time.Second)
	}
	if w.TTL == 0 || c.rng.IntN(2) == 0 {
		return 0
	}
	return int64(w.TTL / time.Second)
}

func (c *client) registerOp(ctx context.Context, w Workload, clock Clock, hist *History) {
	if w.RichOps && c.richOp(ctx, w, clock, hist) {
		return
	}
	key := w.RegisterKey(c.rng.IntN(w.Keys))
	in := Input{Key: key}
	p := c.rng.IntN(100)
	seen, haveSeen := c.seen[key]
	switch {
	case p < 40:
		in.Op = OpGet
	case p < 60:
		in.Op, in.Value = OpPut, c.value()
		in.TTL = c.ttl(w)
	case p < 82:
		in.Value, in.TTL = c.value(), c.ttl(w)
		if haveSeen && seen.found {
			in.Op, in.ExpValue, in.ExpRev = OpCAS, seen.value, seen.rev
		} else {
			in.Op = OpPutAbsent
		}
	case p < 92 || !haveSeen || !seen.found:
		in.Op = OpDelete
	default:
		in.Op, in.ExpValue, in.ExpRev = OpCASDelete, seen.value, seen.rev
	}
	if w.Ledger != nil && (in.Op == OpPut || in.Op == OpCAS || in.Op == OpPutAbsent) {
		w.Ledger.invoke(key, in.Value)
	}
	octx, cancel := opContext(ctx, w)
	defer cancel()
	call := clock.Now()
	out, record := c.do(octx, in)
	ret := clock.Now()
	if !record {
		return
	}
	switch {
	case out.Status == StatusUnknown:
		ret = math.MaxInt64 // it may take effect at any time from now on
		delete(c.seen, key)
	case out.Status == StatusOK && (in.Op == OpDelete || in.Op == OpCASDelete):
		c.seen[key] = seenValue{}
	case out.Status == StatusOK && in.Op != OpGet:
		c.seen[key] = seenValue{value: in.Value, rev: out.Rev, found: true}
		if c.rng.IntN(100) < 30 {
			c.readYourWrite(ctx, w, key, out.Rev)
		}
	}
	hist.Add(porcupine.Operation{ClientId: c.id, Input: in, Call: call, Output: out, Return: ret})
}

// do runs one register operation. record is false for an operation that
// certainly had no effect and observed nothing: a failed read, or a write
// that failed with ErrNoLeader.
func (c *client) do(ctx context.Context, in Input) (out Output, record bool) {
	var err error
	switch in.Op {
	case OpGet:
		var kv *concord.KV
		kv, err = c.c.Get(ctx, in.Key, concord.Consistency(concord.Strong))
		switch {
		case err == nil:
			c.checkRevisions("strong get", kv, 0)
			c.seen[in.Key] = seenValue{value: string(kv.Value), rev: kv.ModRevision, found: true}
			return Output{Status: StatusOK, Value: string(kv.Value), Rev: kv.ModRevision, Node: kv.Node}, true
		case errors.Is(err, concord.ErrNotFound):
			c.seen[in.Key] = seenValue{}
			return Output{Status: StatusNotFound}, true
		}
		return Output{}, false
	case OpPut, OpCAS, OpPutAbsent:
		var opts []concord.OpOption
		switch in.Op {
		case OpCAS:
			opts = append(opts, concord.IfModRevision(in.ExpRev))
		case OpPutAbsent:
			opts = append(opts, concord.IfAbsent())
		}
		if in.TTL > 0 {
			opts = append(opts, concord.WithTTL(time.Duration(in.TTL)*time.Second))
		}
		var res concord.WriteResult
		res, err = c.c.Put(ctx, in.Key, []byte(in.Value), opts...)
		if err == nil {
			return Output{Status: StatusOK, Rev: res.Revision, Node: res.Node}, true
		}
	case OpDelete, OpCASDelete:
		var opts []concord.OpOption
		if in.Op == OpCASDelete {
			opts = append(opts, concord.IfModRevision(in.ExpRev))
		}
		var res concord.DeleteResult
		res, err = c.c.Delete(ctx, in.Key, opts...)
		if err == nil {
			return Output{Status: StatusOK, Rev: res.Revision, Deleted: res.Deleted}, true
		}
	}
	switch classify(err, c.findings) {
	case StatusConflict:
		return Output{Status: StatusConflict}, true
	case StatusFailed:
		return Output{}, false
	}
	return Output{Status: StatusUnknown, Err: err.Error()}, true
}

// classify reads a failed write's error by the SDK's contract: StatusConflict
// for a failed condition (not applied), StatusFailed for ErrNoLeader (not
// applied), StatusUnknown for ErrOutcomeUnknown, ErrTimeout and anything
// else (maybe applied). An error that claims both a certain and an
// uncertain outcome breaks the contract: it is reported to findings and
// taken as uncertain, so the histories stay sound.
func classify(err error, findings *Findings) Status {
	unknown := errors.Is(err, concord.ErrOutcomeUnknown) || errors.Is(err, concord.ErrTimeout)
	noLeader, conflict := errors.Is(err, concord.ErrNoLeader), errors.Is(err, concord.ErrConflict)
	switch {
	case unknown && (noLeader || conflict):
		findings.Add("sdk-ambiguous-write-error", fmt.Sprintf(
			"a write failed with an error that matches both ErrOutcomeUnknown/ErrTimeout (maybe applied) and ErrNoLeader/ErrConflict (certainly not applied): %v", err))
		return StatusUnknown
	case unknown:
		return StatusUnknown
	case conflict:
		return StatusConflict
	case noLeader:
		return StatusFailed
	}
	return StatusUnknown
}

// readYourWrite reads key back from any replica with an eventual read at
// MinRevision(rev), just after this client wrote it at rev. Such reads are
// not linearizable and stay out of the history; they are checked on their
// own: the replica must have applied rev, and the key it returns cannot be
// older than the write.
func (c *client) readYourWrite(ctx context.Context, w Workload, key string, rev uint64) {
	octx, cancel := opContext(ctx, w)
	defer cancel()
	kv, err := c.c.Get(octx, key, concord.Consistency(concord.Eventual), concord.MinRevision(rev))
	if err != nil {
		return // not found: deleted since; other errors: nothing learned
	}
	c.checkRevisions("eventual get at MinRevision", kv, rev)
	if w.Ledger != nil {
		w.Ledger.observe(string(kv.Value), kv.ModRevision)
	}
}

// checkRevisions checks a read's revisions against each other: the key was
// created no later than it was last modified, modified no later than the
// revision the read was served at, and (min > 0) no earlier than min.
func (c *client) checkRevisions(what string, kv *concord.KV, min uint64) {
	switch {
	case kv.CreateRevision > kv.ModRevision || kv.ModRevision > kv.Revision:
		c.findings.Add("read-revisions-out-of-order", fmt.Sprintf(
			"%s of %s on %s: create_revision %d, mod_revision %d, served at revision %d",
			what, kv.Key, kv.Node, kv.CreateRevision, kv.ModRevision, kv.Revision))
	case min > 0 && (kv.Revision < min || kv.ModRevision < min):
		c.findings.Add("stale-read-your-writes", fmt.Sprintf(
			"%s %d of %s on %s: served at revision %d with mod_revision %d, older than the client's own write at %d",
			what, min, kv.Key, kv.Node, kv.Revision, kv.ModRevision, min))
	}
}

// setOp adds one unique element (a key under SetPrefix) with IfAbsent.
func (c *client) setOp(ctx context.Context, w Workload, clock Clock, set *SetResult) {
	key := fmt.Sprintf("%s%s", w.SetPrefix, c.value())
	octx, cancel := opContext(ctx, w)
	defer cancel()
	a := SetAdd{Key: key, Client: c.id, Call: clock.Now()}
	opts := []concord.OpOption{concord.IfAbsent()}
	if w.TTL > 0 {
		opts = append(opts, concord.WithTTL(w.TTL))
	}
	res, err := c.c.Put(octx, key, []byte("1"), opts...)
	a.Return = clock.Now()
	if err != nil {
		a.Err = err.Error()
	}
	if err == nil {
		a.Result, a.Node = "acked", res.Node
		set.add(&set.Acked, a)
		return
	}
	switch classify(err, c.findings) {
	case StatusFailed:
		a.Result = "failed"
		set.add(&set.Failed, a)
	case StatusConflict:
		// The key is unique: it exists only if this very put was applied
		// before, so a conflict means a write was applied twice.
		c.findings.Add("duplicate-apply", fmt.Sprintf("set add %s: conflict on a unique key (applied twice?): %v", key, err))
		a.Result = "unknown"
		set.add(&set.Unknown, a)
	default:
		a.Result = "unknown"
		set.add(&set.Unknown, a)
	}
}
