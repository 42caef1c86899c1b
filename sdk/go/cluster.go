package concord

import (
	"context"

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
		out[i] = Member{
			ID: m.GetId(), RaftAddress: m.GetRaftAddress(), APIAddress: m.GetApiAddress(),
			Voter: m.GetSuffrage() != concordv1.Suffrage_SUFFRAGE_NONVOTER, Leader: m.GetLeader(),
		}
	}
	return out
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
