package raft

import (
	"errors"
	"io"
	"sync"
	"testing"
	"time"
)

// walLikeStore is an in-memory log store that, like raft-wal, still returns
// entries below its first index after a head truncation (until their whole
// segment file goes).
type walLikeStore struct {
	*InmemStore
	mu    sync.Mutex
	first uint64
}

func (s *walLikeStore) FirstIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.first > 0 {
		return s.first, nil
	}
	return s.InmemStore.FirstIndex()
}

func (s *walLikeStore) DeleteRange(min, max uint64) error {
	first, _ := s.FirstIndex()
	if min > first {
		return s.InmemStore.DeleteRange(min, max) // a suffix: really gone
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.first = max + 1 // a prefix: only the first index moves
	return nil
}

// A leader does not send entries below its log's first index, even when its
// log store still returns them: it sends its snapshot. Bug B10: a new
// member's first rejection set its next index to 1, and the leader, on
// raft-wal, sent it entries from 1 that it had compacted; a member holding
// a snapshot rejects those (it cannot compare them) without end.
func TestConcordLeaderSendsNoCompactedEntries(t *testing.T) {
	store := &walLikeStore{InmemStore: NewInmemStore()}
	r, _ := startLeader(t, store, map[ServerID]*scriptedPeer{"g": startScriptedPeer(t, ackAll)}, func(c *Config) {
		c.TrailingLogs = 0
		c.SnapshotThreshold, c.SnapshotInterval = 1<<40, time.Hour
	})
	defer func() { _ = r.Shutdown().Error() }()
	for i := 0; i < 20; i++ {
		mustDo(t, "apply", r.Apply([]byte("before"), time.Second))
	}
	mustDo(t, "snapshot", r.Snapshot())
	mustDo(t, "apply", r.Apply([]byte("after"), time.Second))
	first, _ := store.FirstIndex()
	if first <= 2 {
		t.Fatalf("the log starts at %d after the snapshot: nothing was compacted", first)
	}

	// A new, empty member: it rejects any request after an entry it lacks,
	// and takes the leader's snapshot.
	var (
		mu        sync.Mutex
		last      uint64
		lowest    = ^uint64(0)
		installed = make(chan struct{}, 1)
	)
	f := startScriptedPeer(t, func(rpc RPC) {
		mu.Lock()
		defer mu.Unlock()
		switch req := rpc.Command.(type) {
		case *AppendEntriesRequest:
			if len(req.Entries) > 0 {
				lowest = min(lowest, req.Entries[0].Index)
			}
			if req.PrevLogEntry > last {
				rpc.Respond(&AppendEntriesResponse{Term: req.Term, LastLog: last}, nil)
				return
			}
			last = max(last, req.PrevLogEntry+uint64(len(req.Entries)))
			rpc.Respond(&AppendEntriesResponse{Term: req.Term, Success: true, LastLog: last}, nil)
		case *InstallSnapshotRequest:
			_, _ = io.Copy(io.Discard, rpc.Reader)
			last = req.LastLogIndex
			rpc.Respond(&InstallSnapshotResponse{Term: req.Term, Success: true}, nil)
			select {
			case installed <- struct{}{}:
			default:
			}
		default:
			ackAll(rpc)
		}
	})
	mustDo(t, "add the member", r.AddNonvoter("f", f.trans.LocalAddr(), 0, 0))
	select {
	case <-installed:
	case <-time.After(20 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("the new member got no snapshot; the lowest entry it was sent is %d (the leader's log starts at %d)", lowest, first)
	}
	mustDo(t, "apply", r.Apply([]byte("later"), time.Second))
	mu.Lock()
	defer mu.Unlock()
	if lowest < first {
		t.Fatalf("the leader sent entry %d, below its log's first index %d", lowest, first)
	}
}

// Once a server is removed, the leader's replicator for it makes a last
// best effort to reach it but does not stream it a snapshot. Bug B10: the
// server was replaced by a new, empty one at the same address (Concord's
// way to replace a failed member), and the old replicator installed an
// older snapshot on it while the new one's appends were in flight.
func TestConcordRemovedServerGetsNoSnapshot(t *testing.T) {
	var (
		mu       sync.Mutex
		removed  bool
		late     int // snapshots offered after the removal
		held     = make(chan RPC, 1)
		released = make(chan struct{})
	)
	// f has lost its data: it rejects every append after an entry, and
	// holds the first snapshot it is offered until the test releases it.
	f := startScriptedPeer(t, func(rpc RPC) {
		switch req := rpc.Command.(type) {
		case *AppendEntriesRequest:
			rpc.Respond(&AppendEntriesResponse{Term: req.Term, Success: req.PrevLogEntry == 0, LastLog: 0}, nil)
		case *InstallSnapshotRequest:
			_, _ = io.Copy(io.Discard, rpc.Reader)
			mu.Lock()
			if removed {
				late++
				mu.Unlock()
				rpc.Respond(&InstallSnapshotResponse{Term: req.Term, Success: true}, nil)
				return
			}
			mu.Unlock()
			select {
			case held <- rpc:
				<-released
				rpc.Respond(nil, errors.New("disk full"))
			default:
				rpc.Respond(nil, errors.New("busy"))
			}
		default:
			ackAll(rpc)
		}
	})
	release := sync.OnceFunc(func() { close(released) })
	t.Cleanup(release) // before f stops, if the test fails while f holds
	g := startScriptedPeer(t, ackAll)
	r, _ := startLeader(t, NewInmemStore(), map[ServerID]*scriptedPeer{"f": f, "g": g}, func(c *Config) {
		c.TrailingLogs = 0
		c.SnapshotThreshold, c.SnapshotInterval = 1<<40, time.Hour
	})
	shutdown := func() error { return r.Shutdown().Error() }
	defer func() {
		if shutdown != nil {
			_ = shutdown()
		}
	}()
	for i := 0; i < 10; i++ {
		mustDo(t, "apply", r.Apply([]byte("x"), time.Second))
	}
	mustDo(t, "snapshot", r.Snapshot())
	mustDo(t, "apply", r.Apply([]byte("y"), time.Second))

	// The leader offers f its snapshot; f holds it while f is removed.
	select {
	case <-held:
	case <-time.After(20 * time.Second):
		t.Fatal("the leader offered f no snapshot")
	}
	mustDo(t, "remove f", r.RemoveServer("f", 0, 0))
	mu.Lock()
	removed = true
	mu.Unlock()
	release()

	// Shutdown waits for the old replicator, whatever it still does.
	shut := shutdown
	shutdown = nil
	if !waitFuture(futureFunc(shut), 30*time.Second) {
		t.Fatal("Shutdown hangs")
	}
	mu.Lock()
	defer mu.Unlock()
	if late > 0 {
		t.Fatalf("the removed server was offered %d snapshot(s) after its removal", late)
	}
}

// futureFunc is a Future whose Error runs f once.
type futureFunc func() error

func (f futureFunc) Error() error { return f() }
