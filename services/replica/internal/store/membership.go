package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"connectrpc.com/connect"
	raftv1 "github.com/concord-kv/concord/proto/gen/go/concord/raft/v1"
	concordv1 "github.com/concord-kv/concord/proto/gen/go/concord/v1"
	"github.com/concord-kv/concord/proto/gen/go/concord/v1/concordv1connect"
	"github.com/hashicorp/raft"
)

// configChangeTimeout bounds how long raft may take to accept a
// configuration change into its queue (not how long the change takes).
const configChangeTimeout = 5 * time.Second

// catchUpPoll is how often AddMember asks a new member how far it has got.
const catchUpPoll = 100 * time.Millisecond

// stallNudge is how long a new member's applied index may stand still
// before AddMember commits a Noop to move it on.
const stallNudge = 2 * time.Second

// contactTransport is raft's NetworkTransport recording, per peer, when this
// node's last Raft call to it succeeded and when one last failed. A leader
// calls every follower at least every HeartbeatTimeout/10 (heartbeats go
// through AppendEntries, never through the pipeline), so on the leader these
// are each member's last contact, which hashicorp/raft v1.7.3 does not
// expose.
//
// It also hands raft its incoming RPCs through a commitClamp (Consumer),
// heartbeats included (SetHeartbeatHandler), and stops that on Close. Every
// other method, including the optional
// WithPreVote one raft looks for, is the embedded transport's.
type contactTransport struct {
	*raft.NetworkTransport
	clamp *commitClamp // bounds followers' commit index (overcommit.go)

	mu    sync.Mutex
	peers map[raft.ServerID]*contact
}

// contact is what one peer's Raft calls told us. Times are wall-clock
// (time.Now), never the store's injectable clock.
type contact struct {
	ok     time.Time // last successful call
	failed time.Time // last failed call
}

func newContactTransport(t *raft.NetworkTransport) *contactTransport {
	return &contactTransport{NetworkTransport: t, clamp: newCommitClamp(t.Consumer()), peers: map[raft.ServerID]*contact{}}
}

// Consumer hands raft the incoming RPCs with AppendEntries commit indexes
// clamped (overcommit.go).
func (t *contactTransport) Consumer() <-chan raft.RPC { return t.clamp.out }

// SetHeartbeatHandler turns raft's heartbeat fast path off: heartbeats reach
// raft through Consumer, on its main goroutine, like every other RPC. On the
// fast path, a heartbeat from a newer leader changes the term and the state
// on the transport's goroutine while a deposed leader's main goroutine may
// still be giving new entries a term, and it gives them the newer one
// (hashicorp/raft#695, bug B9 in tests/chaos/README.md): the deposed
// leader's log then matches the new leader's by index and term but not by
// content, and it applies entries nobody committed.
func (t *contactTransport) SetHeartbeatHandler(func(raft.RPC)) {}

// Close closes the network transport and stops the clamp.
func (t *contactTransport) Close() error {
	t.clamp.stop()
	return t.NetworkTransport.Close()
}

func (t *contactTransport) record(id raft.ServerID, err error) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.peers[id]
	if c == nil {
		c = &contact{}
		t.peers[id] = c
	}
	if err == nil {
		c.ok = now
	} else {
		c.failed = now
	}
}

// contact returns what is known about id (zero times when nothing).
func (t *contactTransport) contact(id raft.ServerID) contact {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c := t.peers[id]; c != nil {
		return *c
	}
	return contact{}
}

// forget drops what is known about id: a member added again under an old id
// is a new replica.
func (t *contactTransport) forget(id raft.ServerID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.peers, id)
}

func (t *contactTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	err := t.NetworkTransport.AppendEntries(id, target, args, resp)
	t.record(id, err)
	return err
}

func (t *contactTransport) RequestVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	err := t.NetworkTransport.RequestVote(id, target, args, resp)
	t.record(id, err)
	return err
}

func (t *contactTransport) RequestPreVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	err := t.NetworkTransport.RequestPreVote(id, target, args, resp)
	t.record(id, err)
	return err
}

