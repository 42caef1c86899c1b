package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	concordv1 "github.com/concord-kv/concord/proto/gen/go/concord/v1"
	"github.com/concord-kv/concord/proto/gen/go/concord/v1/concordv1connect"
	concord "github.com/concord-kv/concord/sdk/go"
	"github.com/concord-kv/concord/sdk/go/concordtest"
)

// rollingLoad is the load of TestRollingRestart: writers of unique keys and
// of one counter key, and strong readers of the counter.
type rollingLoad struct {
	mu      sync.Mutex
	acked   map[string]string // unique key -> value, acknowledged
	unknown int               // writes whose outcome is unknown
	errs    []string          // failures: a failed strong read, a stale read, a write that failed for sure

	lastAcked atomic.Uint64 // highest revision of an acknowledged counter write
	reads     atomic.Int64  // strong reads that succeeded
}

func (l *rollingLoad) fail(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errs) < 20 {
		l.errs = append(l.errs, fmt.Sprintf(format, args...))
	}
}

// write records one write's outcome by the SDK's retry rules: an error of
// unknown outcome is allowed (the write may or may not be applied); any
// other error is a failure, since the SDK retries a write that certainly
// was not applied until its deadline.
func (l *rollingLoad) write(what string, err error) bool {
	switch {
	case err == nil:
		return true
	case errors.Is(err, concord.ErrOutcomeUnknown) || errors.Is(err, concord.ErrTimeout):
		l.mu.Lock()
		l.unknown++
		l.mu.Unlock()
	default:
		l.fail("%s: %v", what, err)
	}
	return false
}

// ackedAt raises lastAcked to rev.
func (l *rollingLoad) ackedAt(rev uint64) {
	for {
		cur := l.lastAcked.Load()
		if rev <= cur || l.lastAcked.CompareAndSwap(cur, rev) {
			return
		}
	}
}

// run drives the load until ctx ends.
func (l *rollingLoad) run(ctx context.Context, cl *concord.Client) {
	var wg sync.WaitGroup
	wg.Go(func() { // unique keys
		for i := 0; ctx.Err() == nil; i++ {
			k, v := fmt.Sprintf("rolling/k%05d", i), fmt.Sprintf("v%d", i)
			_, err := cl.Put(context.WithoutCancel(ctx), k, []byte(v), concord.IfAbsent())
			if l.write("put "+k, err) {
				l.mu.Lock()
				l.acked[k] = v
				l.mu.Unlock()
			}
		}
	})
	wg.Go(func() { // the counter
		for i := 0; ctx.Err() == nil; i++ {
			res, err := cl.Put(context.WithoutCancel(ctx), "rolling/counter", fmt.Appendf(nil, "%d", i))
			if l.write("put rolling/counter", err) {
				l.ackedAt(res.Revision)
			}
		}
	})
	for range 3 { // strong readers: never fail, never stale
		wg.Go(func() {
			for ctx.Err() == nil {
				before := l.lastAcked.Load()
				kv, err := cl.Get(context.WithoutCancel(ctx), "rolling/counter", concord.Consistency(concord.Strong))
				switch {
				case err != nil:
					l.fail("strong read failed after the SDK's retries: %v", err)
				case kv.ModRevision < before:
					l.fail("stale strong read: mod_revision %d, but a write was acknowledged at %d before the read began", kv.ModRevision, before)
				default:
					l.reads.Add(1)
				}
			}
		})
	}
	wg.Wait()
}

// caughtUp waits until replica i has applied everything the leader had
// committed when caughtUp was called.
func caughtUp(ctx context.Context, t *testing.T, c *concordtest.Cluster, i int) {
	t.Helper()
	status := func(j int) (*concordv1.StatusResponse, error) {
		cl := concordv1connect.NewClusterServiceClient(http.DefaultClient, c.Replicas[j].URL())
		resp, err := cl.Status(ctx, connect.NewRequest(&concordv1.StatusRequest{}))
		if err != nil {
			return nil, err
		}
		return resp.Msg, nil
	}
	var commit uint64
	for {
		st, err := status(leader(ctx, t, c))
		if err == nil {
			commit = st.GetCommitIndex()
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("leader status: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	for {
		st, err := status(i)
		if err == nil && st.GetAppliedIndex() >= commit {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s did not catch up with commit index %d: %v %v", c.Replicas[i].ID, commit, st, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestRollingRestart restarts every replica one at a time (SIGTERM, start
// again on the same data, wait until it has caught up, next) while writers
// and strong readers run through the SDK. No strong read may fail after the
// SDK's retries (reads are retried until their deadline) or return a value
// older than a write acknowledged before it began; every acknowledged write
// must be there at the end. Writes may end with an unknown outcome (the
// leader stopped after receiving one), but never fail for sure.
func TestRollingRestart(t *testing.T) {
	tests := []struct {
		name   string
		rounds int // restarts of every replica, in order
	}{
		{name: "3 replicas, one round", rounds: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := concordtest.Start(t, 3)
			ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
			defer cancel()
			hc := &http.Client{}
			defer hc.CloseIdleConnections()
			cl, err := concord.New(ctx, c.URLs(), concord.WithHTTPClient(hc), concord.WithTimeout(15*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = cl.Close() }()
			if _, err := cl.Put(ctx, "rolling/counter", []byte("start")); err != nil {
				t.Fatal(err)
			}

			load := &rollingLoad{acked: map[string]string{}}
			loadCtx, stopLoad := context.WithCancel(ctx)
			var wg sync.WaitGroup
			wg.Go(func() { load.run(loadCtx, cl) })
			for range tt.rounds {
				for i, r := range c.Replicas {
					before := load.reads.Load()
					if err := c.Stop(i); err != nil {
						t.Errorf("%s exited with %v after SIGTERM\n%s", r.ID, err, r.Log())
					}
					c.Restart(i)
					c.WaitReady(ctx, i)
					caughtUp(ctx, t, c, i)
					// Let the load run on the full cluster before the next
					// restart: at least a few reads succeed in between.
					for load.reads.Load() < before+20 && ctx.Err() == nil {
						time.Sleep(10 * time.Millisecond)
					}
					t.Logf("restarted %s; %d strong reads so far", r.ID, load.reads.Load())
				}
			}
			stopLoad()
			wg.Wait()

			load.mu.Lock()
			defer load.mu.Unlock()
			for _, e := range load.errs {
				t.Error(e)
			}
			if load.reads.Load() == 0 {
				t.Error("no strong read succeeded")
			}
			got := map[string]string{}
			for kv, err := range cl.List(ctx, "rolling/k", concord.Consistency(concord.Strong), concord.WithPageSize(1000)) {
				if err != nil {
					t.Fatalf("final list: %v", err)
				}
				got[kv.Key] = string(kv.Value)
			}
			lost := 0
			for k, v := range load.acked {
				if got[k] != v {
					lost++
					if lost <= 5 {
						t.Errorf("acknowledged write lost: %s = %q, want %q", k, got[k], v)
					}
				}
			}
			t.Logf("%d acknowledged writes, %d of unknown outcome, %d strong reads, %d lost", len(load.acked), load.unknown, load.reads.Load(), lost)
		})
	}
}
