package server

import (
	"context"
	"errors"

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
}

var _ concordv1connect.ClusterServiceHandler = (*Cluster)(nil)

func members(st store.Status) []*concordv1.Member {
	out := make([]*concordv1.Member, 0, len(st.Servers))
	for _, s := range st.Servers {
		m := &concordv1.Member{
			Id: string(s.ID), RaftAddress: string(s.Address), ApiAddress: st.APIAddresses[string(s.ID)],
			Suffrage: concordv1.Suffrage_SUFFRAGE_VOTER, Leader: string(s.ID) == st.LeaderID,
		}
		if s.Suffrage != raft.Voter {
			m.Suffrage = concordv1.Suffrage_SUFFRAGE_NONVOTER
		}
		out = append(out, m)
	}
	return out
}

// Status describes this node and the cluster.
func (h *Cluster) Status(_ context.Context, _ *connect.Request[concordv1.StatusRequest]) (*connect.Response[concordv1.StatusResponse], error) {
	st, err := h.Store.Status()
	if err != nil {
		return nil, toConnectError(err)
	}
	return connect.NewResponse(&concordv1.StatusResponse{
		Header: &concordv1.ResponseHeader{Revision: st.AppliedIndex, NodeId: h.Store.ID()},
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
		Header:  &concordv1.ResponseHeader{Revision: st.AppliedIndex, NodeId: h.Store.ID()},
		Members: members(st),
	}), nil
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
