package concord

import (
	"context"
	"slices"
)

// SetSeeds replaces the endpoints the client was created with (see New) and
// refreshes the member list and the leader from them at once. Programs that
// find replicas through a registry (package consul does it for Consul) call
// it whenever the registry's list changes. The new seeds are kept even if
// none answers yet; the error then says why, and the background refresh
// keeps trying them. urls must not be empty.
func (c *Client) SetSeeds(ctx context.Context, urls []string) error {
	if len(urls) == 0 {
		return invalid("no endpoints")
	}
	seeds := make([]string, 0, len(urls))
	for _, e := range urls {
		u, err := normalizeURL(e)
		if err != nil {
			return err
		}
		if !slices.Contains(seeds, u) {
			seeds = append(seeds, u)
		}
	}
	select {
	case <-c.stop:
		return ErrClosed
	default:
	}
	// refresh and learn read the seeds under refreshMu.
	c.refreshMu.Lock()
	c.seeds = seeds
	c.refreshMu.Unlock()
	return c.refresh(ctx, true)
}
