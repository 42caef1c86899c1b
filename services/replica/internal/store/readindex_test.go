package store

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
)

// roundErr tells a caller which verification round answered it.
type roundErr struct{ n int64 }

func (e roundErr) Error() string { return fmt.Sprintf("round %d", e.n) }

func roundOf(tb testing.TB, err error) int64 {
	tb.Helper()
	var re roundErr
	if !errors.As(err, &re) {
		tb.Fatalf("Verify returned %v, want a round", err)
	}
	return re.n
}

// TestVerifierCoalescesAndNeverReusesAnOlderRound checks the two properties
// strong reads rely on: callers that arrive while a round is in flight share
// one later round, and no caller is answered by a round that started before
// it called (its captured commit index would not be covered).
func TestVerifierCoalescesAndNeverReusesAnOlderRound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var started atomic.Int64
		release := make(chan struct{})
		v := &verifier{verify: func() error {
			n := started.Add(1)
			<-release
			return roundErr{n}
		}}
		type answer struct {
			before int64
			err    error
		}
		call := func(out chan<- answer) {
			before := started.Load()
			out <- answer{before, v.Verify(t.Context())}
		}

		first := make(chan answer, 1)
		go call(first)
		synctest.Wait() // round 1 is in flight
		if started.Load() != 1 {
			t.Fatalf("%d rounds started, want 1", started.Load())
		}
		late := make(chan answer, 10)
		for range 10 {
			go call(late)
		}
		synctest.Wait() // all ten wait for the next round

		release <- struct{}{} // finish round 1
		a := <-first
		if got := roundOf(t, a.err); got != 1 {
			t.Fatalf("first caller got round %d, want 1", got)
		}
		synctest.Wait()
		if len(late) != 0 {
			t.Fatal("callers that joined during round 1 were answered by it")
		}
		if started.Load() != 2 {
			t.Fatalf("%d rounds started, want 2 (one shared by the ten late callers)", started.Load())
		}
		release <- struct{}{} // finish round 2
		for range 10 {
			a := <-late
			if got := roundOf(t, a.err); got <= a.before {
				t.Fatalf("caller that saw %d rounds started was answered by round %d", a.before, got)
			}
		}
		synctest.Wait()
		if started.Load() != 2 {
			t.Fatalf("%d rounds ran, want 2", started.Load())
		}
		v.mu.Lock()
		running := v.running
		v.mu.Unlock()
		if running {
			t.Fatal("verifier loop still running with nobody waiting")
		}
	})
}

func TestVerifierHonoursContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		v := &verifier{verify: func() error { <-release; return nil }}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- v.Verify(ctx) }()
		synctest.Wait()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Verify after cancel: %v", err)
		}
		close(release) // the abandoned round still finishes and the loop ends
		synctest.Wait()
		if err := v.Verify(t.Context()); err != nil {
			t.Fatalf("Verify after an abandoned round: %v", err)
		}
	})
}
