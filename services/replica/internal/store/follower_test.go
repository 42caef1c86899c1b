package store

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// fakeLeaderFollower is a real hashicorp/raft follower that the test drives
// by playing its leader, "l", over an in-memory transport: each request is
// exactly the one a scenario needs.
type fakeLeaderFollower struct {
	t    *testing.T
	r    *raft.Raft
	fsm  *raft.MockFSM
	logs raft.LogStore
	lt   *raft.InmemTransport
}

// raftStores is what the follower keeps its log and stable state in.
type raftStores interface {
	raft.LogStore
	raft.StableStore
}

// startFollower starts follower "f" of the voters f, l and x on logs. tune,
// if not nil, adjusts the raft configuration; wrap, if not nil, puts
// something between the follower and its transport.
func startFollower(t *testing.T, logs raftStores, tune func(*raft.Config), wrap func(*raft.InmemTransport) raft.Transport) *fakeLeaderFollower {
	t.Helper()
	_, ft := raft.NewInmemTransport("f")
	_, lt := raft.NewInmemTransport("l")
	lt.Connect("f", ft)
	ft.Connect("l", lt)
	var trans raft.Transport = ft
	if wrap != nil {
		trans = wrap(ft)
	}
	conf := raft.DefaultConfig()
	conf.LocalID = "f"
	conf.HeartbeatTimeout, conf.ElectionTimeout = time.Hour, time.Hour // never campaigns
	conf.LogOutput = testWriter{t}
	if tune != nil {
		tune(conf)
	}
	snaps := raft.NewInmemSnapshotStore()
	if err := raft.BootstrapCluster(conf, logs, logs, snaps, trans, voters()); err != nil { // index 1, term 1
		t.Fatal(err)
	}
	fsm := &raft.MockFSM{}
	r, err := raft.NewRaft(conf, fsm, logs, logs, snaps, trans)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Shutdown().Error() })
	return &fakeLeaderFollower{t: t, r: r, fsm: fsm, logs: logs, lt: lt}
}

func voters() raft.Configuration {
	return raft.Configuration{Servers: []raft.Server{{ID: "f", Address: "f"}, {ID: "l", Address: "l"}, {ID: "x", Address: "x"}}}
}

func leaderHeader() raft.RPCHeader {
	return raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("l"), Addr: []byte("l")}
}

func logEntry(idx, term uint64, data string) *raft.Log {
	return &raft.Log{Index: idx, Term: term, Type: raft.LogCommand, Data: []byte(data)}
}

// appendEntries sends one AppendEntries request and returns the answer.
func (f *fakeLeaderFollower) appendEntries(term, prev, prevTerm, commit uint64, es ...*raft.Log) raft.AppendEntriesResponse {
	f.t.Helper()
	req := &raft.AppendEntriesRequest{
		RPCHeader: leaderHeader(),
		Term:      term, PrevLogEntry: prev, PrevLogTerm: prevTerm, Entries: es, LeaderCommitIndex: commit,
	}
	var resp raft.AppendEntriesResponse
	if err := f.lt.AppendEntries("f", "f", req, &resp); err != nil {
		f.t.Fatalf("AppendEntries term %d prev %d: %v", term, prev, err)
	}
	return resp
}

// send is appendEntries for a request the follower must accept.
func (f *fakeLeaderFollower) send(term, prev, prevTerm, commit uint64, es ...*raft.Log) {
	f.t.Helper()
	if resp := f.appendEntries(term, prev, prevTerm, commit, es...); !resp.Success {
		f.t.Fatalf("AppendEntries term %d prev %d (term %d) rejected: %+v", term, prev, prevTerm, resp)
	}
}

// waitUntil polls cond until it holds and fails the test after 10 s,
// saying what it waited for (what is asked only then).
func waitUntil(t *testing.T, cond func() bool, what func() string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(what())
		}
		time.Sleep(time.Millisecond)
	}
}

