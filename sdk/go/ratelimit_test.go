package concord_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	concord "github.com/concord-kv/concord/sdk/go"
)

func TestRateLimiterNeverOverAdmits(t *testing.T) {
	t.Parallel()
	urls := cluster(t).URLs()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	const (
		limit    = 50
		clients  = 8
		attempts = 20
		// A window far longer than the test, so it cannot roll over and
		// reset the count while the test runs.
		window = 1000 * time.Hour
	)
	var (
		mu        sync.Mutex
		remaining []int // one entry per admitted request
		denied    int
		wg        sync.WaitGroup
	)
	for range clients {
		rl := newClient(t, urls).RateLimiter("test/ratelimit/", limit, window)
		wg.Go(func() {
			for range attempts {
				ok, left, err := rl.Allow(ctx, "user-1")
				if err != nil {
					t.Errorf("Allow: %v", err)
					return
				}
				mu.Lock()
				if ok {
					remaining = append(remaining, left)
				} else {
					denied++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(remaining) != limit || denied != clients*attempts-limit {
		t.Fatalf("admitted %d and denied %d of %d, want exactly %d admitted", len(remaining), denied, clients*attempts, limit)
	}
	// Each admission took its own place in the count: remaining is 49..0.
	slices.Sort(remaining)
	for i, left := range remaining {
		if left != i {
			t.Fatalf("remaining counts %v: want each of 0..%d once", remaining, limit-1)
		}
	}
	// Another id has its own count.
	ok, left, err := newClient(t, urls).RateLimiter("test/ratelimit/", limit, window).Allow(ctx, "user-2")
	if err != nil || !ok || left != limit-1 {
		t.Fatalf("first request of another id: %v %d %v", ok, left, err)
	}
}

func TestRateLimiterCounterExpiresAfterWindow(t *testing.T) {
	t.Parallel()
	cl := newClient(t, cluster(t).URLs())
	ctx := t.Context()
	rl := cl.RateLimiter("test/ratelimit-ttl/", 5, time.Minute)
	if ok, _, err := rl.Allow(ctx, "u"); err != nil || !ok {
		t.Fatalf("Allow: %v %v", ok, err)
	}
	for kv, err := range cl.List(ctx, "test/ratelimit-ttl/u:", concord.WithRemainingTTL()) {
		if err != nil {
			t.Fatal(err)
		}
		if string(kv.Value) != "1" || kv.TTL <= 0 || kv.TTL > time.Minute+2*time.Second {
			t.Fatalf("counter %s = %q with TTL %v: want 1 expiring within the window and a second or two", kv.Key, kv.Value, kv.TTL)
		}
	}
}
