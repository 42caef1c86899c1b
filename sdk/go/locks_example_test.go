package concord_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"sync"
	"time"

	concord "github.com/concord-kv/concord/sdk/go"
)

// FencedStore stands for the resource a lock protects (a database, a file
// store). It remembers the highest fencing token it has seen and refuses
// writes that carry a lower one: that is what makes a lease-based lock
// safe when a holder stalls past its TTL.
type FencedStore struct {
	mu      sync.Mutex
	highest uint64
	data    map[string]string
}

// Write stores value under key if fence is not older than any seen before.
func (s *FencedStore) Write(fence uint64, key, value string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if fence < s.highest {
		return fmt.Errorf("fencing token %d is older than %d: write refused", fence, s.highest)
	}
	s.highest = fence
	if s.data == nil {
		s.data = map[string]string{}
	}
	s.data[key] = value
	return nil
}

// Distributed locks: one worker at a time runs job 123. The lock is a key
// created only if absent, with a TTL kept alive while the holder works, so a
// crashed holder frees it; Unlock deletes it only if it is still this
// holder's. Every write the holder makes carries the lock's fencing token,
// which the protected resource checks.
func Example_distributedLocks() {
	ctx := context.Background()
	worker1, err := concord.New(ctx, endpoints)
	if err != nil {
		log.Fatal(err)
	}
	worker2, err := concord.New(ctx, endpoints)
	if err != nil {
		log.Fatal(err)
	}
	var store FencedStore

	lock1, err := worker1.Lock(ctx, "job:123", 10*time.Second, concord.WithLockOwner("node:worker1"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("worker1 runs the job")
	if err := store.Write(lock1.Fence(), "job:123", "step 1 by worker1"); err != nil {
		log.Fatal(err)
	}

	// Meanwhile worker2 tries and finds the job taken.
	if _, err := worker2.TryLock(ctx, "job:123", 10*time.Second); errors.Is(err, concord.ErrLockHeld) {
		fmt.Println("worker2: job:123 is already running")
	}

	if err := lock1.Unlock(ctx); err != nil {
		log.Fatal(err)
	}
	lock2, err := worker2.Lock(ctx, "job:123", 10*time.Second, concord.WithLockOwner("node:worker2"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("worker2 runs the job")
	if err := store.Write(lock2.Fence(), "job:123", "step 1 by worker2"); err != nil {
		log.Fatal(err)
	}

	// A write from worker1 that arrives late, after it lost the lock, is
	// refused by the store.
	if err := store.Write(lock1.Fence(), "job:123", "late write by worker1"); err != nil {
		fmt.Println("late write refused")
	}
	if err := lock2.Unlock(ctx); err != nil {
		log.Fatal(err)
	}
	if err := worker1.Close(); err != nil {
		log.Fatal(err)
	}
	if err := worker2.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// worker1 runs the job
	// worker2: job:123 is already running
	// worker2 runs the job
	// late write refused
}

func ExampleClient_Lock() {
	ctx := context.Background()
	c, err := concord.New(ctx, endpoints)
	if err != nil {
		log.Fatal(err)
	}

	// Wait up to a minute for the lock; hold it with a 15 s TTL that the
	// keepalive renews every 5 s until Unlock.
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	lock, err := c.Lock(wctx, "nightly-report", 15*time.Second)
	if err != nil {
		log.Fatal(err) // wraps context.DeadlineExceeded if still held by another
	}
	fmt.Println("holding", lock.Key())
	// ... write the report, passing lock.Fence() along ...
	if err := lock.Unlock(ctx); err != nil {
		log.Fatal(err)
	}
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	// Output: holding locks/nightly-report
}

func ExampleWithLockKey() {
	ctx := context.Background()
	c, err := concord.New(ctx, endpoints)
	if err != nil {
		log.Fatal(err)
	}

	// Keep the lock next to the data it guards rather than under "locks/".
	lock, err := c.Lock(ctx, "", 10*time.Second, concord.WithLockKey("jobs/123/lock"), concord.WithLockOwner("node:worker1"))
	if err != nil {
		log.Fatal(err)
	}
	kv, err := c.Get(ctx, "jobs/123/lock")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(lock.Key(), "held, revision matches fence:", kv.ModRevision == lock.Fence())
	if err := lock.Unlock(ctx); err != nil {
		log.Fatal(err)
	}
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	// Output: jobs/123/lock held, revision matches fence: true
}

func ExampleClient_TryLock() {
	ctx := context.Background()
	c, err := concord.New(ctx, endpoints)
	if err != nil {
		log.Fatal(err)
	}

	first, err := c.TryLock(ctx, "reindex", 10*time.Second)
	if err != nil {
		log.Fatal(err)
	}
	_, err = c.TryLock(ctx, "reindex", 10*time.Second)
	fmt.Println("held:", errors.Is(err, concord.ErrLockHeld), "conflict:", errors.Is(err, concord.ErrConflict))
	if err := first.Unlock(ctx); err != nil {
		log.Fatal(err)
	}
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	// Output: held: true conflict: true
}

func ExampleLock_Unlock() {
	ctx := context.Background()
	c, err := concord.New(ctx, endpoints)
	if err != nil {
		log.Fatal(err)
	}

	lock, err := c.Lock(ctx, "migrate-db", 10*time.Second)
	if err != nil {
		log.Fatal(err)
	}
	// ... run the migration ...
	if err := lock.Unlock(ctx); errors.Is(err, concord.ErrConflict) {
		// The lock expired or was broken while we worked: another holder
		// may have run at the same time.
		fmt.Println("lock was lost")
	} else if err != nil {
		log.Fatal(err)
	}
	_, err = c.Get(ctx, "locks/migrate-db")
	fmt.Println("released:", errors.Is(err, concord.ErrNotFound))
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	// Output: released: true
}

func ExampleLock_Fence() {
	ctx := context.Background()
	c, err := concord.New(ctx, endpoints)
	if err != nil {
		log.Fatal(err)
	}

	var fences []uint64
	for range 3 {
		lock, err := c.Lock(ctx, "compaction", 10*time.Second)
		if err != nil {
			log.Fatal(err)
		}
		fences = append(fences, lock.Fence())
		if err := lock.Unlock(ctx); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println("each holder's token is greater:", fences[0] < fences[1] && fences[1] < fences[2])
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	// Output: each holder's token is greater: true
}

func ExampleLock_Lost() {
	ctx := context.Background()
	c, err := concord.New(ctx, endpoints)
	if err != nil {
		log.Fatal(err)
	}

	lock, err := c.Lock(ctx, "leader-election", 5*time.Second)
	if err != nil {
		log.Fatal(err)
	}
	// Work in steps, and stop as soon as the lock is lost.
work:
	for step := 1; step <= 3; step++ {
		select {
		case <-lock.Lost():
			fmt.Println("lost the lock: stopping")
			break work
		default:
		}
		fmt.Println("step", step)
	}
	if err := lock.Unlock(ctx); err != nil {
		log.Fatal(err)
	}
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// step 1
	// step 2
	// step 3
}
