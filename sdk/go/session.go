package concord

import (
	"context"
	"fmt"
	"time"
)

// Sessions stores session values of type T, encoded as JSON, under
// prefix+id with a TTL that Touch extends on activity: a session nobody
// touches for ttl expires and reads as ErrNotFound. It is safe for
// concurrent use.
type Sessions[T any] struct {
	t      *Typed[T]
	prefix string
	ttl    time.Duration
}

// NewSessions returns the sessions under prefix (for example "sessions/"),
// each living ttl (whole seconds, at least 1 s) after its last Put or Touch.
// A bad ttl makes the calls fail with ErrInvalidArgument.
func NewSessions[T any](c *Client, prefix string, ttl time.Duration) *Sessions[T] {
	return &Sessions[T]{t: NewTyped[T](c, JSON), prefix: prefix, ttl: ttl}
}

// Put stores the session id, replacing any value, and sets its TTL.
func (s *Sessions[T]) Put(ctx context.Context, id string, v T) (WriteResult, error) {
	return s.t.Put(ctx, s.prefix+id, v, WithTTL(s.ttl))
}

// Get reads the session id and its remaining time to live. A missing or
// expired session fails with ErrNotFound.
func (s *Sessions[T]) Get(ctx context.Context, id string) (v T, ttl time.Duration, err error) {
	key := s.prefix + id
	kv, err := s.t.c.GetWithTTL(ctx, key)
	if err != nil {
		return v, 0, err
	}
	if err := s.t.codec.Unmarshal(kv.Value, &v); err != nil {
		return v, 0, fmt.Errorf("decode session %q: %w", key, err)
	}
	return v, kv.TTL, nil
}

// Touch restarts the session's TTL without changing its value. A missing or
// expired session fails with ErrNotFound.
func (s *Sessions[T]) Touch(ctx context.Context, id string) (WriteResult, error) {
	if s.ttl < time.Second {
		return WriteResult{}, invalid("Sessions: TTL %v must be a whole number of seconds, at least 1s", s.ttl)
	}
	return s.t.c.Touch(ctx, s.prefix+id, s.ttl)
}

// Delete ends the session id. Deleting a missing session succeeds.
func (s *Sessions[T]) Delete(ctx context.Context, id string) error {
	_, err := s.t.c.Delete(ctx, s.prefix+id)
	return err
}
