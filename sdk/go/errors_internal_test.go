package concord

import (
	"context"
	"errors"
	"testing"

	"connectrpc.com/connect"
)

// A write whose connection broke after it was sent comes back from Connect
// as Unavailable, like a "no leader" answer; it must not report
// ErrNoLeader, which promises the write was not applied.
func TestUnknownOutcomeNeverClaimsNotApplied(t *testing.T) {
	for name, cause := range map[string]error{
		"connection closed": connect.NewError(connect.CodeUnavailable, errors.New("http2: client connection force closed via ClientConn.Close")),
		"deadline":          connect.NewError(connect.CodeDeadlineExceeded, context.DeadlineExceeded),
	} {
		if classify(cause) != unknown {
			t.Fatalf("%s: classified %v, want unknown", name, classify(cause))
		}
		err := unknownOutcome("put", cause)
		if !errors.Is(err, ErrOutcomeUnknown) || errors.Is(err, ErrNoLeader) {
			t.Errorf("%s: %v: want ErrOutcomeUnknown and not ErrNoLeader", name, err)
		}
		if name == "deadline" && !errors.Is(err, ErrTimeout) {
			t.Errorf("%s: %v: want ErrTimeout too", name, err)
		}
	}
}
