// Package store is the replica's Raft-backed key-value store: the FSM, its
// snapshots, the write path (local apply or one-hop forwarding to the leader)
// and the three read levels. DESIGN.md beside this file explains the choices.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	raftv1 "github.com/concord-kv/concord/proto/gen/go/concord/raft/v1"
	"github.com/concord-kv/concord/proto/gen/go/concord/raft/v1/raftv1connect"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
)

// Peer is a member of the initial Raft configuration.
type Peer struct {
	ID      string
	Address string // raft host:port
}

// Config configures a Store.
type Config struct {
	NodeID  string
	DataDir string
	// RaftListener carries the Raft TCP transport. Required.
	RaftListener net.Listener
	// RaftAdvertise is the raft address peers dial; defaults to the listener's.
	RaftAdvertise string
	// APIAddress is the base URL of this replica's Connect API
	// (http://host:port), recorded in the FSM so followers can forward to it.
	APIAddress string
	// Bootstrap with Peers (this node included) when there is no state yet.
	Bootstrap bool
	Peers     []Peer
	// HTTPClient carries forwarded writes and read-index requests.
	HTTPClient connect.HTTPClient
	// Now is the clock (injectable for tests); defaults to time.Now.
	Now    func() time.Time
	Logger *slog.Logger
	// RaftLogOutput receives hashicorp/raft's own log lines (default stderr).
	RaftLogOutput io.Writer
	RaftLogLevel  string
	// LogStore is LogStoreAuto ("" too: the kind the data directory holds,
	// LogStoreWAL in a new one), LogStoreWAL or LogStoreBolt.
	LogStore string

	SnapshotThreshold  uint64
	SnapshotInterval   time.Duration
	TrailingLogs       uint64
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	// ReapInterval is how often the leader looks for expired keys and
	// proposes their removal (default 100 ms). Reads see a key go when that
	// Expire command, or any other command stamped past its expiry, is
	// applied (AtLogTime), so on an idle cluster this bounds how long an
	// expired key stays visible.
	ReapInterval time.Duration
}

func (c *Config) setDefaults() {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.HTTPClient == nil {
		c.HTTPClient = http.DefaultClient
	}
	if c.RaftLogOutput == nil {
		c.RaftLogOutput = os.Stderr
	}
	if c.RaftLogLevel == "" {
		c.RaftLogLevel = "warn"
	}
	if c.ReapInterval == 0 {
		c.ReapInterval = 100 * time.Millisecond
	}
}

// Store is one replica's view of the cluster: raft plus the FSM.
type Store struct {
	cfg    Config
	fsm    *FSM
	raft   *raft.Raft
	disk   logStore // the Raft log and stable store
	layer  *streamLayer
	trans  *contactTransport
	verify *verifier
	log    *slog.Logger

	// readyTerm is the term whose first entry this node, as leader, has
	// applied; strong reads are served only while it equals the current term.
	readyTerm atomic.Uint64
	// leadSince is when this node became leader (unix nanoseconds, wall
	// clock); unreachable members are counted unreachable from then at most.
	leadSince atomic.Int64
	// hadState: the data directory held Raft state when the store opened.
	hadState bool

	clientsMu sync.Mutex
	clients   map[string]raftv1connect.InternalServiceClient

	stop chan struct{}
	done chan struct{}
}

// logCacheEntries is how many of the newest log entries stay in memory.
const logCacheEntries = 64