func (f *fakeLeaderFollower) waitApplied(idx uint64) {
	f.t.Helper()
	waitUntil(f.t, func() bool { return f.r.AppliedIndex() >= idx },
		func() string { return fmt.Sprintf("applied %d, want %d", f.r.AppliedIndex(), idx) })
}

// waitFSM waits until the FSM has taken n commands: raft counts an entry
// applied when it hands it to the FSM goroutine.
func (f *fakeLeaderFollower) waitFSM(n int) {
	f.t.Helper()
	waitUntil(f.t, func() bool { return len(f.fsm.Logs()) >= n },
		func() string { return fmt.Sprintf("the FSM took %d commands, want %d", len(f.fsm.Logs()), n) })
}

// installSnapshot sends, as the leader of term, a snapshot of the state
// made by entries (its last one is the snapshot's index and term).
func (f *fakeLeaderFollower) installSnapshot(term uint64, entries []*raft.Log) {
	f.t.Helper()
	src := &raft.MockFSM{}
	for _, l := range entries {
		src.Apply(l)
	}
	snap, err := src.Snapshot()
	if err != nil {
		f.t.Fatal(err)
	}
	data := persist(f.t, snap)
	last := entries[len(entries)-1]
	req := &raft.InstallSnapshotRequest{
		RPCHeader:       leaderHeader(),
		SnapshotVersion: raft.SnapshotVersionMax,
		Term:            term, LastLogIndex: last.Index, LastLogTerm: last.Term,
		Configuration: raft.EncodeConfiguration(voters()), ConfigurationIndex: 1,
		Size: int64(len(data)),
	}
	var resp raft.InstallSnapshotResponse
	if err := f.lt.InstallSnapshot("f", "f", req, &resp, bytes.NewReader(data)); err != nil || !resp.Success {
		f.t.Fatalf("InstallSnapshot: %+v %v", resp, err)
	}
}

// lastLog is the follower's log store's last index and that entry's term.
func (f *fakeLeaderFollower) lastLog() (index, term uint64) {
	f.t.Helper()
	last, err := f.logs.LastIndex()
	if err != nil {
		f.t.Fatal(err)
	}
	var l raft.Log
	if err := f.logs.GetLog(last, &l); err != nil {
		f.t.Fatalf("entry %d: %v", last, err)
	}
	return last, l.Term
}

// TestFollowerAcceptsAppendAtItsSnapshotIndex replays half of bug B7: a
// follower compacted its log up to its snapshot at 6 but holds 7-10 from
// an old term. The new leader's request follows entry 6, which the
// follower knows only from its snapshot. Upstream raft rejected it (it
// could not read entry 6), and the leader then walked back one entry per
// round trip; the patched follower checks the snapshot's term and replaces
// its old suffix.
func TestFollowerAcceptsAppendAtItsSnapshotIndex(t *testing.T) {
	f := startFollower(t, raft.NewInmemStore(), func(c *raft.Config) {
		c.TrailingLogs = 0 // a snapshot compacts the whole applied log
		c.SnapshotThreshold, c.SnapshotInterval = 1<<40, time.Hour
	}, nil)
	e := logEntry
	f.send(2, 1, 1, 6, e(2, 2, "a2"), e(3, 2, "a3"), e(4, 2, "a4"), e(5, 2, "a5"), e(6, 2, "a6"), e(7, 2, "old7"), e(8, 2, "old8"))
	f.waitFSM(5)
	if err := f.r.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	if first, _ := f.logs.FirstIndex(); first != 7 {
		t.Fatalf("after the snapshot the log starts at %d, want 7: the replay no longer sets up B7", first)
	}

	f.send(3, 6, 2, 7, e(7, 3, "new7"))
	if last, term := f.lastLog(); last != 7 || term != 3 {
		t.Fatalf("log ends at %d (term %d), want the leader's 7 (term 3)", last, term)
	}
	f.waitApplied(7)
}

