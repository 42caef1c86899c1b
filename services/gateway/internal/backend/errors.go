package backend

import (
	"context"
	"errors"
	"strings"

	"connectrpc.com/connect"
	concord "github.com/concord-kv/concord/sdk/go"
)

// codes maps the SDK's sentinels to Connect codes (ARCHITECTURE.md, "Errors"),
// in the order they are tried: ErrOutcomeUnknown first, because it wraps
// the cause's own sentinel.
var codes = []struct {
	sentinel error
	code     connect.Code
}{
	{concord.ErrOutcomeUnknown, connect.CodeDeadlineExceeded},
	{concord.ErrInvalidArgument, connect.CodeInvalidArgument},
	{concord.ErrNotFound, connect.CodeNotFound},
	{concord.ErrUnauthorized, connect.CodeUnauthenticated},
	{concord.ErrForbidden, connect.CodePermissionDenied},
	{concord.ErrConflict, connect.CodeFailedPrecondition},
	{concord.ErrRateLimited, connect.CodeResourceExhausted},
	{concord.ErrNoLeader, connect.CodeUnavailable},
	{concord.ErrTimeout, connect.CodeDeadlineExceeded},
	{concord.ErrClosed, connect.CodeUnavailable},
}

// codeOf is the Connect code for an error returned by the SDK.
func codeOf(err error) connect.Code {
	// The caller went away: whatever the SDK made of it, nobody is waiting.
	if errors.Is(err, context.Canceled) && !errors.Is(err, concord.ErrOutcomeUnknown) {
		return connect.CodeCanceled
	}
	for _, c := range codes {
		if errors.Is(err, c.sentinel) {
			return c.code
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return connect.CodeDeadlineExceeded
	}
	// Anything else (a replica's internal error) is ours to report, not the
	// replica's: internal, never the upstream's own code.
	return connect.CodeInternal
}

// toConnectError is the one mapping from SDK errors to Connect errors. The
// message drops the SDK's "op: concord: " prefix.
func toConnectError(err error) error {
	return connect.NewError(codeOf(err), errors.New(message(err)))
}

// message is err's text after the SDK's "concord: " prefix, if any.
func message(err error) string {
	msg := err.Error()
	if _, rest, ok := strings.Cut(msg, "concord: "); ok && rest != "" {
		return rest
	}
	return msg
}