// Open starts raft on the data directory, bootstrapping if asked and empty.
func Open(cfg Config) (*Store, error) {
	cfg.setDefaults()
	if cfg.NodeID == "" || cfg.DataDir == "" || cfg.RaftListener == nil {
		return nil, errors.New("store: NodeID, DataDir and RaftListener are required")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	hl := hclog.New(&hclog.LoggerOptions{
		Name:   "raft." + cfg.NodeID,
		Level:  hclog.LevelFromString(cfg.RaftLogLevel),
		Output: cfg.RaftLogOutput,
	})
	var adv net.Addr // nil: the listener's address
	if cfg.RaftAdvertise != "" {
		a, err := net.ResolveTCPAddr("tcp", cfg.RaftAdvertise)
		if err != nil {
			return nil, fmt.Errorf("raft advertise address: %w", err)
		}
		adv = a
	}
	kind, err := resolveLogStore(cfg.DataDir, cfg.LogStore)
	if err != nil {
		return nil, fmt.Errorf("open raft log: %w", err)
	}
	created := logStoreCreates(cfg.DataDir, kind)
	disk, err := openLogStore(cfg.DataDir, kind)
	if err != nil {
		return nil, fmt.Errorf("open raft log: %w", err)
	}
	// abandon undoes the opening when a later step fails: a log store this
	// call created goes, so the next start may choose either kind.
	abandon := func() {
		_ = disk.Close()
		if created != "" {
			_ = os.RemoveAll(created)
		}
	}
	// The cache serves the newest entries to followers without reading
	// the log store. An entry can be large (a batch of up to 500 values), so it is
	// kept small: 1024 entries of bulk puts pinned ~60 MB, 256 ~16 MB. With
	// SDK clients (which coalesce writes into batch RPCs) the leader stores
	// a few entries at a time and a follower that keeps up reads only those;
	// a group larger than the cache (up to MaxAppendEntries, from many
	// independent writers) or a lagging follower reads the rest from disk:
	// slower, never wrong.
	logs, err := raft.NewLogCache(logCacheEntries, disk)
	if err != nil {
		abandon()
		return nil, err
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, 2, hl)
	if err != nil {
		abandon()
		return nil, fmt.Errorf("open snapshot store: %w", err)
	}
	// Fault injection, only in a build with -tags failpoints (failpoint.go).
	baseLog, stable, snapStore := failpoints(&cfg, logs, disk, snaps)
	// Raft's own appends are fatal when they fail (exitOnWriteError); a
	// failed bootstrap just returns its error.
	logStore := exitOnWriteError{baseLog}
	layer := newStreamLayer(cfg.RaftListener, adv)
	trans := newContactTransport(raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: layer, MaxPool: 4, Timeout: 10 * time.Second, Logger: hl,
	}))

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.Logger = hl
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = 512
	// The leader sends new entries to its followers while it writes them
	// itself, as etcd does; an entry still commits only once the leader's
	// own log holds it (third_party/hashicorp/raft/CONCORD.md).
	rc.LeaderParallelWrites = true
	rc.NoSnapshotRestoreOnStart = false
	// A removed replica stays up as a follower outside the configuration
	// (it cannot start elections there) instead of shutting raft down under
	// its API; adding it again needs no restart.
	rc.ShutdownOnRemove = false
	if cfg.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = cfg.SnapshotThreshold
	}
	if cfg.SnapshotInterval > 0 {
		rc.SnapshotInterval = cfg.SnapshotInterval
	}
	if cfg.TrailingLogs > 0 {
		rc.TrailingLogs = cfg.TrailingLogs
	}
	if cfg.HeartbeatTimeout > 0 {
		rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	}
	if cfg.ElectionTimeout > 0 {
		rc.ElectionTimeout = cfg.ElectionTimeout
	}
	if cfg.LeaderLeaseTimeout > 0 {
		rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	}

	fsm := NewFSM()
	has, err := raft.HasExistingState(logStore, stable, snapStore)
	if err != nil {
		_ = trans.Close()
		abandon()
		return nil, err
	}
	if cfg.Bootstrap {
		if !has {
			var servers []raft.Server
			for _, p := range cfg.Peers {
				servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Address)})
			}
			if len(servers) == 0 {
				servers = []raft.Server{{Suffrage: raft.Voter, ID: rc.LocalID, Address: trans.LocalAddr()}}
			}
			if err := raft.BootstrapCluster(rc, baseLog, stable, snapStore, trans, raft.Configuration{Servers: servers}); err != nil {
				_ = trans.Close()
				abandon()
				return nil, fmt.Errorf("bootstrap: %w", err)
			}
		}
	}
	r, err := raft.NewRaft(rc, fsm, logStore, stable, snapStore, trans)
	if err != nil {
		_ = trans.Close()
		abandon()
		return nil, fmt.Errorf("start raft: %w", err)
	}
	s := &Store{
		cfg: cfg, fsm: fsm, raft: r, disk: disk, layer: layer, trans: trans, hadState: has,
		log:     cfg.Logger.With("node", cfg.NodeID),
		clients: map[string]raftv1connect.InternalServiceClient{},
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	s.verify = &verifier{verify: func() error { return r.VerifyLeader().Error() }}
	go s.run()
	return s, nil
}

