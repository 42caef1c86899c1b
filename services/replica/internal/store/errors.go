package store

import "errors"

// Errors returned by the store. The server maps them to Connect codes in one
// place (internal/server/errors.go).
var (
	// ErrNotFound: the key does not exist (or has expired).
	ErrNotFound = errors.New("key not found")
	// ErrConflict: a compare-and-set condition failed.
	ErrConflict = errors.New("conflict")
	// ErrInvalidArgument: the request breaks a limit or is malformed.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrNotLeader: this replica is not the leader; the operation was not applied.
	ErrNotLeader = errors.New("not the leader")
	// ErrNoLeader: no leader is known; the operation was not applied.
	ErrNoLeader = errors.New("no leader")
	// ErrNotReady: the leader has not yet committed an entry of its term, so
	// it cannot serve linearizable reads yet.
	ErrNotReady = errors.New("leader not ready")
	// ErrOutcomeUnknown: the write may or may not have been applied (deadline,
	// lost leadership or a broken connection after sending).
	ErrOutcomeUnknown = errors.New("outcome unknown")
	// ErrTimeout: the deadline passed before a read could be served.
	ErrTimeout = errors.New("timeout")
	// ErrNotMember: no member of the Raft configuration has this id.
	ErrNotMember = errors.New("no such member")
	// ErrClosed: the store is shut down.
	ErrClosed = errors.New("store closed")
)
