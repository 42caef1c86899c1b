//go:build failpoints

// Failpoints for the chaos suite (tests/chaos). This file is compiled only
// into a replica built with -tags failpoints; the default build has none of
// it (failpoint_off.go).
//
// With the tag, a replica started with CONCORD_FAILPOINT_ADDR=host:port
// serves a control endpoint on that address:
//
//	PUT /failpoints  {"log": {"mode": "error", "prob": 0.3}, "clock_offset_ms": 600000}
//	GET /failpoints  the armed state and how often each store's rule fired
//
// A PUT replaces the whole state ({} disarms everything). A rule makes every
// call of its store (the Raft log store, the stable store, the snapshot
// store) fail with ErrFailpoint ("error"), sleep DelayMs first ("slow") or
// panic ("panic"), each call with probability Prob (0 means always). The
// clock offset shifts Config.Now, the clock TTLs and expiry are computed by.
// The state lives in memory only: a restarted replica starts disarmed.

package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// FailpointAddrEnv names the environment variable with the listen address
// of the failpoint control endpoint.
const FailpointAddrEnv = "CONCORD_FAILPOINT_ADDR"

// ErrFailpoint is the error an armed "error" rule returns.
var ErrFailpoint = errors.New("failpoint: injected disk error")

// FailpointRule is how one store misbehaves.
type FailpointRule struct {
	// Mode is error, slow or panic; empty disarms the rule.
	Mode string `json:"mode"`
	// Prob is the chance that a call fires the rule; 0 means every call.
	Prob float64 `json:"prob,omitempty"`
	// DelayMs is how long a slow call sleeps before it runs.
	DelayMs int64 `json:"delay_ms,omitempty"`
}

// FailpointState is everything that can be armed.
type FailpointState struct {
	Log           *FailpointRule `json:"log,omitempty"`
	Stable        *FailpointRule `json:"stable,omitempty"`
	Snapshot      *FailpointRule `json:"snapshot,omitempty"`
	ClockOffsetMs int64          `json:"clock_offset_ms,omitempty"`
}

func (r *FailpointRule) validate() error {
	if r == nil {
		return nil
	}
	switch r.Mode {
	case "", "error", "slow", "panic":
	default:
		return fmt.Errorf("unknown mode %q (want error, slow or panic)", r.Mode)
	}
	if r.Prob < 0 || r.Prob > 1 || r.DelayMs < 0 {
		return fmt.Errorf("prob %v must be in [0, 1] and delay_ms %d not negative", r.Prob, r.DelayMs)
	}
	return nil
}

// failpointControl is the process's armed state (one replica per process).
type failpointControl struct {
	mu    sync.Mutex
	state FailpointState
	fired map[string]int64

	offset atomic.Int64 // nanoseconds added to Config.Now
	once   sync.Once
}

var fpControl = &failpointControl{fired: map[string]int64{}}

// failpoints wraps the stores and the clock, and starts the control
// endpoint once per process when CONCORD_FAILPOINT_ADDR is set.
func failpoints(cfg *Config, logs raft.LogStore, stable raft.StableStore, snaps raft.SnapshotStore) (raft.LogStore, raft.StableStore, raft.SnapshotStore) {
	c := fpControl
	if addr := os.Getenv(FailpointAddrEnv); addr != "" {
		c.once.Do(func() { c.serve(addr, cfg.Logger) })
	}
	base := cfg.Now
	cfg.Now = func() time.Time { return base().Add(time.Duration(c.offset.Load())) }
	return &fpLogStore{c: c, s: logs}, &fpStableStore{c: c, s: stable}, &fpSnapshotStore{c: c, s: snaps}
}

func (c *failpointControl) serve(addr string, log *slog.Logger) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Error("failpoint control endpoint", "addr", addr, "err", err)
		return
	}
	log.Warn("failpoints enabled: this replica was built with -tags failpoints", "addr", ln.Addr().String())
	mux := http.NewServeMux()
	mux.HandleFunc("GET /failpoints", func(w http.ResponseWriter, _ *http.Request) {
		c.mu.Lock()
		body := struct {
			FailpointState
			Fired map[string]int64 `json:"fired"`
		}{c.state, c.fired}
		b, err := json.Marshal(body)
		c.mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	})
	mux.HandleFunc("PUT /failpoints", func(w http.ResponseWriter, r *http.Request) {
		var st FailpointState
		dec := json.NewDecoder(io.LimitReader(r.Body, 1<<16))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&st); err != nil {
			http.Error(w, "failpoints: "+err.Error(), http.StatusBadRequest)
			return
		}
		for _, rule := range []*FailpointRule{st.Log, st.Stable, st.Snapshot} {
			if err := rule.validate(); err != nil {
				http.Error(w, "failpoints: "+err.Error(), http.StatusBadRequest)
				return
			}
		}
		c.mu.Lock()
		c.state = st
		c.mu.Unlock()
		c.offset.Store(st.ClockOffsetMs * int64(time.Millisecond))
		log.Warn("failpoints armed", "state", fmt.Sprintf("%+v", st))
		w.WriteHeader(http.StatusNoContent)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	// The endpoint lives as long as the process: it is a test-only build.
	go func() { _ = srv.Serve(ln) }()
}

