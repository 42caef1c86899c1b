package chaos

import (
	"context"
	"fmt"
	"time"

	concord "github.com/concord-kv/concord/sdk/go"
)

// Wall is the wall-clock time of ns on the run's clock.
func (c Clock) Wall(ns int64) time.Time { return c.start.Add(time.Duration(ns)).Round(0) }

// CheckExpiry reads every acknowledged set element with a strong List and
// checks its expiry against the TTL it was added with. The leader stamps a
// write with its clock, which may be shifted by up to maxJump (ClockJump),
// so an element added between call and return must expire within
// [call+ttl-maxJump, return+ttl+maxJump] (plus a second for the rounding of
// stamps and TTLs). An element that has no expiry, or one outside those
// bounds, is a violation.
func CheckExpiry(ctx context.Context, c *concord.Client, set *SetResult, prefix string, clock Clock, ttl, maxJump time.Duration) ([]string, error) {
	expires := map[string]time.Time{}
	for {
		var err error
		for kv, e := range c.List(ctx, prefix, concord.Consistency(concord.Strong), concord.WithPageSize(1000)) {
			if e != nil {
				err = e
				break
			}
			expires[kv.Key] = kv.ExpiresAt
		}
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("list of %s for expiry: %w", prefix, err)
		}
		clear(expires)
		sleepCtx(ctx, 200*time.Millisecond)
	}
	const slack = time.Second
	var bad []string
	set.mu.Lock()
	defer set.mu.Unlock()
	for _, a := range set.Adds {
		at, ok := expires[a.Key]
		if a.Result != "acked" || !ok {
			continue // a lost element is reported by CheckSet
		}
		lo := clock.Wall(a.Call).Add(ttl - maxJump - slack)
		hi := clock.Wall(a.Return).Add(ttl + maxJump + slack)
		if at.IsZero() || at.Before(lo) || at.After(hi) {
			bad = append(bad, fmt.Sprintf("set element %s added with TTL %v expires at %s, outside [%s, %s]",
				a.Key, ttl, at.Format(time.RFC3339Nano), lo.Format(time.RFC3339Nano), hi.Format(time.RFC3339Nano)))
		}
	}
	if len(bad) > 5 {
		bad = append(bad[:5], fmt.Sprintf("… %d more elements with an expiry out of bounds", len(bad)-5))
	}
	return bad, nil
}
