package backend

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	concordv1 "github.com/concord-kv/concord/proto/gen/go/concord/v1"
)

// TestUnreachableReplicas: calls fail as unavailable within their deadline
// while no replica answers, and Close stops the connection attempts.
func TestUnreachableReplicas(t *testing.T) {
	b, err := New([]string{"http://127.0.0.1:1"}, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = b.Get(ctx, connect.NewRequest(&concordv1.GetRequest{Key: "k"}))
	if connect.CodeOf(err) != connect.CodeUnavailable || !strings.Contains(err.Error(), "no replica has answered yet") {
		t.Errorf("Get = %v, want unavailable: no replica has answered yet", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Get took %v, past its deadline", d)
	}
	if s := b.Served(); s != nil {
		t.Errorf("Served = %v before any replica answered", s)
	}
	done := make(chan error, 1)
	go func() { done <- b.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not stop the connection attempts")
	}
}

func TestNoReplicas(t *testing.T) {
	if _, err := New(nil, Options{}); err == nil {
		t.Error("New without replicas succeeded")
	}
}
