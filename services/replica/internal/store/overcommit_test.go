package store

import (
	"fmt"
	"slices"
	"testing"

	"github.com/hashicorp/raft"
)

func TestVerifiedCommit(t *testing.T) {
	entries := func(from, to uint64) []*raft.Log {
		var out []*raft.Log
		for i := from; i <= to; i++ {
			out = append(out, &raft.Log{Index: i})
		}
		return out
	}
	for _, tc := range []struct {
		req  raft.AppendEntriesRequest
		want uint64
	}{
		{raft.AppendEntriesRequest{PrevLogEntry: 100, Entries: entries(101, 110), LeaderCommitIndex: 200}, 110},
		{raft.AppendEntriesRequest{PrevLogEntry: 100, Entries: entries(101, 110), LeaderCommitIndex: 105}, 105},
		{raft.AppendEntriesRequest{PrevLogEntry: 100, LeaderCommitIndex: 200}, 100},
		{raft.AppendEntriesRequest{PrevLogEntry: 0, Entries: entries(1, 3), LeaderCommitIndex: 2}, 2},
		{raft.AppendEntriesRequest{}, 0},
	} {
		if got := verifiedCommit(&tc.req); got != tc.want {
			t.Errorf("prev %d, %d entries, leader commit %d: %d, want %d", tc.req.PrevLogEntry, len(tc.req.Entries), tc.req.LeaderCommitIndex, got, tc.want)
		}
	}
}

// clampedInmem is an in-memory transport behind the commit clamp, as the
// replica's network transport is.
type clampedInmem struct {
	*raft.InmemTransport
	clamp *commitClamp
}

func (c *clampedInmem) Consumer() <-chan raft.RPC { return c.clamp.out }

// TestFollowerDoesNotCommitADivergentSuffix replays bug B2 on a real
// hashicorp/raft follower: it holds entries 6-7 from an old term; the new
// leader's request verifies only up to 5 but says 7 is committed. The
// follower must not apply its own 6-7, and applies the leader's 6 after.
func TestFollowerDoesNotCommitADivergentSuffix(t *testing.T) {
	for _, clamped := range []bool{true, false} {
		t.Run(fmt.Sprintf("clamped=%v", clamped), func(t *testing.T) {
			applied := replayOvercommit(t, clamped)
			want := []string{"a2", "a3", "a4", "a5", "new6"}
			if clamped && !slices.Equal(applied, want) {
				t.Fatalf("the follower applied %q, want %q", applied, want)
			}
			// Without the clamp raft applies the divergent entries: the
			// replay does reproduce the bug.
			if !clamped && !slices.Contains(applied, "old6") {
				t.Fatalf("unclamped follower applied %q: the replay no longer reproduces B2 (fixed upstream?)", applied)
			}
		})
	}
}

func replayOvercommit(t *testing.T, clamped bool) []string {
	t.Helper()
	var wrap func(*raft.InmemTransport) raft.Transport
	if clamped {
		wrap = func(ft *raft.InmemTransport) raft.Transport {
			c := &clampedInmem{InmemTransport: ft, clamp: newCommitClamp(ft.Consumer())}
			t.Cleanup(c.clamp.stop)
			return c
		}
	}
	f := startFollower(t, raft.NewInmemStore(), nil, wrap)
	entry, send, waitApplied, fsm := logEntry, f.send, f.waitApplied, f.fsm

	// Term 2: entries 2-5, committed up to 3; then 6-7, never committed.
	send(2, 1, 1, 3, entry(2, 2, "a2"), entry(3, 2, "a3"), entry(4, 2, "a4"), entry(5, 2, "a5"))
	send(2, 5, 2, 3, entry(6, 2, "old6"), entry(7, 2, "old7"))
	waitApplied(3)
	// Term 3: the leader's own 6-7 are committed; this request ends at 5.
	send(3, 4, 2, 7, entry(5, 2, "a5"))
	waitApplied(5)
	// The next request carries the leader's 6 and replaces the old suffix.
	send(3, 5, 2, 6, entry(6, 3, "new6"))
	waitApplied(6)

	f.waitFSM(5)
	var out []string
	for _, b := range fsm.Logs() {
		out = append(out, string(b))
	}
	return out
}
