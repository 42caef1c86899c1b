package concord_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	concord "github.com/concord-kv/concord/sdk/go"
)

// gate is an HTTP transport that can hold KV requests until released, so a
// test decides which calls are in flight and which queue behind them.
type gate struct {
	next http.RoundTripper

	mu      sync.Mutex
	holding bool
	held    int
	release chan struct{}
	paths   []string // KV methods sent, in order
}

func newGate() *gate {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &gate{next: &http.Transport{Protocols: &p}, release: make(chan struct{})}
}

func (g *gate) RoundTrip(r *http.Request) (*http.Response, error) {
	if method, ok := strings.CutPrefix(r.URL.Path, "/concord.v1.KVService/"); ok {
		g.mu.Lock()
		g.paths = append(g.paths, method)
		hold, release := g.holding, g.release
		if hold {
			g.held++
		}
		g.mu.Unlock()
		if hold {
			select {
			case <-release:
			case <-r.Context().Done():
				return nil, r.Context().Err()
			}
		}
	}
	return g.next.RoundTrip(r)
}

// hold makes KV requests wait from now on.
func (g *gate) hold() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.holding, g.paths = true, nil
}

// open lets every held and later request through.
func (g *gate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.holding, g.held = false, 0
	close(g.release)
	g.release = make(chan struct{})
}

// sent returns the KV methods sent since hold, counted by name.
func (g *gate) sent() map[string]int {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := map[string]int{}
	for _, p := range g.paths {
		out[p]++
	}
	return out
}

// waitFor polls cond until it holds or the test's deadline nears.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("gave up waiting for %s", what)
		case <-time.After(time.Millisecond):
		}
	}
}

// gatedClient returns a client whose KV requests go through g.
func gatedClient(t *testing.T, g *gate) *concord.Client {
	t.Helper()
	return newClient(t, cluster(t).URLs(), concord.WithHTTPClient(&http.Client{Transport: g}))
}

// fillLane starts CoalesceInflight calls that the gate holds, so the next
// calls of their kind queue. It returns a wait for those calls.
func fillLane(t *testing.T, g *gate, call func() error) func() {
	t.Helper()
	g.hold()
	var wg sync.WaitGroup
	errs := make(chan error, concord.CoalesceInflight)
	for range concord.CoalesceInflight {
		wg.Go(func() { errs <- call() })
	}
	waitFor(t, "the held calls", func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.held == concord.CoalesceInflight
	})
	return func() {
		t.Helper()
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("held call: %v", err)
			}
		}
	}
}

func TestCoalescedGetsAnswerEachCaller(t *testing.T) {
	for _, tc := range []struct {
		name  string
		level concord.ConsistencyLevel
		// minRev: read at least at the last write's revision (eventual
		// reads need it to see the writes).
		minRev bool
	}{
		{"eventual", concord.Eventual, true},
		{"leader", concord.Leader, false},
		{"strong", concord.Strong, false},
		{"leader with min revision", concord.Leader, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			g := newGate()
			cl := gatedClient(t, g)
			prefix := "coalesce-get-" + strings.ReplaceAll(tc.name, " ", "-") + "/"
			want := map[string]*concord.WriteResult{}
			var last uint64
			for i := range 6 {
				k := fmt.Sprintf("%sk%d", prefix, i)
				if i%2 == 0 {
					res, err := cl.Put(ctx, k, []byte(k), concord.WithTTL(time.Hour))
					if err != nil {
						t.Fatalf("Put: %v", err)
					}
					want[k], last = &res, res.Revision
				} else {
					want[k] = nil // missing
				}
			}
			opts := []concord.OpOption{concord.Consistency(tc.level)}
			if tc.minRev {
				opts = append(opts, concord.MinRevision(last))
			}
			wait := fillLane(t, g, func() error {
				_, err := cl.Get(ctx, prefix+"k0", opts...)
				return err
			})
			// Each key twice: duplicates share the batch too.
			type result struct {
				key string
				kv  *concord.KV
				err error
			}
			results := make(chan result, 2*len(want))
			for range 2 {
				for k := range want {
					go func() {
						kv, err := cl.Get(ctx, k, opts...)
						results <- result{k, kv, err}
					}()
				}
			}
			waitFor(t, "the queued calls", func() bool { return concord.Queued(cl) == 2*len(want) })
			g.open()
			wait()
			for range 2 * len(want) {
				r := <-results
				w := want[r.key]
				switch {
				case w == nil && !errors.Is(r.err, concord.ErrNotFound):
					t.Errorf("Get(%s) = %v, %v; want ErrNotFound", r.key, r.kv, r.err)
				case w == nil:
				case r.err != nil:
					t.Errorf("Get(%s): %v", r.key, r.err)
				case string(r.kv.Value) != r.key || r.kv.ModRevision != w.Revision || r.kv.ExpiresAt.IsZero():
					t.Errorf("Get(%s) = %+v; want value %q at mod revision %d, expiring", r.key, r.kv, r.key, w.Revision)
				}
			}
			if got := g.sent()["BatchGet"]; got != 1 {
				t.Errorf("sent %v; want the queued calls in one BatchGet", g.sent())
			}
		})
	}
}

