package raft

import (
	"fmt"
	"io"
	"sync"
	"testing"
	"time"
)

// scriptedPeer is a server the test plays over real TCP: a NetworkTransport
// whose RPCs handle answers.
type scriptedPeer struct {
	trans *NetworkTransport
	stop  chan struct{}
	wg    sync.WaitGroup
}

// startScriptedPeer starts a peer that passes every RPC it receives to
// handle, one at a time. It stops when the test ends.
func startScriptedPeer(t *testing.T, handle func(RPC)) *scriptedPeer {
	t.Helper()
	trans, err := NewTCPTransport("127.0.0.1:0", nil, 2, 10*time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	p := &scriptedPeer{trans: trans, stop: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			select {
			case rpc := <-trans.Consumer():
				handle(rpc)
			case <-p.stop:
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(p.stop)
		p.wg.Wait()
		_ = trans.Close()
	})
	return p
}

// answerVotes grants a vote or pre-vote and reports whether rpc was one.
func answerVotes(rpc RPC) bool {
	switch req := rpc.Command.(type) {
	case *RequestPreVoteRequest:
		rpc.Respond(&RequestPreVoteResponse{Term: req.Term, Granted: true}, nil)
	case *RequestVoteRequest:
		rpc.Respond(&RequestVoteResponse{Term: req.Term, Granted: true}, nil)
	default:
		return false
	}
	return true
}

// ackAll is a follower that grants every vote and accepts everything.
func ackAll(rpc RPC) {
	if answerVotes(rpc) {
		return
	}
	switch req := rpc.Command.(type) {
	case *AppendEntriesRequest:
		rpc.Respond(&AppendEntriesResponse{Term: req.Term, Success: true, LastLog: req.PrevLogEntry + uint64(len(req.Entries))}, nil)
	case *InstallSnapshotRequest:
		_, _ = io.Copy(io.Discard, rpc.Reader)
		rpc.Respond(&InstallSnapshotResponse{Term: req.Term, Success: true}, nil)
	default:
		rpc.Respond(nil, fmt.Errorf("unexpected %T", req))
	}
}

// startLeader bootstraps a real raft node, "leader", with the voters
// peers (ID -> transport) and returns it once it leads. tune, if not nil,
// adjusts its configuration. Its Shutdown is the test's to call.
func startLeader(t *testing.T, store interface {
	LogStore
	StableStore
}, peers map[ServerID]*scriptedPeer, tune func(*Config)) (*Raft, *NetworkTransport) {
	t.Helper()
	trans, err := NewTCPTransport("127.0.0.1:0", nil, 2, 10*time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	conf := DefaultConfig()
	conf.LocalID = "leader"
	conf.LogOutput = io.Discard
	// Short enough to elect it soon, long enough that a loaded machine
	// (-race, other tests) does not make it lose its lease mid-test.
	conf.HeartbeatTimeout = 500 * time.Millisecond
	conf.ElectionTimeout = 500 * time.Millisecond
	conf.LeaderLeaseTimeout = 500 * time.Millisecond
	conf.CommitTimeout = 5 * time.Millisecond
	if tune != nil {
		tune(conf)
	}
	members := Configuration{Servers: []Server{{Suffrage: Voter, ID: "leader", Address: trans.LocalAddr()}}}
	for id, p := range peers {
		members.Servers = append(members.Servers, Server{Suffrage: Voter, ID: id, Address: p.trans.LocalAddr()})
	}
	snaps := NewInmemSnapshotStore()
	if err := BootstrapCluster(conf, store, store, snaps, trans, members); err != nil {
		t.Fatal(err)
	}
	r, err := NewRaft(conf, &MockFSM{}, store, store, snaps, trans)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); r.State() != Leader; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			_ = r.Shutdown().Error()
			t.Fatal("no leader")
		}
	}
	return r, trans
}

// waitFuture reports whether f completed within d.
func waitFuture(f Future, d time.Duration) bool {
	done := make(chan struct{})
	go func() { _ = f.Error(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// mustDo fails the test unless f completes without error within 20 s.
func mustDo(t *testing.T, what string, f Future) {
	t.Helper()
	if !waitFuture(f, 20*time.Second) {
		t.Fatalf("%s did not complete", what)
	}
	if err := f.Error(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}
