// Package concord is the Go client for Concord, a distributed, strongly
// consistent key-value store for configuration, feature flags, service
// discovery, sessions, locks and rate-limit counters.
//
// # Connecting
//
// [New] takes the base URLs of some replicas or gateways. Given replicas,
// the client learns every member from their status and keeps the list and
// the leader current in the background; given gateways, it uses them as
// they are and the gateways route.
//
// # Routing
//
// Writes and Leader or Strong reads go straight to the leader. Eventual
// reads are spread over healthy replicas by the power of two choices on
// observed latency. When the leader is lost, a call refreshes the leader and
// retries elsewhere with backoff, within its deadline ([WithTimeout], or the
// context's).
//
// # Retry rules
//
//   - Reads are always retried until the deadline.
//   - A write is retried only when it certainly was not applied: the server
//     answered that it could not take it (no leader yet, not the leader) or
//     the connection could not be made.
//   - Otherwise a failed write (connection broken after sending, deadline
//     passed while waiting) returns [ErrOutcomeUnknown] wrapping the cause:
//     the write may have been applied. Read the key to find out, or make
//     the write conditional ([IfAbsent], [IfModRevision]) so a retry is safe.
//   - A write that fails with [ErrNoLeader] was not applied.
//
// # Coalescing
//
// Concurrent calls share RPCs ([WithCoalescing], on by default): Get calls
// with the same options (consistency, MinRevision, with or without TTL)
// become one BatchGet, and unconditional Put calls (no [IfAbsent] or
// [IfModRevision]) one BatchPut, written as one Raft entry, so every item's
// ModRevision is that entry's revision. Nothing is delayed to form a batch:
// a call goes out alone at once, with the single-key RPC, unless a few RPCs
// of its kind are in flight already; then it waits for the next one, which
// carries every call that queued meanwhile (up to 500). A batch never holds
// two writes of one key: each write gets its own revision. Each call gets
// the result or error it would have got alone: a key not found fails only
// its own call with [ErrNotFound]; a batch the server refuses (a bad item)
// is retried as single calls, so only the bad item fails; a call whose
// context ends returns at once and leaves the others' batch alone. Batches
// are routed and retried like single calls, under the latest deadline of
// their calls.
//
// # Helpers for common uses
//
// The product's use cases, built on conditional writes and TTLs so that
// they stay correct under concurrency and failures:
//
//   - Distributed locks: [Client.Lock] and [Client.TryLock] create
//     "locks/<name>" only if absent, with a TTL a keepalive renews until
//     [Lock.Unlock], which deletes the key only if it still holds this lock.
//     [Lock.Fence] is a fencing token that grows with each holder: the
//     protected resource must check it, as a lease cannot stop a stalled
//     holder from acting after its lock expired.
//   - Rate limiting: [Client.RateLimiter] counts requests per id in fixed
//     windows with compare-and-set increments; it never admits more than
//     the limit, however many processes share it.
//   - Session storage: [NewSessions] stores values with a TTL that
//     [Sessions.Touch] extends on activity.
//   - Service discovery: [Client.Register] writes
//     "services/<service>/<instance>" with a TTL and a heartbeat;
//     [Client.Discover] lists the instances still present.
//   - Feature flags: [Client.Flag] reads "flags/<name>" as a boolean
//     ("enabled", "disabled", true, false) and [GetFlag] as any JSON type,
//     each with a default for flags that are not set.
//
// The package examples show each of them, and each client call. In short
// (error handling left out):
//
// Feature flags:
//
//	_, _ = c.Put(ctx, "flags/new_dashboard", []byte(`"enabled"`), concord.WithContentType("application/json"))
//	if on, _ := c.Flag(ctx, "new_dashboard", false); on {
//		renderNewDashboard()
//	}
//
// Session storage:
//
//	sessions := concord.NewSessions[Session](c, "session:", 30*time.Minute)
//	_, _ = sessions.Put(ctx, sessionID, Session{UserID: 123})
//	s, ttl, _ := sessions.Get(ctx, sessionID) // and the remaining TTL
//	_, _ = sessions.Touch(ctx, sessionID)     // extend on activity
//
// Rate limiting:
//
//	limiter := c.RateLimiter("rate_limit:", 1000, 24*time.Hour)
//	if ok, _, _ := limiter.Allow(ctx, userID); !ok {
//		return errTooManyRequests
//	}
//
// Service discovery:
//
//	reg, _ := c.Register(ctx, "web", "web-1", concord.ServiceInstance{Address: "10.0.1.100", Port: 8080}, 10*time.Second)
//	defer reg.Deregister(ctx)
//	instances, _ := c.Discover(ctx, "web") // the healthy ones: heartbeats keep them
//
// Distributed locks:
//
//	lock, err := c.Lock(ctx, "job:123", 15*time.Second)
//	if err != nil {
//		return err
//	}
//	defer lock.Unlock(ctx)
//	doWork(lock.Fence()) // the resource rejects fences older than the last it saw
//
// # Errors
//
// Every error from the cluster or the client's checks wraps one of the
// sentinels ([ErrNotFound], [ErrInvalidArgument], [ErrUnauthorized],
// [ErrForbidden], [ErrConflict], [ErrRateLimited], [ErrNoLeader],
// [ErrTimeout], [ErrOutcomeUnknown]); test with errors.Is. (A stored value
// that a typed helper cannot decode is reported with the codec's error.)
// Bad options fail with ErrInvalidArgument before any network call.
package concord
