package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	raftv1 "github.com/concord-kv/concord/proto/gen/go/concord/raft/v1"
	"github.com/hashicorp/raft"
)

// openSingle opens a one-node store that bootstraps itself and waits until
// it leads and may serve strong reads.
func openSingle(tb testing.TB, now func() time.Time) *Store {
	tb.Helper()
	s := openSingleIn(tb, tb.TempDir(), "", now)
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("close store: %v", err)
		}
	})
	return s
}

// openSingleIn is openSingle in dir on the given log store; the caller
// closes it.
func openSingleIn(tb testing.TB, dir, logStore string, now func() time.Time) *Store {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s, err := Open(Config{
		NodeID: "n1", DataDir: dir, LogStore: logStore, RaftListener: ln, APIAddress: "http://127.0.0.1:1",
		Bootstrap: true, Now: now, ReapInterval: 10 * time.Millisecond,
		Logger:        slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
		RaftLogOutput: tb.Output(), RaftLogLevel: "error",
		HeartbeatTimeout: 100 * time.Millisecond, ElectionTimeout: 100 * time.Millisecond, LeaderLeaseTimeout: 100 * time.Millisecond,
	})
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !s.IsLeader() || s.readyTerm.Load() != s.raft.CurrentTerm() {
		if time.Now().After(deadline) {
			tb.Fatal("single node did not become a ready leader")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return s
}

func TestReadIndexWaitsForTheTermsFirstEntry(t *testing.T) {
	s := openSingle(t, nil)
	ctx := t.Context()
	for _, linearizable := range []bool{false, true} {
		t.Run(fmt.Sprintf("linearizable=%v", linearizable), func(t *testing.T) {
			idx, err := s.ReadIndexLocal(ctx, linearizable)
			if err != nil || idx == 0 {
				t.Fatalf("ready leader: index %d, err %v", idx, err)
			}
			// A leader whose Noop of the term is not applied yet may not
			// have applied everything earlier leaders committed: neither
			// strong nor leader reads may be served from it.
			ready := s.readyTerm.Load()
			s.readyTerm.Store(0)
			defer s.readyTerm.Store(ready)
			if _, err := s.ReadIndexLocal(ctx, linearizable); !errors.Is(err, ErrNotReady) {
				t.Fatalf("leader not ready for its term: got %v, want ErrNotReady", err)
			}
		})
	}
}

// A data directory created on the bolt log store (the default before the
// WAL) starts again on the default, auto, with its data, and gets no WAL
// beside its log.
func TestDefaultLogStoreKeepsABoltDirectory(t *testing.T) {
	dir := t.TempDir()
	now := func() time.Time { return time.UnixMilli(t0) }
	s := openSingleIn(t, dir, LogStoreBolt, now)
	put := &raftv1.Command{Op: &raftv1.Command_Put{Put: &raftv1.Put{Key: "k", Value: []byte("on bolt")}}}
	res, err := s.Apply(t.Context(), put)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openSingleIn(t, dir, "", now)
	defer func() {
		if err := s.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	}()
	if err := s.ReadBarrier(t.Context(), Strong, res.GetRevision()); err != nil {
		t.Fatal(err)
	}
	if e, _ := s.fsm.Get("k", t0); e == nil || string(e.Value) != "on bolt" {
		t.Fatalf("after reopening on the default log store: %+v, want the value written on bolt", e)
	}
	if _, err := os.Stat(filepath.Join(dir, "raft.db")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "wal")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a WAL appeared beside the bolt log: %v", err)
	}
}

func TestApplyLocalResults(t *testing.T) {
	s := openSingle(t, func() time.Time { return time.UnixMilli(t0) })
	ctx := t.Context()
	put := &raftv1.Command{Op: &raftv1.Command_Put{Put: &raftv1.Put{Key: "k", Value: []byte("v"), TtlMs: 1_000}}}
	res, err := s.Apply(ctx, put)
	if err != nil {
		t.Fatalf("put: %v", err)
	}
	e, _ := s.fsm.Get("k", t0)
	if e == nil || e.ExpiresAtMs != t0+1_000 || e.ModRevision != res.GetRevision() {
		t.Fatalf("entry %+v after put at revision %d: the leader's clock stamps the TTL", e, res.GetRevision())
	}
	cas := &raftv1.Command{Op: &raftv1.Command_Put{Put: &raftv1.Put{Key: "k", Value: []byte("w"), IfAbsent: true}}}
	if res, err := s.Apply(ctx, cas); !errors.Is(err, ErrConflict) || res.GetCode() != raftv1.ResultCode_RESULT_CODE_CONFLICT {
		t.Fatalf("if_absent on an existing key: %v %v, want ErrConflict", res, err)
	}
	touch := &raftv1.Command{Op: &raftv1.Command_Touch{Touch: &raftv1.Touch{Key: "missing"}}}
	if _, err := s.Apply(ctx, touch); !errors.Is(err, ErrNotFound) {
		t.Fatalf("touch of a missing key: %v, want ErrNotFound", err)
	}
	expired, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Second))
	defer cancel()
	if _, err := s.ApplyLocal(expired, put); !errors.Is(err, ErrNoLeader) {
		t.Fatalf("apply with a passed deadline: %v, want ErrNoLeader (not applied)", err)
	}
	if err := s.ReadBarrier(ctx, Strong, res.GetRevision()); err != nil {
		t.Fatalf("strong read barrier: %v", err)
	}
}

