package store

import (
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// A heartbeat reaches raft through Consumer, on raft's main goroutine, not
// through the transport's fast path (bug B9, hashicorp/raft#695).
func TestHeartbeatsReachRaftsMainGoroutine(t *testing.T) {
	inner, err := raft.NewTCPTransport("127.0.0.1:0", nil, 3, time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	trans := newContactTransport(inner)
	t.Cleanup(func() { _ = trans.Close() })
	var fastPath atomic.Bool
	trans.SetHeartbeatHandler(func(rpc raft.RPC) { // what raft.NewRaft installs
		fastPath.Store(true)
		rpc.Respond(&raft.AppendEntriesResponse{Term: 1, Success: true}, nil)
	})

	leader, err := raft.NewTCPTransport("127.0.0.1:0", nil, 3, time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = leader.Close() })
	heartbeat := &raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{ID: []byte("n1"), Addr: []byte(leader.LocalAddr())},
		Term:      1,
	}
	sent := make(chan error, 1)
	go func() {
		var resp raft.AppendEntriesResponse
		sent <- leader.AppendEntries("n2", trans.LocalAddr(), heartbeat, &resp)
	}()
	select {
	case rpc := <-trans.Consumer():
		if _, ok := rpc.Command.(*raft.AppendEntriesRequest); !ok {
			t.Fatalf("got %T, want the heartbeat", rpc.Command)
		}
		rpc.Respond(&raft.AppendEntriesResponse{Term: 1, Success: true}, nil)
	case err := <-sent:
		t.Fatalf("the heartbeat was answered without reaching Consumer (fast path used: %v, error: %v)", fastPath.Load(), err)
	case <-time.After(30 * time.Second):
		t.Fatal("the heartbeat never reached Consumer")
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if fastPath.Load() {
		t.Fatal("the heartbeat took the fast path")
	}
}
