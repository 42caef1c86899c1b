package raft

import (
	"testing"
	"time"
)

// A follower's "still leader" answer confirms a VerifyLeader only if the
// request it answers was sent after the verify began (bug B8: after a
// process pause, the answer to a heartbeat sent before the pause confirmed
// a verify that began after it, though another leader had been elected).
func TestConcordVerifyCountsOnlyAnswersToLaterRequests(t *testing.T) {
	s := &followerReplication{notify: make(map[*verifyFuture]struct{})}
	done := make(chan *verifyFuture, 1)
	v := &verifyFuture{notifyCh: done, quorumSize: 2, votes: 1, registered: time.Now()}
	s.notify[v] = struct{}{}

	s.notifyAll(true, v.registered.Add(-time.Second)) // sent before the verify
	if v.votes != 1 || len(done) != 0 {
		t.Fatalf("an answer to an earlier request voted: votes=%d", v.votes)
	}
	if len(s.notify) != 1 {
		t.Fatal("the verify stopped waiting for this follower")
	}

	s.notifyAll(true, v.registered.Add(time.Millisecond)) // sent after it
	if v.votes != 2 || len(done) != 1 {
		t.Fatalf("an answer to a later request did not vote: votes=%d", v.votes)
	}
	if len(s.notify) != 0 {
		t.Fatal("the verify still waits for this follower")
	}
}

// A "not leader" answer ends every waiting verify, whenever its request was
// sent, as upstream does.
func TestConcordVerifyNotLeaderEndsEveryVerify(t *testing.T) {
	s := &followerReplication{notify: make(map[*verifyFuture]struct{})}
	done := make(chan *verifyFuture, 1)
	v := &verifyFuture{notifyCh: done, quorumSize: 2, votes: 1, registered: time.Now()}
	s.notify[v] = struct{}{}

	s.notifyAll(false, time.Time{})
	if v.votes != 1 || len(done) != 1 || len(s.notify) != 0 {
		t.Fatalf("votes=%d notified=%d waiting=%d, want 1, 1, 0", v.votes, len(done), len(s.notify))
	}
}