// TestReaperRemovesExpiredKeys runs the leader's reaper against an injected
// clock: nothing sleeps for the TTL.
func TestReaperRemovesExpiredKeys(t *testing.T) {
	var nowMs atomic.Int64
	nowMs.Store(t0)
	s := openSingle(t, func() time.Time { return time.UnixMilli(nowMs.Load()) })
	ctx := t.Context()
	for i, ttl := range []int64{1_000, 2_000, 0} {
		cmd := &raftv1.Command{Op: &raftv1.Command_Put{Put: &raftv1.Put{Key: fmt.Sprint("k", i), Value: []byte("v"), TtlMs: ttl}}}
		if _, err := s.Apply(ctx, cmd); err != nil {
			t.Fatal(err)
		}
	}
	waitSize := func(want uint64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			size, _ := s.fsm.Stats()
			if size == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("size %d, want %d", size, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	nowMs.Store(t0 + 1_500)
	waitSize(2)
	if e, _ := s.fsm.Get("k1", nowMs.Load()); e == nil {
		t.Fatal("reaper removed a key that has not expired")
	}
	nowMs.Store(t0 + 5_000)
	waitSize(1)
}

func TestForwardErrorClassification(t *testing.T) {
	dialErr := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	readErr := &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
	tests := []struct {
		name  string
		err   error
		write bool
		want  error
	}{
		{"leader says unavailable", connect.NewWireError(connect.CodeUnavailable, ErrNotLeader), true, ErrNotLeader},
		{"leader says invalid", connect.NewWireError(connect.CodeInvalidArgument, errors.New("bad")), true, ErrInvalidArgument},
		{"leader says outcome unknown", connect.NewWireError(connect.CodeDeadlineExceeded, ErrOutcomeUnknown), true, ErrOutcomeUnknown},
		{"leader says internal", connect.NewWireError(connect.CodeInternal, errors.New("boom")), true, ErrOutcomeUnknown},
		{"dial failed", connect.NewError(connect.CodeUnavailable, dialErr), true, ErrNoLeader},
		{"connection broke after sending a write", connect.NewError(connect.CodeUnavailable, readErr), true, ErrOutcomeUnknown},
		{"connection broke during a read index", connect.NewError(connect.CodeUnavailable, readErr), false, ErrNoLeader},
		{"client deadline during a write", connect.NewError(connect.CodeDeadlineExceeded, context.DeadlineExceeded), true, ErrOutcomeUnknown},
		{"client-side unavailable is not the leader's word", connect.NewError(connect.CodeUnavailable, errors.New("stream error")), true, ErrOutcomeUnknown},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := forwardError(tc.err, tc.write)
			if !errors.Is(got, tc.want) {
				t.Fatalf("forwardError = %v, want %v", got, tc.want)
			}
			if retryable(got) != (errors.Is(tc.want, ErrNotLeader) || errors.Is(tc.want, ErrNoLeader)) {
				t.Fatalf("retryable(%v) = %v", got, retryable(got))
			}
			var ce *connect.Error
			if errors.As(got, &ce) {
				t.Fatalf("forwardError keeps the transport's connect error %v: the server would pass its code on", ce)
			}
		})
	}
}

func TestRetryableOnlyWhenCertainlyNotApplied(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{ErrNotLeader, true},
		{fmt.Errorf("%w: x", ErrNoLeader), true},
		{ErrNotReady, true},
		{ErrOutcomeUnknown, false},
		{ErrClosed, false},
		{ErrConflict, false},
		{context.DeadlineExceeded, false},
		{raft.ErrLeadershipLost, false},
		{nil, false},
	} {
		if got := retryable(tc.err); got != tc.want {
			t.Errorf("retryable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
