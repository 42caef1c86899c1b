package concord_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	concord "github.com/concord-kv/concord/sdk/go"
)

func TestLockContendersNeverOverlap(t *testing.T) {
	t.Parallel()
	urls := cluster(t).URLs()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	const workers, rounds = 8, 3
	var (
		holders   atomic.Int32
		lastFence atomic.Uint64
		acquired  atomic.Int32
		wg        sync.WaitGroup
	)
	for w := range workers {
		cl := newClient(t, urls) // each contender has its own client
		wg.Go(func() {
			for range rounds {
				l, err := cl.Lock(ctx, "contended", 3*time.Second, concord.WithLockOwner("worker"))
				if err != nil {
					t.Errorf("worker %d: Lock: %v", w, err)
					return
				}
				if n := holders.Add(1); n != 1 {
					t.Errorf("worker %d: %d holders inside the critical section", w, n)
				}
				// Critical sections do not overlap, so this is acquisition order.
				if prev := lastFence.Swap(l.Fence()); l.Fence() <= prev {
					t.Errorf("worker %d: fence %d after %d: not increasing", w, l.Fence(), prev)
				}
				time.Sleep(5 * time.Millisecond) // widen the window an overlap would need
				acquired.Add(1)
				holders.Add(-1)
				select {
				case <-l.Lost():
					t.Errorf("worker %d: lock %d lost while held", w, l.Fence())
				default:
				}
				if err := l.Unlock(ctx); err != nil {
					t.Errorf("worker %d: Unlock: %v", w, err)
				}
			}
		})
	}
	wg.Wait()
	if got := acquired.Load(); got != workers*rounds {
		t.Fatalf("acquired %d times, want %d", got, workers*rounds)
	}
}

func TestLockOfStoppedHolderExpires(t *testing.T) {
	t.Parallel()
	urls := cluster(t).URLs()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	holder := newClient(t, urls)
	other := newClient(t, urls)

	first, err := holder.Lock(ctx, "abandoned", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_, err = other.TryLock(ctx, "abandoned", 2*time.Second)
	if !errors.Is(err, concord.ErrLockHeld) || !errors.Is(err, concord.ErrConflict) {
		t.Fatalf("TryLock on a held lock: %v, want ErrLockHeld and ErrConflict", err)
	}
	// The holder stops its keepalive without unlocking, as a crashed
	// process would.
	if err := holder.Close(); err != nil {
		t.Fatal(err)
	}
	second, err := other.Lock(ctx, "abandoned", 2*time.Second)
	if err != nil {
		t.Fatalf("lock of a stopped holder never became free: %v", err)
	}
	if second.Fence() <= first.Fence() {
		t.Errorf("fence %d of the next holder is not above %d", second.Fence(), first.Fence())
	}
	select {
	case <-first.Lost():
	case <-ctx.Done():
		t.Fatal("the stopped holder's lock never reported Lost")
	}
	if err := second.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestUnlockWithStaleFenceKeepsNewHolder(t *testing.T) {
	t.Parallel()
	urls := cluster(t).URLs()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	a, b, admin := newClient(t, urls), newClient(t, urls), newClient(t, urls)

	stale, err := a.Lock(ctx, "stale", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// The lock is broken behind its holder's back (it expired during a
	// pause, or an operator removed it) and b takes it.
	if _, err := admin.Delete(ctx, stale.Key()); err != nil {
		t.Fatal(err)
	}
	current, err := b.Lock(ctx, "stale", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// The old holder's keepalive notices the key is no longer its own.
	select {
	case <-stale.Lost():
	case <-ctx.Done():
		t.Fatal("the broken lock never reported Lost")
	}
	if err := stale.Unlock(ctx); !errors.Is(err, concord.ErrConflict) {
		t.Fatalf("Unlock with a stale fence: %v, want ErrConflict", err)
	}
	kv, err := admin.Get(ctx, current.Key(), concord.Consistency(concord.Strong))
	if err != nil || kv.ModRevision != current.Fence() {
		t.Fatalf("new holder's lock after a stale Unlock: %+v %v, want revision %d", kv, err, current.Fence())
	}
	if err := current.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Get(ctx, current.Key(), concord.Consistency(concord.Strong)); !errors.Is(err, concord.ErrNotFound) {
		t.Fatalf("key after Unlock: %v, want ErrNotFound", err)
	}
}

func TestLockKeepaliveOutlivesTTL(t *testing.T) {
	t.Parallel()
	urls := cluster(t).URLs()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	holder, other := newClient(t, urls), newClient(t, urls)
	l, err := holder.Lock(ctx, "kept", time.Second, concord.WithLockKey("jobs/kept/lock"))
	if err != nil {
		t.Fatal(err)
	}
	// Wait until the key has been renewed past its first TTL: the expiry
	// moves later than the acquisition could have set it.
	first, err := other.Get(ctx, "jobs/kept/lock", concord.Consistency(concord.Strong))
	if err != nil {
		t.Fatal(err)
	}
	for {
		kv, err := other.Get(ctx, "jobs/kept/lock", concord.Consistency(concord.Strong))
		if err != nil {
			t.Fatalf("lock key vanished while kept alive: %v", err)
		}
		if kv.ExpiresAt.After(first.ExpiresAt.Add(time.Second)) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := other.TryLock(ctx, "", time.Second, concord.WithLockKey("jobs/kept/lock")); !errors.Is(err, concord.ErrLockHeld) {
		t.Fatalf("TryLock of a kept-alive lock: %v, want ErrLockHeld", err)
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	again, err := other.TryLock(ctx, "", time.Second, concord.WithLockKey("jobs/kept/lock"))
	if err != nil {
		t.Fatalf("TryLock after Unlock: %v", err)
	}
	if err := again.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestLockBadArgumentsFailWithoutNetwork(t *testing.T) {
	cl := newClient(t, cluster(t).URLs())
	before := total(cl.Served())
	ctx := t.Context()
	checks := map[string]error{}
	_, checks["sub-second ttl"] = cl.Lock(ctx, "x", 500*time.Millisecond)
	_, checks["fractional ttl"] = cl.TryLock(ctx, "x", 1500*time.Millisecond)
	_, checks["no name"] = cl.Lock(ctx, "", time.Second)
	_, checks["nil option"] = cl.TryLock(ctx, "x", time.Second, nil)
	_, _, checks["limit"] = cl.RateLimiter("rl/", 0, time.Minute).Allow(ctx, "u")
	_, _, checks["window"] = cl.RateLimiter("rl/", 1, time.Millisecond).Allow(ctx, "u")
	_, checks["service"] = cl.Register(ctx, "a/b", "1", concord.ServiceInstance{}, time.Second)
	_, checks["register ttl"] = cl.Register(ctx, "svc", "1", concord.ServiceInstance{}, 0)
	_, checks["discover"] = cl.Discover(ctx, "")
	_, checks["session ttl"] = concord.NewSessions[int](cl, "s/", 0).Touch(ctx, "1")
	for name, err := range checks {
		if !errors.Is(err, concord.ErrInvalidArgument) {
			t.Errorf("%s: got %v, want ErrInvalidArgument", name, err)
		}
	}
	if after := total(cl.Served()); after != before {
		t.Errorf("bad calls reached the network: %d requests", after-before)
	}
}
