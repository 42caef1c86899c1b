package store

import (
	"sync"

	"github.com/hashicorp/raft"
)

// hashicorp/raft (v1.7.3, and v1.8.0 still) lets a follower advance its
// commit index to min(leader commit, its own last index) after any
// AppendEntries whose previous entry matches. The Raft paper bounds it by
// the last entry that request verified: min(leader commit, index of last
// new entry). The difference matters when the follower holds a divergent
// suffix from an old term and the leader sends a request that ends before
// it (a MaxAppendEntries-sized batch after the leader walked its nextIndex
// back): the follower then commits and applies the divergent entries, and
// its state differs from the others' for ever. The chaos suite found it
// (disk-error, tests/chaos/README.md bug B2).
//
// commitClamp fixes it from outside raft: every AppendEntries request a
// follower receives has its LeaderCommitIndex lowered to the last index the
// request itself carries (its last entry, or PrevLogEntry when it has
// none). Everything up to that index has just been checked against the
// leader's log, so this is exactly the paper's rule; a follower that is in
// step learns the commit index as fast as before, because the leader's next
// request (sent within 2×CommitTimeout at the latest) carries it.

// verifiedCommit is the commit index a follower may adopt from req.
func verifiedCommit(req *raft.AppendEntriesRequest) uint64 {
	last := req.PrevLogEntry
	if n := len(req.Entries); n > 0 {
		last = req.Entries[n-1].Index
	}
	return min(req.LeaderCommitIndex, last)
}

// commitClamp forwards a transport's RPCs to raft, clamping the commit index
// of each AppendEntries request.
type commitClamp struct {
	out  chan raft.RPC
	done chan struct{}
	once sync.Once
}

// newCommitClamp starts forwarding the RPCs of in.
func newCommitClamp(in <-chan raft.RPC) *commitClamp {
	c := &commitClamp{out: make(chan raft.RPC), done: make(chan struct{})}
	go c.run(in)
	return c
}

func (c *commitClamp) run(in <-chan raft.RPC) {
	for {
		var rpc raft.RPC
		select {
		case rpc = <-in:
		case <-c.done:
			return
		}
		if req, ok := rpc.Command.(*raft.AppendEntriesRequest); ok {
			req.LeaderCommitIndex = verifiedCommit(req)
		}
		select {
		case c.out <- rpc:
		case <-c.done:
			return
		}
	}
}

// stop ends the forwarding; an RPC in flight is dropped, as a closed
// transport drops it.
func (c *commitClamp) stop() { c.once.Do(func() { close(c.done) }) }