func TestCoalescedGetWithTTL(t *testing.T) {
	ctx := t.Context()
	g := newGate()
	cl := gatedClient(t, g)
	if _, err := cl.Put(ctx, "coalesce-ttl/a", []byte("a"), concord.WithTTL(time.Hour)); err != nil {
		t.Fatalf("Put: %v", err)
	}
	wait := fillLane(t, g, func() error {
		_, err := cl.GetWithTTL(ctx, "coalesce-ttl/a")
		return err
	})
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			kv, err := cl.GetWithTTL(ctx, "coalesce-ttl/a")
			if err != nil || kv.TTL <= 0 || kv.TTL > time.Hour {
				t.Errorf("GetWithTTL = %+v, %v; want a TTL in (0, 1h]", kv, err)
			}
		})
	}
	waitFor(t, "the queued calls", func() bool { return concord.Queued(cl) == 3 })
	g.open()
	wait()
	wg.Wait()
}

func TestCoalescedPutsGetOneRevisionPerWriteOfAKey(t *testing.T) {
	ctx := t.Context()
	g := newGate()
	cl := gatedClient(t, g)
	wait := fillLane(t, g, func() error {
		_, err := cl.Put(ctx, "coalesce-put/held", []byte("x"))
		return err
	})
	type result struct {
		key string
		res concord.WriteResult
		err error
	}
	keys := []string{"coalesce-put/dup", "coalesce-put/a", "coalesce-put/dup", "coalesce-put/b", "coalesce-put/dup"}
	results := make(chan result, len(keys))
	for i, k := range keys {
		go func() {
			res, err := cl.Put(ctx, k, []byte(fmt.Sprint(i)), concord.WithContentType("text/plain"))
			results <- result{k, res, err}
		}()
	}
	waitFor(t, "the queued calls", func() bool { return concord.Queued(cl) == len(keys) })
	g.open()
	wait()
	dupRevs := map[uint64]bool{}
	var batchRev uint64
	for range keys {
		r := <-results
		if r.err != nil {
			t.Fatalf("Put(%s): %v", r.key, r.err)
		}
		if r.key == "coalesce-put/dup" {
			if dupRevs[r.res.Revision] {
				t.Errorf("two writes of one key got revision %d", r.res.Revision)
			}
			dupRevs[r.res.Revision] = true
		}
		if r.key == "coalesce-put/a" {
			batchRev = r.res.Revision
		}
	}
	// The first batch carried a, b and one write of dup; each of the next
	// two one more write of dup, alone (so as a plain Put).
	if !dupRevs[batchRev] {
		t.Errorf("a was written at %d, no write of dup was (%v)", batchRev, dupRevs)
	}
	for _, k := range []string{"coalesce-put/a", "coalesce-put/b"} {
		kv, err := cl.Get(ctx, k)
		if err != nil || kv.ModRevision != batchRev || kv.ContentType != "text/plain" {
			t.Errorf("Get(%s) = %+v, %v; want mod revision %d, text/plain", k, kv, err, batchRev)
		}
	}
	if got := g.sent(); got["BatchPut"] != 1 || got["Put"] != concord.CoalesceInflight+2 {
		t.Errorf("sent %v; want 1 BatchPut and %d Puts", got, concord.CoalesceInflight+2)
	}
}