// Close stops raft and releases the data directory. It does not remove the
// node from the cluster.
func (s *Store) Close() error {
	select {
	case <-s.stop:
		return nil
	default:
	}
	close(s.stop)
	<-s.done
	err := s.raft.Shutdown().Error()
	if cerr := s.trans.Close(); err == nil {
		err = cerr
	}
	if cerr := s.disk.Close(); err == nil {
		err = cerr
	}
	return err
}

// HadState reports whether the data directory held Raft state when the
// store opened (a restart), as opposed to a fresh replica.
func (s *Store) HadState() bool { return s.hadState }

// ID is this node's raft server id.
func (s *Store) ID() string { return s.cfg.NodeID }

// FSM gives read access to the local state.
func (s *Store) FSM() *FSM { return s.fsm }

// Raft exposes the raft instance (status and membership).
func (s *Store) Raft() *raft.Raft { return s.raft }

// RaftAddr is the address peers use to reach this node.
func (s *Store) RaftAddr() string { return s.layer.Addr().String() }

// NowMs is the local clock in unix milliseconds.
func (s *Store) NowMs() int64 { return s.cfg.Now().UnixMilli() }

// IsLeader reports whether this node currently believes it leads.
func (s *Store) IsLeader() bool { return s.raft.State() == raft.Leader }

// SetPartitioned cuts (or restores) every raft link of this node. For tests.
func (s *Store) SetPartitioned(cut bool) { s.layer.SetBlocked(cut) }

// Leader returns the leader's id and API address ("" when unknown).
func (s *Store) Leader() (id, apiAddr string) {
	_, lid := s.raft.LeaderWithID()
	if lid == "" {
		return "", ""
	}
	return string(lid), s.fsm.Members()[string(lid)]
}