func (t *contactTransport) InstallSnapshot(id raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	err := t.NetworkTransport.InstallSnapshot(id, target, args, resp, data)
	t.record(id, err)
	return err
}

func (t *contactTransport) TimeoutNow(id raft.ServerID, target raft.ServerAddress, args *raft.TimeoutNowRequest, resp *raft.TimeoutNowResponse) error {
	err := t.NetworkTransport.TimeoutNow(id, target, args, resp)
	t.record(id, err)
	return err
}

var (
	_ raft.WithClose   = (*contactTransport)(nil)
	_ raft.WithPreVote = (*contactTransport)(nil)
)

// MemberState is how this node sees a member.
type MemberState int

// The member states.
const (
	// StateUnknown: this node is a follower (it hears only from the leader),
	// or it leads and has not reached the member yet or its last call failed.
	StateUnknown MemberState = iota
	// StateLeader: the member leads.
	StateLeader
	// StateFollower: the member is this node, or this node leads and its
	// last Raft call to the member succeeded.
	StateFollower
)

func (m MemberState) String() string {
	switch m {
	case StateLeader:
		return "leader"
	case StateFollower:
		return "follower"
	}
	return "unknown"
}

// MemberView is one member of the Raft configuration as this node sees it.
type MemberView struct {
	raft.Server
	// APIAddress is the member's registered API base URL ("" if none yet).
	APIAddress string
	Leader     bool
	State      MemberState
	// LastContact is how long ago this node last heard from the member over
	// Raft: 0 for itself; negative when it does not know (a follower knows
	// only about the leader).
	LastContact time.Duration
	// Unreachable is how long the leader (this node) has been failing to
	// reach the member, counted from the last contact or, if it never
	// reached it, from when it became leader. 0 while reachable and when this
	// node is not the leader.
	Unreachable time.Duration
}

// configuration returns raft's latest configuration and its index.
func (s *Store) configuration() (raft.Configuration, uint64, error) {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return raft.Configuration{}, 0, fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return f.Configuration(), f.Index(), nil
}

// memberViews describes servers as this node sees them at now.
func (s *Store) memberViews(servers []raft.Server, now time.Time) []MemberView {
	api := s.fsm.Members()
	state := s.raft.State()
	_, leaderID := s.raft.LeaderWithID()
	leadSince := time.Unix(0, s.leadSince.Load())
	out := make([]MemberView, 0, len(servers))
	for _, srv := range servers {
		v := MemberView{Server: srv, APIAddress: api[string(srv.ID)], Leader: srv.ID == leaderID, LastContact: -1}
		switch {
		case srv.ID == raft.ServerID(s.cfg.NodeID):
			v.LastContact = 0
			switch state {
			case raft.Leader:
				v.State = StateLeader
			case raft.Follower:
				v.State = StateFollower
			default:
				v.State = StateUnknown
			}
		case state == raft.Leader:
			c := s.trans.contact(srv.ID)
			if !c.ok.IsZero() {
				v.LastContact = now.Sub(c.ok)
			}
			switch {
			case !c.ok.IsZero() && !c.failed.After(c.ok):
				v.State = StateFollower
			case !c.failed.IsZero():
				since := c.ok
				if leadSince.After(since) {
					since = leadSince
				}
				v.Unreachable = max(now.Sub(since), 0)
			}
		case srv.ID == leaderID:
			v.State = StateLeader
			if lc := s.raft.LastContact(); !lc.IsZero() {
				v.LastContact = max(now.Sub(lc), 0)
			}
		}
		out = append(out, v)
	}
	return out
}

// waitFuture waits for a raft future or ctx.
func waitFuture(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrOutcomeUnknown, ctx.Err())
	}
}

// configChangeError classifies the error of a configuration change future,
// like ApplyLocal does for commands.
func configChangeError(err error, f raft.IndexFuture) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrOutcomeUnknown):
		return err
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return ErrNotLeader
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%w: %w", ErrNoLeader, err)
	case errors.Is(err, raft.ErrRaftShutdown) && f.Index() == 0:
		return ErrClosed
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
	}
	// The configuration raft would have produced is invalid (a duplicate
	// address, no voter left): nothing changed.
	return fmt.Errorf("%w: %w", ErrConflict, err)
}