// hit applies the rule of store (log, stable or snapshot) to one call.
func (c *failpointControl) hit(store, op string) error {
	c.mu.Lock()
	var rule *FailpointRule
	switch store {
	case "log":
		rule = c.state.Log
	case "stable":
		rule = c.state.Stable
	case "snapshot":
		rule = c.state.Snapshot
	}
	if rule == nil || rule.Mode == "" || (rule.Prob > 0 && rand.Float64() >= rule.Prob) {
		c.mu.Unlock()
		return nil
	}
	r := *rule
	c.fired[store]++
	c.mu.Unlock()
	switch r.Mode {
	case "slow":
		time.Sleep(time.Duration(r.DelayMs) * time.Millisecond)
		return nil
	case "panic":
		panic(fmt.Sprintf("failpoint: injected panic in %s store %s", store, op))
	}
	return fmt.Errorf("%s store %s: %w", store, op, ErrFailpoint)
}

type fpLogStore struct {
	c *failpointControl
	s raft.LogStore
}

func (f *fpLogStore) FirstIndex() (uint64, error) {
	if err := f.c.hit("log", "FirstIndex"); err != nil {
		return 0, err
	}
	return f.s.FirstIndex()
}

func (f *fpLogStore) LastIndex() (uint64, error) {
	if err := f.c.hit("log", "LastIndex"); err != nil {
		return 0, err
	}
	return f.s.LastIndex()
}

func (f *fpLogStore) GetLog(index uint64, log *raft.Log) error {
	if err := f.c.hit("log", "GetLog"); err != nil {
		return err
	}
	return f.s.GetLog(index, log)
}

func (f *fpLogStore) StoreLog(log *raft.Log) error {
	if err := f.c.hit("log", "StoreLog"); err != nil {
		return err
	}
	return f.s.StoreLog(log)
}

func (f *fpLogStore) StoreLogs(logs []*raft.Log) error {
	if err := f.c.hit("log", "StoreLogs"); err != nil {
		return err
	}
	return f.s.StoreLogs(logs)
}

func (f *fpLogStore) DeleteRange(lo, hi uint64) error {
	if err := f.c.hit("log", "DeleteRange"); err != nil {
		return err
	}
	return f.s.DeleteRange(lo, hi)
}

// IsMonotonic passes the wrapped store's answer on (raft.MonotonicLogStore).
func (f *fpLogStore) IsMonotonic() bool {
	m, ok := f.s.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}

type fpStableStore struct {
	c *failpointControl
	s raft.StableStore
}

func (f *fpStableStore) Set(key, val []byte) error {
	if err := f.c.hit("stable", "Set"); err != nil {
		return err
	}
	return f.s.Set(key, val)
}

func (f *fpStableStore) Get(key []byte) ([]byte, error) {
	if err := f.c.hit("stable", "Get"); err != nil {
		return nil, err
	}
	return f.s.Get(key)
}

func (f *fpStableStore) SetUint64(key []byte, val uint64) error {
	if err := f.c.hit("stable", "SetUint64"); err != nil {
		return err
	}
	return f.s.SetUint64(key, val)
}

func (f *fpStableStore) GetUint64(key []byte) (uint64, error) {
	if err := f.c.hit("stable", "GetUint64"); err != nil {
		return 0, err
	}
	return f.s.GetUint64(key)
}

type fpSnapshotStore struct {
	c *failpointControl
	s raft.SnapshotStore
}

func (f *fpSnapshotStore) Create(version raft.SnapshotVersion, index, term uint64, configuration raft.Configuration,
	configurationIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	if err := f.c.hit("snapshot", "Create"); err != nil {
		return nil, err
	}
	sink, err := f.s.Create(version, index, term, configuration, configurationIndex, trans)
	if err != nil {
		return nil, err
	}
	return &fpSnapshotSink{c: f.c, SnapshotSink: sink}, nil
}

func (f *fpSnapshotStore) List() ([]*raft.SnapshotMeta, error) {
	if err := f.c.hit("snapshot", "List"); err != nil {
		return nil, err
	}
	return f.s.List()
}

func (f *fpSnapshotStore) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	if err := f.c.hit("snapshot", "Open"); err != nil {
		return nil, nil, err
	}
	return f.s.Open(id)
}

// fpSnapshotSink fails writes and the final Close of a snapshot being
// written; a failed Close cancels the snapshot, as a real disk error would.
type fpSnapshotSink struct {
	c *failpointControl
	raft.SnapshotSink
}

func (s *fpSnapshotSink) Write(p []byte) (int, error) {
	if err := s.c.hit("snapshot", "Write"); err != nil {
		return 0, err
	}
	return s.SnapshotSink.Write(p)
}

func (s *fpSnapshotSink) Close() error {
	if err := s.c.hit("snapshot", "Close"); err != nil {
		_ = s.Cancel()
		return err
	}
	return s.SnapshotSink.Close()
}
