// Package server adapts the store to the Connect services: KVService,
// ClusterService and the replica-to-replica InternalService.
package server

import (
	"context"
	"errors"

	"connectrpc.com/connect"
	"github.com/concord-kv/concord/services/replica/internal/compress"
	"github.com/concord-kv/concord/services/replica/internal/store"
)

// toConnectError is the one mapping from store errors to Connect codes
// (the error table in ARCHITECTURE.md).
func toConnectError(err error) error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce
	}
	code := connect.CodeInternal
	switch {
	case errors.Is(err, store.ErrInvalidArgument):
		code = connect.CodeInvalidArgument
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrNotMember):
		code = connect.CodeNotFound
	case errors.Is(err, store.ErrConflict):
		code = connect.CodeFailedPrecondition
	case errors.Is(err, store.ErrNotLeader), errors.Is(err, store.ErrNoLeader),
		errors.Is(err, store.ErrNotReady), errors.Is(err, store.ErrClosed):
		code = connect.CodeUnavailable
	case errors.Is(err, store.ErrOutcomeUnknown), errors.Is(err, store.ErrTimeout),
		errors.Is(err, context.DeadlineExceeded):
		code = connect.CodeDeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = connect.CodeCanceled
	case errors.Is(err, compress.ErrCorrupt):
		code = connect.CodeDataLoss
	}
	return connect.NewError(code, err)
}
