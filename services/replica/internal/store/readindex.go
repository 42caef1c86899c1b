package store

import (
	"context"
	"sync"
)

// verifier coalesces leadership confirmations: every strong read that arrives
// while a VerifyLeader round is in flight joins the next round, so one quorum
// round trip serves all reads waiting at that moment. A reader always captures
// the commit index before joining, and the round it joins starts after it
// joined, which is what makes the read linearizable.
type verifier struct {
	verify func() error

	mu      sync.Mutex
	pending *round
	running bool
}

type round struct {
	done chan struct{}
	err  error
}

func (v *verifier) Verify(ctx context.Context) error {
	v.mu.Lock()
	if v.pending == nil {
		v.pending = &round{done: make(chan struct{})}
	}
	r := v.pending
	if !v.running {
		v.running = true
		go v.loop()
	}
	v.mu.Unlock()
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (v *verifier) loop() {
	for {
		v.mu.Lock()
		r := v.pending
		v.pending = nil
		if r == nil {
			v.running = false
			v.mu.Unlock()
			return
		}
		v.mu.Unlock()
		r.err = v.verify()
		close(r.done)
	}
}