// run keeps the leader duties (first entry of the term, reaper) and the
// follower duty (register the API address) in step with raft's state.
func (s *Store) run() {
	defer close(s.done)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var (
		leadTerm   uint64
		stopLead   = func() {}
		leadDone   = make(chan struct{})
		lastReg    time.Time
		registered bool
	)
	close(leadDone)
	defer func() { stopLead(); <-leadDone }()
	for {
		select {
		case <-s.stop:
			return
		case <-s.raft.LeaderCh():
		case <-tick.C:
		}
		if s.raft.State() == raft.Leader {
			if term := s.raft.CurrentTerm(); term != leadTerm {
				stopLead()
				<-leadDone
				leadTerm = term
				s.leadSince.Store(time.Now().UnixNano())
				ctx, cancel := context.WithCancel(context.Background())
				stopLead = cancel
				leadDone = make(chan struct{})
				go func(done chan struct{}) {
					defer close(done)
					s.lead(ctx, term)
				}(leadDone)
			}
			continue
		}
		if leadTerm != 0 {
			stopLead()
			leadTerm = 0
		}
		if !registered || time.Since(lastReg) > 5*time.Second {
			if s.fsm.Members()[s.cfg.NodeID] == s.cfg.APIAddress {
				registered = true
				lastReg = time.Now()
				continue
			}
			if time.Since(lastReg) < 500*time.Millisecond {
				continue
			}
			lastReg = time.Now()
			// A replica outside the configuration (removed, or not added
			// yet) does not register: the leader would only prune it.
			if !s.IsMember() {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err := s.Apply(ctx, &raftv1.Command{Op: &raftv1.Command_SetMember{SetMember: &raftv1.SetMember{Id: s.cfg.NodeID, ApiAddress: s.cfg.APIAddress}}})
			cancel()
			registered = err == nil
		}
	}
}

// lead runs while this node leads term: it commits the term's first entry
// (which makes strong reads safe), records its API address, then reaps
// expired keys until leadership ends.
func (s *Store) lead(ctx context.Context, term uint64) {
	for ctx.Err() == nil {
		cmds := []*raftv1.Command{{Op: &raftv1.Command_Noop{Noop: &raftv1.Noop{}}}}
		if s.fsm.Members()[s.cfg.NodeID] != s.cfg.APIAddress {
			cmds = append(cmds, &raftv1.Command{Op: &raftv1.Command_SetMember{SetMember: &raftv1.SetMember{Id: s.cfg.NodeID, ApiAddress: s.cfg.APIAddress}}})
		}
		var err error
		for _, c := range cmds {
			if _, err = s.ApplyLocal(ctx, c); err != nil {
				break
			}
		}
		if err == nil {
			break
		}
		if s.raft.CurrentTerm() != term {
			return
		}
		sleep(ctx, 50*time.Millisecond)
	}
	if ctx.Err() != nil || s.raft.CurrentTerm() != term {
		return
	}
	s.readyTerm.Store(term)
	s.log.Info("leading", "term", term)

	t := time.NewTicker(s.cfg.ReapInterval)
	defer t.Stop()
	var pruned time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for {
			keys := s.fsm.Expired(s.fsm.LogNow(s.NowMs()), 500)
			if len(keys) == 0 {
				break
			}
			actx, cancel := context.WithTimeout(ctx, 5*time.Second)
			res, err := s.ApplyLocal(actx, &raftv1.Command{Op: &raftv1.Command_Expire{Expire: &raftv1.Expire{Keys: keys}}})
			cancel()
			// Nothing deleted means the stamp is before the expiries the
			// reaper saw (the clock stepped back): proposing again at once
			// would spin, so wait for the next tick.
			if err != nil || res.GetDeleted() == 0 {
				break
			}
		}
		if time.Since(pruned) >= time.Second {
			s.pruneMembers(ctx)
			pruned = time.Now()
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// Apply commits cmd, on this node if it leads or else through the leader,
// retrying while the command certainly was not applied (no leader yet, a
// leader change before it was accepted) until ctx ends.
func (s *Store) Apply(ctx context.Context, cmd *raftv1.Command) (*raftv1.Result, error) {
	backoff := 20 * time.Millisecond
	var lastErr error
	for {
		var res *raftv1.Result
		var err error
		if s.raft.State() == raft.Leader {
			res, err = s.ApplyLocal(ctx, cmd)
		} else {
			res, err = s.forwardApply(ctx, cmd)
		}
		if !retryable(err) {
			return res, err
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", ErrNoLeader, lastErr)
		case <-s.stop:
			return nil, ErrClosed
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 500*time.Millisecond)
	}
}

// retryable errors mean the command was certainly not applied.
func retryable(err error) bool {
	return errors.Is(err, ErrNotLeader) || errors.Is(err, ErrNoLeader) || errors.Is(err, ErrNotReady)
}

// ApplyLocal stamps cmd with this leader's clock and commits it. It fails
// with ErrNotLeader on a follower.
func (s *Store) ApplyLocal(ctx context.Context, cmd *raftv1.Command) (*raftv1.Result, error) {
	if s.raft.State() != raft.Leader {
		return nil, ErrNotLeader
	}
	cmd.StampUnixMs = s.NowMs()
	data, err := proto.Marshal(cmd)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	timeout := 10 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
		if timeout <= 0 {
			return nil, fmt.Errorf("%w: deadline passed before apply", ErrNoLeader)
		}
	}
	f := s.raft.Apply(data, timeout)
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrOutcomeUnknown, ctx.Err())
	}
	switch {
	case err == nil:
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		// Answered before the entry was dispatched to the log.
		return nil, ErrNotLeader
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return nil, fmt.Errorf("%w: %w", ErrNoLeader, err)
	case errors.Is(err, raft.ErrRaftShutdown) && f.Index() == 0:
		// Refused at enqueue: the entry never reached the log.
		return nil, ErrClosed
	default:
		// ErrLeadershipLost, a log store failure, or ErrRaftShutdown for an
		// entry that had an index: raft answers committed entries it could
		// not hand to the FSM before shutting down with ErrRaftShutdown. The
		// entry may have been committed, so it must not be retried.
		return nil, fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
	}
	res, _ := f.Response().(*raftv1.Result)
	if res == nil {
		return nil, fmt.Errorf("%w: no result", ErrOutcomeUnknown)
	}
	return res, ResultError(res)
}

