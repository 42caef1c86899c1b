package concord

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// RateLimiter admits at most limit requests per id in each fixed window of
// time. Its counters live in the cluster, so every process sharing the
// prefix shares the limit. It is safe for concurrent use.
//
// Each (id, window) has a counter key prefix+id+":"+n, where n numbers the
// window since the Unix epoch (by the caller's clock), holding a decimal
// count and expiring a second or two after its window ends. Allow increments it
// with compare-and-set ([IfAbsent], [IfModRevision]) and retries on
// conflict, so concurrent callers never admit more than limit. Windows are
// numbered by each caller's clock, so the processes sharing a limiter need
// clocks in step (NTP) to well within a second.
type RateLimiter struct {
	c      *Client
	prefix string
	limit  int
	window time.Duration
}

// RateLimiter returns a limiter of limit requests per window (whole seconds,
// at least 1 s) for each id, with its counters under prefix. Bad arguments
// make Allow fail with ErrInvalidArgument.
func (c *Client) RateLimiter(prefix string, limit int, window time.Duration) *RateLimiter {
	return &RateLimiter{c: c, prefix: prefix, limit: limit, window: window}
}

// Allow counts one request by id in the current window and reports whether
// it is admitted and how many more the window admits.
//
// A denied request is not counted. A request whose counter write has an
// unknown outcome (see [ErrOutcomeUnknown]) is counted again from a fresh
// read: it may use up more than one place in the window but is admitted at
// most once, so the limit is never exceeded. If ctx ends before Allow can
// decide, it returns the error and allowed false.
func (r *RateLimiter) Allow(ctx context.Context, id string) (allowed bool, remaining int, err error) {
	if r.limit < 1 {
		return false, 0, invalid("RateLimiter: limit %d must be at least 1", r.limit)
	}
	if r.window < time.Second || r.window%time.Second != 0 {
		return false, 0, invalid("RateLimiter: window %v must be a whole number of seconds, at least 1s", r.window)
	}
	n := time.Now().UnixNano() / int64(r.window)
	key := r.prefix + id + ":" + strconv.FormatInt(n, 10)
	if err := checkKey(key); err != nil {
		return false, 0, err
	}
	end := time.Unix(0, (n+1)*int64(r.window))
	backoff := 5 * time.Millisecond
	for {
		// The counter outlives its window by at least a second.
		ttl := max(time.Until(end), 0).Truncate(time.Second) + 2*time.Second
		var count int
		kv, err := r.c.Get(ctx, key, Consistency(Strong))
		switch {
		case errors.Is(err, ErrNotFound):
			count = 1
			_, err = r.c.Put(ctx, key, []byte("1"), IfAbsent(), WithTTL(ttl))
		case err != nil:
			return false, 0, err
		default:
			cur, perr := strconv.Atoi(string(kv.Value))
			if perr != nil || cur < 0 {
				return false, 0, fmt.Errorf("rate limit counter %q holds %q, not a count", key, kv.Value)
			}
			if cur >= r.limit {
				return false, 0, nil
			}
			count = cur + 1
			_, err = r.c.Put(ctx, key, []byte(strconv.Itoa(count)), IfModRevision(kv.ModRevision), WithTTL(ttl))
		}
		if err == nil {
			return true, r.limit - count, nil
		}
		if !errors.Is(err, ErrConflict) && !errors.Is(err, ErrOutcomeUnknown) {
			return false, 0, err
		}
		// Another caller won the race (or ours may have): read again.
		if !sleep(ctx, jitter(backoff)) {
			return false, 0, fmt.Errorf("allow %q: %w: %w", key, ErrTimeout, ctx.Err())
		}
		backoff = min(backoff*2, 200*time.Millisecond)
	}
}
