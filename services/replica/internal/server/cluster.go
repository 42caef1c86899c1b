package server

import (
	"context"
	"errors"
	"time"

	"connectrpc.com/connect"
	raftv1 "github.com/concord-kv/concord/proto/gen/go/concord/raft/v1"
	concordv1 "github.com/concord-kv/concord/proto/gen/go/concord/v1"
	"github.com/concord-kv/concord/proto/gen/go/concord/v1/concordv1connect"
	"github.com/concord-kv/concord/services/replica/internal/store"
	"github.com/hashicorp/raft"
)

// Cluster implements concord.v1.ClusterService.
type Cluster struct {
	Store *store.Store
	// Peers carries membership changes forwarded to the leader.
	Peers connect.HTTPClient
}

var _ concordv1connect.ClusterServiceHandler = (*Cluster)(nil)

var memberStates = map[store.MemberState]concordv1.MemberState{
	store.StateLeader:   concordv1.MemberState_MEMBER_STATE_LEADER,
	store.StateFollower: concordv1.MemberState_MEMBER_STATE_FOLLOWER,
	store.StateUnknown:  concordv1.MemberState_MEMBER_STATE_UNKNOWN,
}

func member(v store.MemberView) *concordv1.Member {
	m := &concordv1.Member{
		Id: string(v.ID), RaftAddress: string(v.Address), ApiAddress: v.APIAddress,
		Suffrage: concordv1.Suffrage_SUFFRAGE_VOTER, Leader: v.Leader, State: memberStates[v.State],
		UnreachableMs: v.Unreachable.Milliseconds(),
	}
	if v.Suffrage != raft.Voter {
		m.Suffrage = concordv1.Suffrage_SUFFRAGE_NONVOTER
	}
	if v.LastContact >= 0 {
		m.LastContactMs = new(v.LastContact.Milliseconds())
	}
	return m
}

func members(st store.Status) []*concordv1.Member {
	out := make([]*concordv1.Member, 0, len(st.Members))
	for _, v := range st.Members {
		out = append(out, member(v))
	}
	return out
}

func (h *Cluster) header(rev uint64) *concordv1.ResponseHeader {
	return &concordv1.ResponseHeader{Revision: rev, NodeId: h.Store.ID()}
}

// Status describes this node and the cluster.
func (h *Cluster) Status(_ context.Context, _ *connect.Request[concordv1.StatusRequest]) (*connect.Response[concordv1.StatusResponse], error) {
	st, err := h.Store.Status()
	if err != nil {
		return nil, toConnectError(err)
	}
	return connect.NewResponse(&concordv1.StatusResponse{
		Header: h.header(st.AppliedIndex),
		NodeId: h.Store.ID(), State: st.State, Term: st.Term, CommitIndex: st.CommitIndex,
		AppliedIndex: st.AppliedIndex, LeaderId: st.LeaderID, LeaderApiAddress: st.LeaderAPI,
		Members: members(st),
		Storage: &concordv1.StorageStats{Size: st.Size, MemoryBytes: st.MemoryBytes},
	}), nil
}

// Members lists the raft configuration.
func (h *Cluster) Members(_ context.Context, _ *connect.Request[concordv1.MembersRequest]) (*connect.Response[concordv1.MembersResponse], error) {
	st, err := h.Store.Status()
	if err != nil {
		return nil, toConnectError(err)
	}
	return connect.NewResponse(&concordv1.MembersResponse{
		Header:  h.header(st.AppliedIndex),
		Members: members(st),
	}), nil
}