func (s *Store) changeConfig(ctx context.Context, f raft.IndexFuture) (uint64, error) {
	if err := configChangeError(waitFuture(ctx, f), f); err != nil {
		return 0, err
	}
	return f.Index(), nil
}

func findServer(cfg raft.Configuration, id string) *raft.Server {
	for i := range cfg.Servers {
		if cfg.Servers[i].ID == raft.ServerID(id) {
			return &cfg.Servers[i]
		}
	}
	return nil
}

// NewMember is a replica to add.
type NewMember struct {
	ID          string
	RaftAddress string
	// APIAddress is the replica's API base URL; optional (a member registers
	// its own), but a voter is promoted only once it is known.
	APIAddress string
	Nonvoter   bool
}

// AddMember adds a replica to the configuration, or promotes a non-voter,
// and returns the member and the index of the last configuration change it
// made (0 if none was needed). It runs on the leader only (ErrNotLeader
// elsewhere).
//
// A voter is first added as a non-voter and promoted only once its FSM has
// applied everything the leader had applied when it was added: adding a
// replica that is down or far behind then never costs the quorum, and the
// cluster keeps committing while the new replica catches up. If ctx ends
// before that, the replica stays a non-voter and the error is ErrTimeout;
// calling AddMember again resumes. Adding a member that is already there with
// the same address and suffrage changes nothing.
func (s *Store) AddMember(ctx context.Context, m NewMember) (MemberView, uint64, error) {
	if s.raft.State() != raft.Leader {
		return MemberView{}, 0, ErrNotLeader
	}
	if m.ID == "" || m.RaftAddress == "" {
		return MemberView{}, 0, fmt.Errorf("%w: member id and raft address are required", ErrInvalidArgument)
	}
	cfg, _, err := s.configuration()
	if err != nil {
		return MemberView{}, 0, err
	}
	for _, srv := range cfg.Servers {
		if string(srv.Address) == m.RaftAddress && string(srv.ID) != m.ID {
			return MemberView{}, 0, fmt.Errorf("%w: raft address %s belongs to member %s: remove it first", ErrConflict, m.RaftAddress, srv.ID)
		}
	}
	id, addr := raft.ServerID(m.ID), raft.ServerAddress(m.RaftAddress)
	existing := findServer(cfg, m.ID)
	var index uint64
	switch {
	case existing != nil && existing.Address != addr:
		return MemberView{}, 0, fmt.Errorf("%w: member %s has raft address %s, not %s: remove it first to replace it", ErrConflict, m.ID, existing.Address, m.RaftAddress)
	case existing != nil && existing.Suffrage == raft.Voter && m.Nonvoter:
		return MemberView{}, 0, fmt.Errorf("%w: member %s is a voter: remove it and add it again to make it a non-voter", ErrConflict, m.ID)
	case existing == nil:
		s.trans.forget(id)
		if index, err = s.changeConfig(ctx, s.raft.AddNonvoter(id, addr, 0, configChangeTimeout)); err != nil {
			return MemberView{}, 0, err
		}
		s.log.Info("member added as non-voter", "member", m.ID, "raft", m.RaftAddress, "index", index)
	}
	if m.APIAddress != "" && s.fsm.Members()[m.ID] != m.APIAddress {
		if _, err := s.ApplyLocal(ctx, &raftv1.Command{Op: &raftv1.Command_SetMember{SetMember: &raftv1.SetMember{Id: m.ID, ApiAddress: m.APIAddress}}}); err != nil {
			return MemberView{}, index, err
		}
	}
	if !m.Nonvoter && (existing == nil || existing.Suffrage != raft.Voter) {
		if err := s.waitCaughtUp(ctx, m, max(index, s.fsm.Applied())); err != nil {
			return MemberView{}, index, err
		}
		if index, err = s.changeConfig(ctx, s.raft.AddVoter(id, addr, 0, configChangeTimeout)); err != nil {
			return MemberView{}, 0, err
		}
		s.log.Info("member promoted to voter", "member", m.ID, "index", index)
	}
	cfg, _, err = s.configuration()
	if err != nil {
		return MemberView{}, index, err
	}
	srv := findServer(cfg, m.ID)
	if srv == nil {
		// Removed again while we were adding it.
		return MemberView{}, index, fmt.Errorf("%w: member %s was removed while being added", ErrConflict, m.ID)
	}
	return s.memberViews([]raft.Server{*srv}, time.Now())[0], index, nil
}

