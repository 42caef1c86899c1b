package concord

// Queued reports how many calls wait in c's coalescing queues, so tests can
// tell that calls have queued behind the RPCs in flight.
func Queued(c *Client) int {
	if c.co == nil {
		return 0
	}
	c.co.mu.Lock()
	defer c.co.mu.Unlock()
	n := len(c.co.puts.queue)
	for _, l := range c.co.gets {
		n += len(l.queue)
	}
	return n
}

// CoalesceInflight is how many RPCs of one kind may be in flight at once.
const CoalesceInflight = coalesceInflight
