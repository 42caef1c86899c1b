package store

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// gatedStore is an in-memory log store whose appends can be held (they
// wait until released) or made to fail.
type gatedStore struct {
	*raft.InmemStore
	mu     sync.Mutex
	gate   chan struct{} // appends wait while it is open (not closed)
	fail   error
	queued chan struct{} // gets a value each time an append starts waiting
}

func newGatedStore() *gatedStore {
	return &gatedStore{InmemStore: raft.NewInmemStore(), queued: make(chan struct{}, 1024)}
}

func (g *gatedStore) hold() {
	g.mu.Lock()
	g.gate = make(chan struct{})
	g.mu.Unlock()
}

// release lets held appends go on; it does nothing when none are held.
func (g *gatedStore) release() {
	g.mu.Lock()
	if g.gate != nil {
		close(g.gate)
		g.gate = nil
	}
	g.mu.Unlock()
}

func (g *gatedStore) failWith(err error) {
	g.mu.Lock()
	g.fail = err
	g.mu.Unlock()
}

func (g *gatedStore) StoreLogs(logs []*raft.Log) error {
	g.mu.Lock()
	gate, fail := g.gate, g.fail
	g.mu.Unlock()
	if fail != nil {
		return fail
	}
	if gate != nil {
		g.queued <- struct{}{}
		<-gate
	}
	return g.InmemStore.StoreLogs(logs)
}

func (g *gatedStore) StoreLog(l *raft.Log) error { return g.StoreLogs([]*raft.Log{l}) }

// parallelCluster is three in-process raft nodes on gated stores, with
// Config.LeaderParallelWrites on.
type parallelCluster struct {
	t      *testing.T
	rafts  []*raft.Raft
	stores []*gatedStore
	fsms   []*raft.MockFSM
}

func startParallelCluster(t *testing.T) *parallelCluster {
	t.Helper()
	c := &parallelCluster{t: t}
	var servers []raft.Server
	var trans []*raft.InmemTransport
	for i := range 3 {
		id := raft.ServerID(fmt.Sprintf("n%d", i))
		addr, tr := raft.NewInmemTransport(raft.ServerAddress(id))
		servers = append(servers, raft.Server{ID: id, Address: addr})
		trans = append(trans, tr)
	}
	for i, a := range trans {
		for j, b := range trans {
			if i != j {
				a.Connect(b.LocalAddr(), b)
			}
		}
	}
	for i := range 3 {
		conf := raft.DefaultConfig()
		conf.LocalID = servers[i].ID
		conf.HeartbeatTimeout, conf.ElectionTimeout = 200*time.Millisecond, 200*time.Millisecond
		conf.LeaderLeaseTimeout, conf.CommitTimeout = 100*time.Millisecond, 5*time.Millisecond
		conf.LeaderParallelWrites = true
		conf.LogOutput = testWriter{t}
		store, snaps, fsm := newGatedStore(), raft.NewInmemSnapshotStore(), &raft.MockFSM{}
		if err := raft.BootstrapCluster(conf, store, store, snaps, trans[i], raft.Configuration{Servers: servers}); err != nil {
			t.Fatal(err)
		}
		r, err := raft.NewRaft(conf, fsm, store, store, snaps, trans[i])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Shutdown().Error() })
		c.rafts, c.stores, c.fsms = append(c.rafts, r), append(c.stores, store), append(c.fsms, fsm)
	}
	return c
}

// leader waits for a leader other than not (-1: any) and returns its index.
func (c *parallelCluster) leader(not int) int {
	c.t.Helper()
	leader := -1
	waitUntil(c.t, func() bool {
		for i, r := range c.rafts {
			if i != not && r.State() == raft.Leader {
				leader = i
				return true
			}
		}
		return false
	}, func() string { return "no leader" })
	return leader
}

func (c *parallelCluster) waitStored(i int, index uint64) {
	c.t.Helper()
	waitUntil(c.t, func() bool { last, _ := c.stores[i].LastIndex(); return last >= index },
		func() string { return fmt.Sprintf("n%d's log store never reached %d", i, index) })
}

func applied(fsm *raft.MockFSM, data string) bool {
	for _, b := range fsm.Logs() {
		if string(b) == data {
			return true
		}
	}
	return false
}

