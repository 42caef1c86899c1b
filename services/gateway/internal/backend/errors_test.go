package backend

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"connectrpc.com/connect"
	concord "github.com/concord-kv/concord/sdk/go"
)

func TestToConnectError(t *testing.T) {
	// Errors shaped as the SDK returns them: "op: <sentinel>: detail".
	sdk := func(op string, sentinel error, detail string) error {
		return fmt.Errorf("%s: %w: %s", op, sentinel, detail)
	}
	tests := []struct {
		name    string
		err     error
		code    connect.Code
		message string
	}{
		{"not found", sdk("get", concord.ErrNotFound, `key "a" not found`), connect.CodeNotFound, `not found: key "a" not found`},
		{"invalid argument", sdk("put", concord.ErrInvalidArgument, "ttl must be >= 0"), connect.CodeInvalidArgument, "invalid argument: ttl must be >= 0"},
		{"option rejected before the network", fmt.Errorf("%w: List does not take WithTTL", concord.ErrInvalidArgument), connect.CodeInvalidArgument, "invalid argument: List does not take WithTTL"},
		{"unauthorized", sdk("get", concord.ErrUnauthorized, "token revoked"), connect.CodeUnauthenticated, "unauthorized: token revoked"},
		{"forbidden", sdk("put", concord.ErrForbidden, "prefix"), connect.CodePermissionDenied, "forbidden: prefix"},
		{"conflict", sdk("put", concord.ErrConflict, "key exists"), connect.CodeFailedPrecondition, "conflict: key exists"},
		{"lock held is a conflict", sdk("lock", concord.ErrLockHeld, "by b"), connect.CodeFailedPrecondition, "conflict: lock held: by b"},
		{"rate limited", sdk("put", concord.ErrRateLimited, "slow down"), connect.CodeResourceExhausted, "rate limited: slow down"},
		{"no leader", fmt.Errorf("put: %w: %w", concord.ErrNoLeader, errors.New("dial tcp: refused")), connect.CodeUnavailable, "no leader: dial tcp: refused"},
		{"timeout", sdk("get", concord.ErrTimeout, "deadline"), connect.CodeDeadlineExceeded, "timeout: deadline"},
		{
			"outcome unknown wins over the cause",
			fmt.Errorf("put: %w: %w", concord.ErrOutcomeUnknown, sdk("put", concord.ErrTimeout, "x")),
			connect.CodeDeadlineExceeded, "outcome unknown: put: concord: timeout: x",
		},
		{"closed", concord.ErrClosed, connect.CodeUnavailable, "client closed"},
		{"caller went away", fmt.Errorf("get: %w: %w", concord.ErrNoLeader, context.Canceled), connect.CodeCanceled, "no leader: context canceled"},
		{"bare deadline", fmt.Errorf("get: %w", context.DeadlineExceeded), connect.CodeDeadlineExceeded, "get: context deadline exceeded"},
		{"replica's internal error is ours", fmt.Errorf("get: %w", connect.NewError(connect.CodeInternal, errors.New("boom"))), connect.CodeInternal, "get: internal: boom"},
		{"anything else", errors.New("strange"), connect.CodeInternal, "strange"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := toConnectError(tt.err)
			var ce *connect.Error
			if !errors.As(err, &ce) {
				t.Fatalf("toConnectError(%v) = %T, want *connect.Error", tt.err, err)
			}
			if ce.Code() != tt.code || ce.Message() != tt.message {
				t.Errorf("toConnectError(%v) = %v %q, want %v %q", tt.err, ce.Code(), ce.Message(), tt.code, tt.message)
			}
		})
	}
}
