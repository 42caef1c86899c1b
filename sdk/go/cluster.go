package concord

import (
	"context"
	"time"

	"connectrpc.com/connect"
	concordv1 "github.com/concord-kv/concord/proto/gen/go/concord/v1"
)

// Member is one replica of the Raft configuration.
type Member struct {
	ID          string
	RaftAddress string
	// APIAddress is the replica's base URL (empty until it has registered).
	APIAddress string
	Voter      bool
	Leader     bool
	// State is how the answering replica sees the member: "leader",
	// "follower" or "unknown" (the answering replica is a follower, or it
	// leads and cannot reach the member).
	State string
	// LastContact is how long ago the answering replica last heard from the
	// member over Raft (0 for itself); negative when it does not know. The
	// leader knows it for every member, a follower only for the leader.
	LastContact time.Duration
	// Unreachable is how long the leader has been failing to reach the
	// member; 0 while it is reachable, and in a follower's answer.
	Unreachable time.Duration
}

// Status describes the answering replica and the cluster as it sees it.
type Status struct {
	NodeID       string
	State        string // leader, follower, candidate
	Term         uint64
	CommitIndex  uint64
	AppliedIndex uint64
	LeaderID     string
	LeaderAPI    string
	Members      []Member
	// Keys stored and their approximate memory.
	Size        uint64
	MemoryBytes uint64
}

func toMembers(ms []*concordv1.Member) []Member {
	out := make([]Member, len(ms))
	for i, m := range ms {
		out[i] = toMember(m)
	}
	return out
}

func toMember(m *concordv1.Member) Member {
	out := Member{
		ID: m.GetId(), RaftAddress: m.GetRaftAddress(), APIAddress: m.GetApiAddress(),
		Voter: m.GetSuffrage() != concordv1.Suffrage_SUFFRAGE_NONVOTER, Leader: m.GetLeader(),
		State: memberStates[m.GetState()], LastContact: -1,
		Unreachable: time.Duration(m.GetUnreachableMs()) * time.Millisecond,
	}
	if out.State == "" {
		out.State = "unknown"
	}
	if m.LastContactMs != nil {
		out.LastContact = time.Duration(m.GetLastContactMs()) * time.Millisecond
	}
	return out
}

var memberStates = map[concordv1.MemberState]string{
	concordv1.MemberState_MEMBER_STATE_LEADER:   "leader",
	concordv1.MemberState_MEMBER_STATE_FOLLOWER: "follower",
	concordv1.MemberState_MEMBER_STATE_UNKNOWN:  "unknown",
}

// Status asks the leader (or, failing that, any replica) for its status.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var out *Status
	err := c.do(ctx, "status", readCall, true, func(ctx context.Context, e *endpoint) error {
		resp, err := e.cluster.Status(ctx, connect.NewRequest(&concordv1.StatusRequest{}))
		if err != nil {
			return err
		}
		m := resp.Msg
		out = &Status{
			NodeID: m.GetNodeId(), State: m.GetState(), Term: m.GetTerm(), CommitIndex: m.GetCommitIndex(),
			AppliedIndex: m.GetAppliedIndex(), LeaderID: m.GetLeaderId(), LeaderAPI: m.GetLeaderApiAddress(),
			Members: toMembers(m.GetMembers()), Size: m.GetStorage().GetSize(), MemoryBytes: m.GetStorage().GetMemoryBytes(),
		}
		return nil
	})
	return out, err
}

// Members lists the Raft configuration.
func (c *Client) Members(ctx context.Context) ([]Member, error) {
	var out []Member
	err := c.do(ctx, "members", readCall, true, func(ctx context.Context, e *endpoint) error {
		resp, err := e.cluster.Members(ctx, connect.NewRequest(&concordv1.MembersRequest{}))
		if err == nil {
			out = toMembers(resp.Msg.GetMembers())
		}
		return err
	})
	return out, err
}

// NewMember describes a replica to add to the cluster.
type NewMember struct {
	// ID is the replica's node id.
	ID string
	// RaftAddress is the host:port other replicas dial for Raft.
	RaftAddress string
	// APIAddress is the replica's base URL (optional: a replica registers its
	// own once it is a member).
	APIAddress string
	// Nonvoter adds a member that receives the log and serves eventual reads
	// but does not vote or count toward the quorum.
	Nonvoter bool
}

// AddMember adds a replica to the cluster, or promotes a non-voter to voter,
// and returns the member as it now is. A voter is added as a non-voter first
// and promoted once it has caught up, so AddMember returns only when the new
// replica is running and has the log: start it first (with an empty data
// directory and without bootstrapping). Adding a member that is already
// there with the same address and suffrage succeeds, so AddMember is retried
// like a read.
func (c *Client) AddMember(ctx context.Context, m NewMember) (*Member, error) {
	if m.ID == "" || m.RaftAddress == "" {
		return nil, invalid("AddMember: ID and RaftAddress are required")
	}
	req := &concordv1.AddMemberRequest{Id: m.ID, RaftAddress: m.RaftAddress, ApiAddress: m.APIAddress, Nonvoter: m.Nonvoter}
	var out *Member
	err := c.do(ctx, "add_member", readCall, true, func(ctx context.Context, e *endpoint) error {
		resp, err := e.cluster.AddMember(ctx, connect.NewRequest(req))
		if err == nil {
			mm := toMember(resp.Msg.GetMember())
			out = &mm
		}
		return err
	})
	return out, err
}

// RemoveOption configures RemoveMember.
type RemoveOption func(*concordv1.RemoveMemberRequest)

// IfUnreachableFor removes the member only if the leader has been failing to
// reach it for at least d (whole seconds); otherwise RemoveMember fails with
// ErrConflict. It is the safe way to remove a dead member: the leader checks
// at the moment of the change.
func IfUnreachableFor(d time.Duration) RemoveOption {
	return func(r *concordv1.RemoveMemberRequest) { r.IfUnreachableForSeconds = int64(d / time.Second) }
}

// RemoveMember removes a replica from the cluster. It fails with ErrNotFound
// if id is not a member. Removing the leader makes it step down.
func (c *Client) RemoveMember(ctx context.Context, id string, opts ...RemoveOption) error {
	if id == "" {
		return invalid("RemoveMember: id is required")
	}
	req := &concordv1.RemoveMemberRequest{Id: id}
	for _, o := range opts {
		if o == nil {
			return invalid("RemoveMember: nil option")
		}
		o(req)
	}
	if req.IfUnreachableForSeconds < 0 {
		return invalid("RemoveMember: negative IfUnreachableFor")
	}
	return c.do(ctx, "remove_member", writeCall, true, func(ctx context.Context, e *endpoint) error {
		_, err := e.cluster.RemoveMember(ctx, connect.NewRequest(req))
		return err
	})
}

// TransferLeadership hands leadership to the voter id, or to the most
// up-to-date voter when id is empty, and returns the new leader's id once the
// old leader has stepped down ("" if the election has not finished then).
func (c *Client) TransferLeadership(ctx context.Context, id string) (string, error) {
	var leader string
	err := c.do(ctx, "transfer_leadership", writeCall, true, func(ctx context.Context, e *endpoint) error {
		resp, err := e.cluster.TransferLeadership(ctx, connect.NewRequest(&concordv1.TransferLeadershipRequest{Id: id}))
		if err == nil {
			leader = resp.Msg.GetLeaderId()
		}
		return err
	})
	if err == nil {
		// The leader changed: route the next calls after a fresh look.
		_ = c.refresh(ctx, true)
	}
	return leader, err
}