// ResultError turns an FSM verdict into an error (nil for OK).
func ResultError(r *raftv1.Result) error {
	switch r.GetCode() {
	case raftv1.ResultCode_RESULT_CODE_OK:
		return nil
	case raftv1.ResultCode_RESULT_CODE_CONFLICT:
		return fmt.Errorf("%w: %s", ErrConflict, r.GetMessage())
	case raftv1.ResultCode_RESULT_CODE_NOT_FOUND:
		return fmt.Errorf("%w: %s", ErrNotFound, r.GetMessage())
	default:
		return fmt.Errorf("%w: %s", ErrInvalidArgument, r.GetMessage())
	}
}

func (s *Store) leaderClient() (raftv1connect.InternalServiceClient, error) {
	id, addr := s.Leader()
	if id == "" {
		return nil, ErrNoLeader
	}
	if id == s.cfg.NodeID {
		return nil, ErrNotLeader // raft still names us but we no longer lead
	}
	if addr == "" {
		return nil, fmt.Errorf("%w: leader %s has not registered its API address", ErrNoLeader, id)
	}
	s.clientsMu.Lock()
	defer s.clientsMu.Unlock()
	c, ok := s.clients[addr]
	if !ok {
		c = raftv1connect.NewInternalServiceClient(s.cfg.HTTPClient, addr)
		s.clients[addr] = c
	}
	return c, nil
}

func (s *Store) forwardApply(ctx context.Context, cmd *raftv1.Command) (*raftv1.Result, error) {
	c, err := s.leaderClient()
	if err != nil {
		return nil, err
	}
	resp, err := c.Apply(ctx, connect.NewRequest(&raftv1.ApplyRequest{Command: cmd}))
	if err != nil {
		return nil, forwardError(err, true)
	}
	res := resp.Msg.GetResult()
	return res, ResultError(res)
}

// forwardError classifies a failed call to the leader. write says whether
// the request may have changed state if it reached the leader.
//
// The cause is kept as text, not wrapped: the transport's *connect.Error
// carries a code made up on this side (a reset connection is Unavailable),
// and the server must answer with the code of our verdict instead.
func forwardError(err error, write bool) error {
	var ce *connect.Error
	if errors.As(err, &ce) && connect.IsWireError(ce) {
		switch ce.Code() {
		case connect.CodeUnavailable:
			return fmt.Errorf("%w: %s", ErrNotLeader, ce.Message())
		case connect.CodeInvalidArgument:
			return fmt.Errorf("%w: %s", ErrInvalidArgument, ce.Message())
		}
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return fmt.Errorf("%w: %s", ErrNoLeader, err.Error())
	}
	if !write {
		return fmt.Errorf("%w: %s", ErrNoLeader, err.Error())
	}
	return fmt.Errorf("%w: forwarding to leader: %s", ErrOutcomeUnknown, err.Error())
}

// ReadIndexLocal returns the index a read must wait for, as the leader:
// its applied index for leader reads, or a quorum-confirmed commit index for
// linearizable ones (ReadIndex).
//
// Both levels need the leader to have applied the first entry of its term:
// before that a new leader may not yet know (let alone have applied) writes
// the previous leader committed and acknowledged.
func (s *Store) ReadIndexLocal(ctx context.Context, linearizable bool) (uint64, error) {
	if s.raft.State() != raft.Leader {
		return 0, ErrNotLeader
	}
	term := s.raft.CurrentTerm()
	if s.readyTerm.Load() != term {
		return 0, ErrNotReady
	}
	if !linearizable {
		return s.fsm.Applied(), nil
	}
	idx := s.raft.CommitIndex()
	if err := s.verify.Verify(ctx); err != nil {
		if ctx.Err() != nil {
			return 0, fmt.Errorf("%w: %w", ErrTimeout, err)
		}
		return 0, fmt.Errorf("%w: %w", ErrNotLeader, err)
	}
	if s.raft.CurrentTerm() != term {
		return 0, ErrNotLeader
	}
	return idx, nil
}