func TestCoalescedPutRefusedForOneCallerOnly(t *testing.T) {
	ctx := t.Context()
	g := newGate()
	cl := gatedClient(t, g)
	wait := fillLane(t, g, func() error {
		_, err := cl.Put(ctx, "coalesce-refused/held", []byte("x"))
		return err
	})
	// The server refuses content types longer than 128 bytes; the client
	// does not check, so the batch holding it is refused as a whole.
	long := strings.Repeat("x", 200)
	errs := make(map[string]chan error)
	for _, k := range []string{"coalesce-refused/bad", "coalesce-refused/good1", "coalesce-refused/good2"} {
		ch := make(chan error, 1)
		errs[k] = ch
		var opts []concord.OpOption
		if strings.HasSuffix(k, "bad") {
			opts = append(opts, concord.WithContentType(long))
		}
		go func() {
			_, err := cl.Put(ctx, k, []byte("v"), opts...)
			ch <- err
		}()
	}
	waitFor(t, "the queued calls", func() bool { return concord.Queued(cl) == 3 })
	g.open()
	wait()
	if err := <-errs["coalesce-refused/bad"]; !errors.Is(err, concord.ErrInvalidArgument) {
		t.Errorf("bad Put: %v; want ErrInvalidArgument", err)
	}
	for _, k := range []string{"coalesce-refused/good1", "coalesce-refused/good2"} {
		if err := <-errs[k]; err != nil {
			t.Errorf("Put(%s): %v", k, err)
		}
		if _, err := cl.Get(ctx, k); err != nil {
			t.Errorf("Get(%s): %v", k, err)
		}
	}
}

func TestCoalescedCallerCancelsAlone(t *testing.T) {
	for _, tc := range []struct {
		name string
		// inFlight: cancel once the batch is sent (else while queued).
		inFlight bool
	}{
		{"queued", false},
		{"in flight", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			g := newGate()
			cl := gatedClient(t, g)
			key := "coalesce-cancel/" + strings.ReplaceAll(tc.name, " ", "-")
			if _, err := cl.Put(ctx, key, []byte("v")); err != nil {
				t.Fatalf("Put: %v", err)
			}
			wait := fillLane(t, g, func() error {
				_, err := cl.Get(ctx, key)
				return err
			})
			cctx, cancel := context.WithCancel(ctx)
			cancelled := make(chan error, 1)
			go func() {
				_, err := cl.Get(cctx, key)
				cancelled <- err
			}()
			others := make(chan error, 2)
			for range 2 {
				go func() {
					_, err := cl.Get(ctx, key)
					others <- err
				}()
			}
			waitFor(t, "the queued calls", func() bool { return concord.Queued(cl) == 3 })
			if tc.inFlight {
				// Let the held calls end: the queue goes out as a batch,
				// which the gate holds.
				g.mu.Lock()
				old := g.release
				g.release = make(chan struct{})
				g.held = 0
				close(old)
				g.mu.Unlock()
				waitFor(t, "the batch", func() bool {
					g.mu.Lock()
					defer g.mu.Unlock()
					return g.held == 1
				})
			}
			cancel()
			if err := <-cancelled; !errors.Is(err, context.Canceled) {
				t.Errorf("cancelled Get: %v; want context.Canceled", err)
			}
			g.open()
			wait()
			for range 2 {
				if err := <-others; err != nil {
					t.Errorf("Get: %v", err)
				}
			}
		})
	}
}