// monotonicInmem is an in-memory log store that says, as raft-wal does,
// that it cannot hold gaps: raft then empties it on InstallSnapshot.
type monotonicInmem struct{ *raft.InmemStore }

func (monotonicInmem) IsMonotonic() bool { return true }

// TestInstalledSnapshotEndsAMonotonicLog replays the other half of B7, the
// one raft-wal hit: a follower holding 2-10 from term 2 installs the
// snapshot at 5 of the leader of term 3, whose 3-5 are its own. Raft
// empties a monotonic log store but upstream kept the follower's last
// index at 10, so the follower rejected every request after the snapshot
// (it could read neither the entries it compared nor prev 5).
func TestInstalledSnapshotEndsAMonotonicLog(t *testing.T) {
	f := startFollower(t, monotonicInmem{raft.NewInmemStore()}, nil, nil)
	e := logEntry
	var old []*raft.Log
	for i := uint64(2); i <= 10; i++ {
		old = append(old, e(i, 2, "old"))
	}
	f.send(2, 1, 1, 1, old...)

	// The leader of term 3 holds 2 from term 2 and 3-5 from its own term,
	// and snapshots them: the follower does not hold entry 5 of term 3.
	f.installSnapshot(3, []*raft.Log{old[0], e(3, 3, "new3"), e(4, 3, "new4"), e(5, 3, "new5")})

	f.send(3, 5, 3, 6, e(6, 3, "new6"))
	if last, term := f.lastLog(); last != 6 || term != 3 {
		t.Fatalf("log ends at %d (term %d), want the leader's 6 (term 3)", last, term)
	}
	f.waitApplied(6)
}

// testWriter sends raft's log lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// TestSnapshotOfHeldEntriesIsNotInstalled: a follower is offered a
// snapshot whose last entry it already holds (bug B10's second replicator
// did this). Upstream raft installed it anyway: it rewound the FSM and, on
// a monotonic log store (raft-wal), deleted the entries after it, ones the
// follower had acknowledged. The follower now keeps its log and state, as
// Raft's InstallSnapshot rule says.
func TestSnapshotOfHeldEntriesIsNotInstalled(t *testing.T) {
	e := logEntry
	var entries []*raft.Log // 2-10, term 2
	for i := uint64(2); i <= 10; i++ {
		entries = append(entries, e(i, 2, fmt.Sprintf("v%d", i)))
	}
	// checkIntact fails unless the follower holds 2-10 and has applied
	// them all, in order, without a restore.
	checkIntact := func(t *testing.T, f *fakeLeaderFollower) {
		t.Helper()
		if last, term := f.lastLog(); last != 10 || term != 2 {
			t.Fatalf("log ends at %d (term %d), want 10 (term 2)", last, term)
		}
		f.waitApplied(10)
		f.waitFSM(9)
		for i, data := range f.fsm.Logs() {
			if want := fmt.Sprintf("v%d", i+2); string(data) != want {
				t.Fatalf("FSM command %d is %q, want %q", i, data, want)
			}
		}
	}
	stores := map[string]func() raftStores{
		"monotonic": func() raftStores { return monotonicInmem{raft.NewInmemStore()} },
		"inmem":     func() raftStores { return raft.NewInmemStore() },
	}
	for name, store := range stores {
		t.Run(name+"/below the commit index", func(t *testing.T) {
			f := startFollower(t, store(), nil, nil)
			f.send(2, 1, 1, 10, entries...)
			f.waitFSM(9)
			f.installSnapshot(2, entries[:4]) // 2-5
			checkIntact(t, f)
		})
	}
	t.Run("monotonic/in the log above the commit index", func(t *testing.T) {
		f := startFollower(t, stores["monotonic"](), nil, nil)
		f.send(2, 1, 1, 3, entries...) // committed up to 3
		f.waitApplied(3)
		f.installSnapshot(2, entries[:7]) // 2-8
		f.send(2, 10, 2, 10)              // the leader goes on; commit 10
		checkIntact(t, f)
	})
}