// Consistency is a read level.
type Consistency int

// The read levels.
const (
	Eventual Consistency = iota
	Leader
	Strong
)

// ReadBarrier blocks until this replica's state is fresh enough for a read at
// level c (and has applied minRevision). After it returns, reading the local
// FSM gives the guarantee of that level.
func (s *Store) ReadBarrier(ctx context.Context, c Consistency, minRevision uint64) error {
	idx := minRevision
	if c != Eventual {
		backoff := 10 * time.Millisecond
		for {
			var ri uint64
			var err error
			if s.raft.State() == raft.Leader {
				ri, err = s.ReadIndexLocal(ctx, c == Strong)
			} else {
				ri, err = s.forwardReadIndex(ctx, c == Strong)
			}
			if err == nil {
				idx = max(idx, ri)
				break
			}
			if !retryable(err) {
				return err
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%w: %w", ErrNoLeader, err)
			case <-s.stop:
				return ErrClosed
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 250*time.Millisecond)
		}
	}
	if idx == 0 {
		return nil
	}
	return s.waitApplied(ctx, idx)
}

// nudgeAfter is how long a read waits for this replica's FSM before it asks
// the leader to commit a Noop.
const nudgeAfter = time.Second

// waitApplied waits until the FSM has applied idx. hashicorp/raft applies
// committed entries only when a follower's commit index moves, so a
// follower whose FSM fell below entries its log holds waits for the next
// commit. Upstream raft did that when it installed a snapshot older than
// the follower's state (seen when a member was removed and re-added under
// the same id, bug B10); Concord's raft no longer installs those, and this
// stays as a safety net: if the wait stalls, a Noop through the leader
// moves the commit index and raft applies the entries it holds; it changes
// no key.
func (s *Store) waitApplied(ctx context.Context, idx uint64) error {
	if s.fsm.Applied() >= idx {
		return nil // the common case: no timer, no context
	}
	for {
		wctx, cancel := context.WithTimeout(ctx, nudgeAfter)
		err := s.fsm.WaitApplied(wctx, idx)
		cancel()
		if err == nil || ctx.Err() != nil {
			if err != nil {
				return s.fsm.WaitApplied(ctx, idx) // reports the caller's deadline
			}
			return nil
		}
		s.log.Debug("read waits for the FSM; committing a noop", "want", idx, "applied", s.fsm.Applied())
		actx, acancel := context.WithTimeout(ctx, nudgeAfter)
		_, _ = s.Apply(actx, &raftv1.Command{Op: &raftv1.Command_Noop{Noop: &raftv1.Noop{}}})
		acancel()
	}
}

func (s *Store) forwardReadIndex(ctx context.Context, linearizable bool) (uint64, error) {
	c, err := s.leaderClient()
	if err != nil {
		return 0, err
	}
	resp, err := c.ReadIndex(ctx, connect.NewRequest(&raftv1.ReadIndexRequest{Linearizable: linearizable}))
	if err != nil {
		return 0, forwardError(err, false)
	}
	return resp.Msg.GetIndex(), nil
}

// Status is a snapshot of this node's raft state.
type Status struct {
	State        string
	Term         uint64
	CommitIndex  uint64
	AppliedIndex uint64
	LeaderID     string
	LeaderAPI    string
	Members      []MemberView
	Size         uint64
	MemoryBytes  uint64
}

// Status reports this node's view of the cluster.
func (s *Store) Status() (Status, error) {
	st := Status{
		State:        stateName(s.raft.State()),
		Term:         s.raft.CurrentTerm(),
		CommitIndex:  s.raft.CommitIndex(),
		AppliedIndex: s.fsm.Applied(),
	}
	st.LeaderID, st.LeaderAPI = s.Leader()
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return st, err
	}
	st.Members = s.memberViews(f.Configuration().Servers, time.Now())
	st.Size, st.MemoryBytes = s.fsm.Stats()
	return st, nil
}

func stateName(st raft.RaftState) string {
	switch st {
	case raft.Leader:
		return "leader"
	case raft.Follower:
		return "follower"
	case raft.Candidate:
		return "candidate"
	}
	return "shutdown"
}