// AddMember adds (or promotes) a member on the leader.
func (h *Cluster) AddMember(ctx context.Context, req *connect.Request[concordv1.AddMemberRequest]) (*connect.Response[concordv1.AddMemberResponse], error) {
	m := req.Msg
	var out *concordv1.AddMemberResponse
	err := h.onLeader(ctx, req.Header(), func(ctx context.Context) error {
		v, idx, err := h.Store.AddMember(ctx, store.NewMember{ID: m.GetId(), RaftAddress: m.GetRaftAddress(), APIAddress: m.GetApiAddress(), Nonvoter: m.GetNonvoter()})
		if err == nil {
			out = &concordv1.AddMemberResponse{Header: h.header(idx), Member: member(v)}
		}
		return err
	}, func(ctx context.Context, c concordv1connect.ClusterServiceClient) error {
		resp, err := c.AddMember(ctx, forwarded(h.Store.ID(), m))
		if err == nil {
			out = resp.Msg
		}
		return err
	})
	if err != nil {
		return nil, toConnectError(err)
	}
	return connect.NewResponse(out), nil
}

// RemoveMember removes a member on the leader.
func (h *Cluster) RemoveMember(ctx context.Context, req *connect.Request[concordv1.RemoveMemberRequest]) (*connect.Response[concordv1.RemoveMemberResponse], error) {
	m := req.Msg
	var out *concordv1.RemoveMemberResponse
	err := h.onLeader(ctx, req.Header(), func(ctx context.Context) error {
		idx, err := h.Store.RemoveMember(ctx, m.GetId(), time.Duration(m.GetIfUnreachableForSeconds())*time.Second)
		if err == nil {
			out = &concordv1.RemoveMemberResponse{Header: h.header(idx)}
		}
		return err
	}, func(ctx context.Context, c concordv1connect.ClusterServiceClient) error {
		resp, err := c.RemoveMember(ctx, forwarded(h.Store.ID(), m))
		if err == nil {
			out = resp.Msg
		}
		return err
	})
	if err != nil {
		return nil, toConnectError(err)
	}
	return connect.NewResponse(out), nil
}

// TransferLeadership hands leadership over on the leader.
func (h *Cluster) TransferLeadership(ctx context.Context, req *connect.Request[concordv1.TransferLeadershipRequest]) (*connect.Response[concordv1.TransferLeadershipResponse], error) {
	m := req.Msg
	var out *concordv1.TransferLeadershipResponse
	err := h.onLeader(ctx, req.Header(), func(ctx context.Context) error {
		next, err := h.Store.TransferLeadership(ctx, m.GetId())
		if err == nil {
			out = &concordv1.TransferLeadershipResponse{Header: h.header(0), PreviousLeaderId: h.Store.ID(), LeaderId: next}
		}
		return err
	}, func(ctx context.Context, c concordv1connect.ClusterServiceClient) error {
		resp, err := c.TransferLeadership(ctx, forwarded(h.Store.ID(), m))
		if err == nil {
			out = resp.Msg
		}
		return err
	})
	if err != nil {
		return nil, toConnectError(err)
	}
	return connect.NewResponse(out), nil
}

// Internal implements concord.raft.v1.InternalService for peer replicas.
type Internal struct {
	Store *store.Store
}

// Apply commits a forwarded command on the leader.
func (h *Internal) Apply(ctx context.Context, req *connect.Request[raftv1.ApplyRequest]) (*connect.Response[raftv1.ApplyResponse], error) {
	if req.Msg.GetCommand() == nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("command is required"))
	}
	res, err := h.Store.ApplyLocal(ctx, req.Msg.GetCommand())
	if res == nil {
		return nil, toConnectError(err)
	}
	return connect.NewResponse(&raftv1.ApplyResponse{Result: res, NodeId: h.Store.ID()}), nil
}

// ReadIndex answers a follower's read-index request.
func (h *Internal) ReadIndex(ctx context.Context, req *connect.Request[raftv1.ReadIndexRequest]) (*connect.Response[raftv1.ReadIndexResponse], error) {
	idx, err := h.Store.ReadIndexLocal(ctx, req.Msg.GetLinearizable())
	if err != nil {
		return nil, toConnectError(err)
	}
	return connect.NewResponse(&raftv1.ReadIndexResponse{Index: idx, NodeId: h.Store.ID()}), nil
}
