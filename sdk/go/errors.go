package concord

import (
	"context"
	"errors"
	"fmt"
	"net"

	"connectrpc.com/connect"
)

// Errors returned by the client; test them with errors.Is. Each error a call
// returns wraps one of these (and the cause).
var (
	// ErrNotFound: the key does not exist or has expired.
	ErrNotFound = errors.New("concord: not found")
	// ErrInvalidArgument: a bad key, value, TTL or option. Bad options are
	// rejected before any network call.
	ErrInvalidArgument = errors.New("concord: invalid argument")
	// ErrUnauthorized: the token is missing, malformed, expired or revoked.
	ErrUnauthorized = errors.New("concord: unauthorized")
	// ErrForbidden: the token may not do this to this key.
	ErrForbidden = errors.New("concord: forbidden")
	// ErrConflict: a compare-and-set condition failed (IfAbsent on an existing
	// key, IfModRevision mismatch). Nothing was written.
	ErrConflict = errors.New("concord: conflict")
	// ErrRateLimited: the server asked the client to slow down.
	ErrRateLimited = errors.New("concord: rate limited")
	// ErrNoLeader: no leader could be reached before the deadline. A write
	// that fails with ErrNoLeader was certainly not applied.
	ErrNoLeader = errors.New("concord: no leader")
	// ErrTimeout: the deadline passed.
	ErrTimeout = errors.New("concord: timeout")
	// ErrOutcomeUnknown: a write may or may not have been applied (the
	// connection broke or the deadline passed after it was sent). Read the key
	// to find out.
	ErrOutcomeUnknown = errors.New("concord: outcome unknown")
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("concord: client closed")
	// ErrLockHeld: TryLock found the lock held by another holder. It wraps
	// ErrConflict.
	ErrLockHeld = fmt.Errorf("%w: lock held", ErrConflict)
)

// sentinel maps a Connect code to the client's error vocabulary.
func sentinel(code connect.Code) error {
	switch code {
	case connect.CodeNotFound:
		return ErrNotFound
	case connect.CodeInvalidArgument, connect.CodeOutOfRange:
		return ErrInvalidArgument
	case connect.CodeUnauthenticated:
		return ErrUnauthorized
	case connect.CodePermissionDenied:
		return ErrForbidden
	case connect.CodeFailedPrecondition, connect.CodeAlreadyExists, connect.CodeAborted:
		return ErrConflict
	case connect.CodeResourceExhausted:
		return ErrRateLimited
	case connect.CodeUnavailable:
		return ErrNoLeader
	case connect.CodeDeadlineExceeded:
		return ErrTimeout
	}
	return nil
}

// failure is how one attempt failed.
type failure int

const (
	// permanent: the server answered with a verdict (not found, conflict...).
	permanent failure = iota
	// notApplied: the request certainly changed nothing (server said it is
	// unavailable, or the connection was never made): safe to retry anything.
	notApplied
	// unknown: the request may have reached the leader; only reads retry.
	unknown
)

func classify(err error) failure {
	var ce *connect.Error
	if errors.As(err, &ce) && connect.IsWireError(ce) {
		switch ce.Code() {
		case connect.CodeUnavailable:
			return notApplied
		case connect.CodeDeadlineExceeded, connect.CodeInternal, connect.CodeUnknown, connect.CodeDataLoss, connect.CodeCanceled:
			return unknown
		}
		return permanent
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return notApplied
	}
	return unknown
}

// wrap turns a Connect error into the client's vocabulary.
func wrap(op string, err error) error {
	var ce *connect.Error
	if errors.As(err, &ce) {
		if s := sentinel(ce.Code()); s != nil {
			return fmt.Errorf("%s: %w: %s", op, s, ce.Message())
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w: %w", op, ErrTimeout, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// unknownOutcome is the error of a write that may have been applied. It
// wraps ErrOutcomeUnknown and the cause, and ErrTimeout if the deadline
// passed, but never ErrNoLeader: that promises the write was not applied,
// and a connection broken mid-call also comes back as Unavailable.
func unknownOutcome(op string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) || connect.CodeOf(err) == connect.CodeDeadlineExceeded {
		return fmt.Errorf("%s: %w: %w: %w", op, ErrOutcomeUnknown, ErrTimeout, err)
	}
	return fmt.Errorf("%s: %w: %w", op, ErrOutcomeUnknown, err)
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidArgument, fmt.Sprintf(format, args...))
}

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