// waitCaughtUp waits until the member's FSM has applied target, asking it
// through its API (the address given, or the one it registers). It gives up
// a little before ctx's deadline, so that the caller learns why.
func (s *Store) waitCaughtUp(ctx context.Context, m NewMember, target uint64) error {
	if dl, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-min(time.Until(dl)/10, time.Second)))
		defer cancel()
	}
	var (
		applied  uint64
		lastErr  error
		api      string
		lastLog  = time.Now()
		progress = func() string {
			switch {
			case api == "":
				return "it has not registered its API address"
			case lastErr != nil:
				return fmt.Sprintf("its API does not answer: %v", lastErr)
			}
			return fmt.Sprintf("it has applied %d of %d", applied, target)
		}
	)
	stalled := time.Now() // since when applied has not moved
	for {
		if s.raft.State() != raft.Leader {
			return ErrNotLeader
		}
		api = m.APIAddress
		if api == "" {
			api = s.fsm.Members()[m.ID]
		}
		if api != "" {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			resp, err := concordv1connect.NewClusterServiceClient(s.cfg.HTTPClient, api).Status(cctx, connect.NewRequest(&concordv1.StatusRequest{}))
			cancel()
			lastErr = err
			if err == nil {
				if a := resp.Msg.GetAppliedIndex(); a != applied {
					applied, stalled = a, time.Now()
				}
				if applied >= target {
					return nil
				}
			}
		}
		// A follower applies entries when it learns a higher commit index.
		// hashicorp/raft lets a late InstallSnapshot roll a follower back to
		// the snapshot (the replication goroutine of a removed member with
		// the same id and address can still send one after the member was
		// added again), and then it re-applies the rest only at the next
		// commit. Without writes that never comes: commit a Noop.
		if time.Since(stalled) >= stallNudge {
			stalled = time.Now()
			nctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, _ = s.ApplyLocal(nctx, &raftv1.Command{Op: &raftv1.Command_Noop{Noop: &raftv1.Noop{}}})
			cancel()
		}
		if time.Since(lastLog) >= 5*time.Second {
			lastLog = time.Now()
			s.log.Info("waiting for a new member to catch up", "member", m.ID, "progress", progress())
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %s is a non-voter and not caught up yet (%s); add it again to promote it", ErrTimeout, m.ID, progress())
		case <-s.stop:
			return ErrClosed
		case <-time.After(catchUpPoll):
		}
	}
}

// RemoveMember removes a member from the configuration and returns the index
// of the change. It runs on the leader only (ErrNotLeader elsewhere). With
// ifUnreachableFor > 0 it removes the member only if this leader has been
// failing to reach it for at least that long (else ErrConflict). Removing
// the leader itself makes it step down once the change is committed.
func (s *Store) RemoveMember(ctx context.Context, id string, ifUnreachableFor time.Duration) (uint64, error) {
	if s.raft.State() != raft.Leader {
		return 0, ErrNotLeader
	}
	cfg, _, err := s.configuration()
	if err != nil {
		return 0, err
	}
	srv := findServer(cfg, id)
	if srv == nil {
		return 0, fmt.Errorf("%w: %s", ErrNotMember, id)
	}
	if srv.Suffrage == raft.Voter && !slices.ContainsFunc(cfg.Servers, func(o raft.Server) bool {
		return o.ID != srv.ID && o.Suffrage == raft.Voter
	}) {
		return 0, fmt.Errorf("%w: %s is the only voter", ErrConflict, id)
	}
	if ifUnreachableFor > 0 {
		v := s.memberViews([]raft.Server{*srv}, time.Now())[0]
		if v.Unreachable < ifUnreachableFor {
			return 0, fmt.Errorf("%w: member %s is not unreachable for %v (state %s, unreachable for %v)",
				ErrConflict, id, ifUnreachableFor, v.State, v.Unreachable.Round(time.Millisecond))
		}
	}
	index, err := s.changeConfig(ctx, s.raft.RemoveServer(srv.ID, 0, configChangeTimeout))
	if err != nil {
		return 0, err
	}
	s.log.Info("member removed", "member", id, "index", index)
	return index, nil
}

