package raft

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A follower that rejects a pipelined AppendEntries must not stop the
// leader's replication to it for good (bug B10, upstream
// hashicorp/raft#612). Upstream, the pipeline's decoder returns on the
// rejection; if the sender then sends twice more before it sees that, the
// transport's decoder waits forever to hand over a response nobody reads,
// and the sender waits forever to hand the transport a request: no entry
// reaches that follower again (heartbeats still do) and Shutdown hangs.
func TestConcordPipelineSurvivesRejectedAppends(t *testing.T) {
	const rejections = 40
	// The follower accepts every append but every fifth one that carries
	// entries, until it has rejected enough.
	var rejected atomic.Int64
	appends := 0
	follower := startScriptedPeer(t, func(rpc RPC) {
		if req, ok := rpc.Command.(*AppendEntriesRequest); ok && len(req.Entries) > 0 {
			if appends++; appends%5 == 0 && rejected.Load() < rejections {
				rejected.Add(1)
				rpc.Respond(&AppendEntriesResponse{Term: req.Term, LastLog: req.PrevLogEntry}, nil)
				return
			}
		}
		ackAll(rpc)
	})
	r, _ := startLeader(t, NewInmemStore(), map[ServerID]*scriptedPeer{"follower": follower}, nil)
	shutdown := func() error { return r.Shutdown().Error() }
	defer func() {
		if shutdown != nil {
			_ = shutdown()
		}
	}()

	// Writers keep the replicator's trigger busy while the follower rejects.
	writers := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-writers:
					return
				default:
				}
				_ = r.Apply([]byte("x"), time.Second).Error()
			}
		}()
	}
	// Every write waits for the follower (two voters): once all rejections
	// are made, one more write commits only if replication still runs.
	stuck := func() {
		shutdown = nil // it would hang too
		close(writers)
		t.Fatalf("a write did not commit after %d rejected appends: replication to the follower is stuck", rejected.Load())
	}
	for rejected.Load() < rejections {
		if !waitFuture(r.Apply([]byte("probe"), time.Second), 20*time.Second) {
			stuck()
		}
	}
	f := r.Apply([]byte("last"), time.Second)
	if !waitFuture(f, 20*time.Second) {
		stuck()
	}
	if err := f.Error(); err != nil {
		t.Fatalf("last write: %v", err)
	}
	close(writers)
	wg.Wait()
	done := make(chan error, 1)
	shut := shutdown
	shutdown = nil // shut down here, with a deadline, not in the deferred call
	go func() { done <- shut() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Shutdown hangs")
	}
}
