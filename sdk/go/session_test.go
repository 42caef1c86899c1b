package concord_test

import (
	"context"
	"errors"
	"testing"
	"time"

	concord "github.com/concord-kv/concord/sdk/go"
)

type session struct {
	UserID int      `json:"user_id"`
	Roles  []string `json:"roles"`
}

func TestSessions(t *testing.T) {
	t.Parallel()
	cl := newClient(t, cluster(t).URLs())
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	sessions := concord.NewSessions[session](cl, "test/sessions/", 30*time.Minute)
	put := session{UserID: 123, Roles: []string{"admin"}}
	if _, err := sessions.Put(ctx, "s1", put); err != nil {
		t.Fatal(err)
	}
	got, ttl, err := sessions.Get(ctx, "s1")
	if err != nil || got.UserID != 123 || len(got.Roles) != 1 || ttl <= 0 || ttl > 30*time.Minute {
		t.Fatalf("Get: %+v %v %v", got, ttl, err)
	}
	kv, err := cl.Get(ctx, "test/sessions/s1")
	if err != nil || kv.ContentType != "application/json" {
		t.Fatalf("stored session: %+v %v, want JSON", kv, err)
	}
	if _, err := sessions.Touch(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	if err := sessions.Delete(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := sessions.Get(ctx, "s1"); !errors.Is(err, concord.ErrNotFound) {
		t.Fatalf("Get after Delete: %v, want ErrNotFound", err)
	}
	if _, err := sessions.Touch(ctx, "s1"); !errors.Is(err, concord.ErrNotFound) {
		t.Fatalf("Touch after Delete: %v, want ErrNotFound", err)
	}

	// An idle session expires after its TTL.
	short := concord.NewSessions[session](cl, "test/sessions/", time.Second)
	if _, err := short.Put(ctx, "idle", put); err != nil {
		t.Fatal(err)
	}
	for {
		_, _, err := short.Get(ctx, "idle")
		if errors.Is(err, concord.ErrNotFound) {
			break
		}
		if err != nil {
			t.Fatalf("waiting for the idle session to expire: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
