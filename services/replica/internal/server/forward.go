package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"connectrpc.com/connect"
	"github.com/concord-kv/concord/proto/gen/go/concord/v1/concordv1connect"
	"github.com/concord-kv/concord/services/replica/internal/store"
)

// forwardedHeader marks a ClusterService call that a replica forwarded to
// the leader; the receiver never forwards it again (one hop).
const forwardedHeader = "Concord-Forwarded-By"

// forwarded wraps msg in a request marked as forwarded by replica self.
func forwarded[T any](self string, msg *T) *connect.Request[T] {
	r := connect.NewRequest(msg)
	r.Header().Set(forwardedHeader, self)
	return r
}

// onLeader runs a membership change where it must run: local on the leader;
// on a follower, remote against the leader's ClusterService (one hop). While
// the change was certainly not made (no leader known yet, the leader moved)
// it tries again, with backoff, until ctx ends. A call that was itself
// forwarded is not forwarded again: it fails with ErrNotLeader, and the
// replica that forwarded it retries.
func (h *Cluster) onLeader(ctx context.Context, hdr http.Header, local func(context.Context) error,
	remote func(context.Context, concordv1connect.ClusterServiceClient) error) error {
	backoff := 20 * time.Millisecond
	for {
		var err error
		switch {
		case h.Store.IsLeader():
			err = local(ctx)
		case hdr.Get(forwardedHeader) != "":
			return store.ErrNotLeader
		case !h.Store.IsMember():
			// Not part of a cluster (a replica still joining, or one that
			// was removed): it will not learn of a leader by waiting.
			return fmt.Errorf("%w: replica %s is not a member of the cluster", store.ErrNoLeader, h.Store.ID())
		default:
			err = h.forward(ctx, remote)
		}
		if !errors.Is(err, store.ErrNotLeader) && !errors.Is(err, store.ErrNoLeader) {
			return err
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w: %w", store.ErrNoLeader, err)
		case <-t.C:
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

// forward makes one call to the leader and classifies its failure: the
// leader's own verdict passes through with its code, except Unavailable
// (not the leader after all, or no leader), which is retried like a refused
// dial; any other failure leaves the outcome unknown.
func (h *Cluster) forward(ctx context.Context, remote func(context.Context, concordv1connect.ClusterServiceClient) error) error {
	id, addr := h.Store.Leader()
	switch {
	case id == "":
		return store.ErrNoLeader
	case id == h.Store.ID():
		return store.ErrNotLeader // raft still names us but we no longer lead
	case addr == "":
		return fmt.Errorf("%w: leader %s has not registered its API address", store.ErrNoLeader, id)
	}
	err := remote(ctx, concordv1connect.NewClusterServiceClient(h.Peers, addr))
	if err == nil {
		return nil
	}
	var ce *connect.Error
	if errors.As(err, &ce) && connect.IsWireError(ce) {
		if ce.Code() == connect.CodeUnavailable {
			return fmt.Errorf("%w: %s", store.ErrNotLeader, ce.Message())
		}
		return ce
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return fmt.Errorf("%w: %s", store.ErrNoLeader, err.Error())
	}
	return fmt.Errorf("%w: forwarding to leader %s: %s", store.ErrOutcomeUnknown, id, err.Error())
}