// TestLeaderParallelWrites checks Config.LeaderParallelWrites (Concord's
// raft): while the leader's own append is held, its followers receive and
// store the entry, but nobody applies it until the leader's log holds it.
func TestLeaderParallelWrites(t *testing.T) {
	c := startParallelCluster(t)
	l := c.leader(-1)
	if err := c.rafts[l].Barrier(10 * time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	c.stores[l].hold()
	t.Cleanup(c.stores[l].release) // runs before the nodes shut down: a leader waits for its writes
	f := c.rafts[l].Apply([]byte("x"), 10*time.Second)
	<-c.stores[l].queued // the leader's write of x has started and waits
	index := c.rafts[l].LastIndex()
	for i := range c.rafts {
		if i != l {
			c.waitStored(i, index) // sent while the leader's write waits
		}
	}
	// Both followers hold x: a quorum without the leader. It must not
	// commit while the leader's log does not hold it. Look a few times
	// (a negative check: it passes at once when the code is right).
	for range 20 {
		for i, fsm := range c.fsms {
			if applied(fsm, "x") {
				t.Fatalf("n%d applied x before the leader's log held it", i)
			}
		}
		if c.rafts[l].CommitIndex() >= index {
			t.Fatalf("the leader committed %d before its log held it", index)
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.stores[l].release()
	if err := f.Error(); err != nil {
		t.Fatalf("apply after the release: %v", err)
	}
	if !applied(c.fsms[l], "x") {
		t.Fatal("the leader answered x without applying it")
	}
}

// TestLeaderParallelWriteFailure: when the leader's own append fails, it
// steps down, the write is not acknowledged, and its last index goes back
// to what its log store holds, so it can follow the next leader (had it
// kept counting the failed entries, the next leader's entries would leave
// a gap in its log, and applying them would panic on the missing entry).
func TestLeaderParallelWriteFailure(t *testing.T) {
	c := startParallelCluster(t)
	l := c.leader(-1)
	if err := c.rafts[l].Barrier(10 * time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	c.stores[l].failWith(errors.New("injected append failure"))
	err := c.rafts[l].Apply([]byte("lost"), 10*time.Second).Error()
	if err == nil {
		t.Fatal("a write the leader failed to store was acknowledged")
	}
	next := c.leader(l)
	c.stores[l].failWith(nil)
	if err := c.rafts[next].Apply([]byte("after"), 10*time.Second).Error(); err != nil {
		t.Fatalf("write to the new leader: %v", err)
	}
	waitUntil(t, func() bool { return applied(c.fsms[l], "after") },
		func() string { return "the old leader never applied the new leader's write" })
}

// TestLeaderParallelWritesAndANewerHeartbeat: a heartbeat from a newer
// leader reaches raft on the transport's goroutine (NetworkTransport's
// heartbeat fast path, which the replica's transport keeps) while the
// leader's own writes are held. Only the main goroutine may stop the
// writer. When the heartbeat's goroutine stopped it, the leader went on
// writing directly and applied the next entry while its log did not hold
// the one before (or panicked sending on the closed channel).
func TestLeaderParallelWritesAndANewerHeartbeat(t *testing.T) {
	trans, err := raft.NewTCPTransport("127.0.0.1:0", nil, 3, time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = trans.Close() })
	conf := raft.DefaultConfig()
	conf.LocalID = "a"
	conf.LeaderParallelWrites = true
	conf.HeartbeatTimeout, conf.ElectionTimeout = 100*time.Millisecond, 100*time.Millisecond
	conf.LeaderLeaseTimeout = 100 * time.Millisecond
	conf.LogOutput = testWriter{t}
	store, snaps, fsm := newGatedStore(), raft.NewInmemSnapshotStore(), &raft.MockFSM{}
	self := raft.Configuration{Servers: []raft.Server{{ID: "a", Address: trans.LocalAddr()}}}
	if err := raft.BootstrapCluster(conf, store, store, snaps, trans, self); err != nil {
		t.Fatal(err)
	}
	r, err := raft.NewRaft(conf, fsm, store, store, snaps, trans)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Shutdown().Error() })
	waitUntil(t, func() bool { return r.State() == raft.Leader }, func() string { return "no leader" })
	if err := r.Barrier(10 * time.Second).Error(); err != nil {
		t.Fatal(err)
	}

	store.hold()
	t.Cleanup(store.release) // runs before the shutdown: a leader waits for its writes
	r.Apply([]byte("held"), 0)
	<-store.queued // the write of "held" has started and waits

	other, err := raft.NewTCPTransport("127.0.0.1:0", nil, 3, time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.CloseStreams(); _ = other.Close() })
	heartbeat := &raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("b"), Addr: other.EncodePeer("b", other.LocalAddr())},
		Term:      1 << 20,
	}
	var resp raft.AppendEntriesResponse
	if err := other.AppendEntries("a", trans.LocalAddr(), heartbeat, &resp); err != nil {
		t.Fatalf("heartbeat: %v", err)
	}

	// Whatever becomes of these, nothing may be applied while the log
	// store does not hold "held".
	for range 20 {
		_ = r.Apply([]byte("after"), 10*time.Millisecond)
	}
	for _, b := range fsm.Logs() {
		if d := string(b); d == "held" || d == "after" {
			t.Fatalf("applied %q while the leader's log did not hold \"held\"", d)
		}
	}
}