func TestCoalescedCallsUnderLoad(t *testing.T) {
	ctx := t.Context()
	cl := newClient(t, cluster(t).URLs())
	const workers, rounds = 32, 20
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				key := fmt.Sprintf("coalesce-load/%d", w%8)
				val := fmt.Sprintf("%d/%d", w, r)
				res, err := cl.Put(ctx, key, []byte(val))
				if err != nil {
					t.Errorf("Put: %v", err)
					return
				}
				kv, err := cl.Get(ctx, key, concord.MinRevision(res.Revision), concord.Consistency(concord.Eventual))
				if err != nil || kv.ModRevision < res.Revision {
					t.Errorf("Get after Put at %d = %+v, %v", res.Revision, kv, err)
					return
				}
				if _, err := cl.Get(ctx, fmt.Sprintf("coalesce-load/missing-%d", w), concord.Consistency(concord.Strong)); !errors.Is(err, concord.ErrNotFound) {
					t.Errorf("Get(missing) = %v; want ErrNotFound", err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestCoalescingOff(t *testing.T) {
	ctx := t.Context()
	g := newGate()
	cl := newClient(t, cluster(t).URLs(), concord.WithHTTPClient(&http.Client{Transport: g}), concord.WithCoalescing(false))
	g.hold()
	var wg sync.WaitGroup
	for range 2 * concord.CoalesceInflight {
		wg.Go(func() {
			if _, err := cl.Put(ctx, "coalesce-off/k", []byte("v")); err != nil {
				t.Errorf("Put: %v", err)
			}
		})
	}
	waitFor(t, "every call in flight", func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.held == 2*concord.CoalesceInflight
	})
	g.open()
	wg.Wait()
	if got := g.sent(); got["Put"] != 2*concord.CoalesceInflight || got["BatchPut"] != 0 {
		t.Errorf("sent %v; want only single Puts", got)
	}
}

func TestCoalescedPutsSplitByBytes(t *testing.T) {
	ctx := t.Context()
	g := newGate()
	cl := gatedClient(t, g)
	wait := fillLane(t, g, func() error {
		_, err := cl.Put(ctx, "coalesce-big/held", []byte("x"))
		return err
	})
	// Three values of 600 KiB: no two fit in one batch's 1 MiB, so each
	// goes alone (as a plain Put), as it would have without coalescing.
	const n = 3
	big := bytes.Repeat([]byte("v"), 600<<10)
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := cl.Put(ctx, fmt.Sprintf("coalesce-big/%d", i), big)
			errs <- err
		}()
	}
	waitFor(t, "the queued calls", func() bool { return concord.Queued(cl) == n })
	g.open()
	wait()
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("Put: %v", err)
		}
	}
	if got := g.sent(); got["BatchPut"] != 0 || got["Put"] != concord.CoalesceInflight+n {
		t.Errorf("sent %v; want no BatchPut and %d Puts", got, concord.CoalesceInflight+n)
	}
}

func TestCoalescedValuesAreTheCallersOwn(t *testing.T) {
	ctx := t.Context()
	if _, err := newClient(t, cluster(t).URLs()).Put(ctx, "coalesce-own/k", []byte("value")); err != nil {
		t.Fatal(err)
	}
	g := newGate()
	cl := gatedClient(t, g)
	wait := fillLane(t, g, func() error {
		_, err := cl.Get(ctx, "coalesce-own/k")
		return err
	})
	// Three Gets of one key share a BatchGet; each gets its own bytes.
	const n = 3
	kvs := make(chan *concord.KV, n)
	for range n {
		go func() {
			kv, err := cl.Get(ctx, "coalesce-own/k")
			if err != nil {
				t.Error(err)
			}
			kvs <- kv
		}()
	}
	waitFor(t, "the queued calls", func() bool { return concord.Queued(cl) == n })
	g.open()
	wait()
	var got []*concord.KV
	for range n {
		if kv := <-kvs; kv != nil {
			got = append(got, kv)
		}
	}
	if len(got) != n {
		t.Fatalf("%d of %d Gets answered", len(got), n)
	}
	got[0].Value[0] = 'X'
	for _, kv := range got[1:] {
		if string(kv.Value) != "value" {
			t.Errorf("another caller's change shows: %q", kv.Value)
		}
	}

	// A queued Put whose caller reuses its buffer at once (as after a
	// timeout) still writes what it was given.
	wait = fillLane(t, g, func() error {
		_, err := cl.Put(ctx, "coalesce-own/held", []byte("x"))
		return err
	})
	buf := []byte("written")
	putErr := make(chan error, 1)
	go func() {
		_, err := cl.Put(ctx, "coalesce-own/p", buf)
		putErr <- err
	}()
	waitFor(t, "the queued put", func() bool { return concord.Queued(cl) == 1 })
	copy(buf, "changed")
	g.open()
	wait()
	if err := <-putErr; err != nil {
		t.Fatal(err)
	}
	if kv, err := cl.Get(ctx, "coalesce-own/p"); err != nil || string(kv.Value) != "written" {
		t.Errorf("Get(coalesce-own/p) = %v, %v; want written", kv, err)
	}
}
