//go:build failpoints

package store

import (
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestFailpointRules runs with -tags failpoints only (the chaos suite's
// build): each rule acts on its own store and nothing else.
func TestFailpointRules(t *testing.T) {
	tests := []struct {
		name      string
		state     FailpointState
		wantLog   error
		wantPanic bool
	}{
		{name: "disarmed", state: FailpointState{}},
		{name: "log error", state: FailpointState{Log: &FailpointRule{Mode: "error"}}, wantLog: ErrFailpoint},
		{name: "log slow", state: FailpointState{Log: &FailpointRule{Mode: "slow", DelayMs: 1}}},
		{name: "log panic", state: FailpointState{Log: &FailpointRule{Mode: "panic"}}, wantPanic: true},
		{name: "stable error leaves the log alone", state: FailpointState{Stable: &FailpointRule{Mode: "error"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fpControl.mu.Lock()
			fpControl.state = tt.state
			fpControl.mu.Unlock()
			t.Cleanup(func() {
				fpControl.mu.Lock()
				fpControl.state = FailpointState{}
				fpControl.mu.Unlock()
			})
			mem := raft.NewInmemStore()
			cfg := Config{Now: time.Now}
			logs, stable, _ := failpoints(&cfg, mem, mem, raft.NewInmemSnapshotStore())
			defer func() {
				if got := recover() != nil; got != tt.wantPanic {
					t.Errorf("panicked = %v, want %v", got, tt.wantPanic)
				}
			}()
			err := logs.StoreLog(&raft.Log{Index: 1, Term: 1})
			if !errors.Is(err, tt.wantLog) {
				t.Errorf("StoreLog = %v, want %v", err, tt.wantLog)
			}
			wantStable := tt.state.Stable != nil
			if err := stable.SetUint64([]byte("k"), 1); (err != nil) != wantStable {
				t.Errorf("SetUint64 = %v, want an error: %v", err, wantStable)
			}
		})
	}
}

// TestFailpointClockOffset checks that the offset shifts Config.Now.
func TestFailpointClockOffset(t *testing.T) {
	base := time.Unix(1_000_000, 0)
	cfg := Config{Now: func() time.Time { return base }}
	mem := raft.NewInmemStore()
	failpoints(&cfg, mem, mem, raft.NewInmemSnapshotStore())
	fpControl.offset.Store(int64(-10 * time.Minute))
	t.Cleanup(func() { fpControl.offset.Store(0) })
	if got, want := cfg.Now(), base.Add(-10*time.Minute); !got.Equal(want) {
		t.Errorf("Now() = %v, want %v", got, want)
	}
}