// TransferLeadership hands leadership to the voter id, or to the most
// up-to-date voter when id is empty. It runs on the leader only (ErrNotLeader
// elsewhere) and returns once this node has stepped down, with the leader it
// knows by then ("" if the election has not finished when ctx ends).
func (s *Store) TransferLeadership(ctx context.Context, id string) (string, error) {
	if s.raft.State() != raft.Leader {
		return "", ErrNotLeader
	}
	if id == s.cfg.NodeID {
		return id, nil
	}
	var f raft.Future
	if id == "" {
		f = s.raft.LeadershipTransfer()
	} else {
		cfg, _, err := s.configuration()
		if err != nil {
			return "", err
		}
		srv := findServer(cfg, id)
		switch {
		case srv == nil:
			return "", fmt.Errorf("%w: %s", ErrNotMember, id)
		case srv.Suffrage != raft.Voter:
			return "", fmt.Errorf("%w: %s is not a voter", ErrConflict, id)
		}
		f = s.raft.LeadershipTransferToServer(srv.ID, srv.Address)
	}
	switch err := waitFuture(ctx, f); {
	case err == nil:
	case errors.Is(err, ErrOutcomeUnknown):
		return "", err
	case errors.Is(err, raft.ErrNotLeader):
		return "", ErrNotLeader
	case errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return "", fmt.Errorf("%w: a leadership transfer is already in progress", ErrConflict)
	default:
		// A timeout: the target may still win the election it was told to
		// start.
		return "", fmt.Errorf("%w: leadership transfer: %w", ErrOutcomeUnknown, err)
	}
	s.log.Info("leadership transferred", "to", id)
	for {
		if lid, _ := s.Leader(); lid != "" && lid != s.cfg.NodeID {
			return lid, nil
		}
		select {
		case <-ctx.Done():
			return "", nil
		case <-s.stop:
			return "", nil
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// pruneMembers forgets the API addresses of replicas that are no longer in
// the configuration, so clients stop learning them. Leader only.
func (s *Store) pruneMembers(ctx context.Context) {
	api := s.fsm.Members()
	if len(api) == 0 {
		return
	}
	cfg, _, err := s.configuration()
	if err != nil {
		return
	}
	for id := range api {
		if findServer(cfg, id) != nil {
			continue
		}
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := s.ApplyLocal(actx, &raftv1.Command{Op: &raftv1.Command_SetMember{SetMember: &raftv1.SetMember{Id: id}}})
		cancel()
		if err != nil {
			return
		}
		s.log.Info("forgot the API address of a removed member", "member", id)
	}
}

// IsMember reports whether this node is in its latest configuration.
func (s *Store) IsMember() bool {
	cfg, _, err := s.configuration()
	return err == nil && findServer(cfg, s.cfg.NodeID) != nil
}

// Suffrage reports this node's suffrage in its latest configuration (ok
// false when it is not in it).
func (s *Store) Suffrage() (suffrage raft.ServerSuffrage, ok bool) {
	cfg, _, err := s.configuration()
	if err != nil {
		return 0, false
	}
	if srv := findServer(cfg, s.cfg.NodeID); srv != nil {
		return srv.Suffrage, true
	}
	return 0, false
}
