package concord

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Lock is a distributed lock held in one key: the key exists, with a TTL,
// while the lock is held. A background keepalive Touches it every TTL/3
// until Unlock, so a holder that dies releases the lock when the TTL runs
// out.
//
// A lease-based lock cannot promise mutual exclusion on its own: a holder
// that stalls (GC pause, partition) for longer than the TTL loses the lock
// without knowing it while another process takes it. Use the [Lock.Fence]
// token: send it with every write to the protected resource, and have the
// resource reject a token lower than the highest it has seen.
//
// The methods of a Lock are safe for concurrent use.
type Lock struct {
	c     *Client
	key   string
	ttl   time.Duration
	fence uint64

	mu         sync.Mutex
	validUntil time.Time // local time until which the key certainly lives

	unlockMu sync.Mutex
	released bool

	lost     chan struct{}
	lostOnce sync.Once
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

// LockOption configures Lock and TryLock.
type LockOption func(*lockOptions)

type lockOptions struct {
	key   string
	owner string
}

// WithLockKey stores the lock under key instead of "locks/"+name; the
// name may then be empty.
func WithLockKey(key string) LockOption { return func(o *lockOptions) { o.key = key } }

// WithLockOwner records owner (a host or worker name) in the lock's value,
// for operators reading the key. It does not affect who may unlock.
func WithLockOwner(owner string) LockOption { return func(o *lockOptions) { o.owner = owner } }

// lockValue is what a lock key holds. Token is unique to one acquisition, so
// a holder recognises its own write after an outcome-unknown error.
type lockValue struct {
	Owner string `json:"owner,omitempty"`
	Token string `json:"token"`
}

// Lock acquires the lock name, blocking until it is free or ctx ends. The
// lock is the key "locks/"+name (or [WithLockKey]), created only if absent
// and with a TTL of ttl (whole seconds, at least 1 s) that the returned
// Lock keeps alive until [Lock.Unlock].
//
// While the lock is held by someone else, Lock polls with jittered
// exponential backoff (20 ms up to 1 s). If ctx ends first, the error wraps
// ctx.Err() and [ErrLockHeld] (or the last error seen).
func (c *Client) Lock(ctx context.Context, name string, ttl time.Duration, opts ...LockOption) (*Lock, error) {
	key, value, err := lockRequest("Lock", name, ttl, opts)
	if err != nil {
		return nil, err
	}
	backoff := 20 * time.Millisecond
	unknown := false
	for {
		l, err := c.acquire(ctx, key, value, ttl, &unknown)
		if err == nil {
			return l, nil
		}
		if !retryLock(err) {
			return nil, err
		}
		if !sleep(ctx, jitter(backoff)) {
			return nil, fmt.Errorf("%w: %w", ctx.Err(), err)
		}
		backoff = min(backoff*2, time.Second)
	}
}

// TryLock acquires the lock name like [Client.Lock] but does not wait: if
// another holder has it, it fails with an error wrapping [ErrLockHeld]
// (and so [ErrConflict]).
func (c *Client) TryLock(ctx context.Context, name string, ttl time.Duration, opts ...LockOption) (*Lock, error) {
	key, value, err := lockRequest("TryLock", name, ttl, opts)
	if err != nil {
		return nil, err
	}
	backoff := 20 * time.Millisecond
	unknown := false
	for {
		l, err := c.acquire(ctx, key, value, ttl, &unknown)
		// Only an attempt that decided nothing is retried.
		if err == nil || (!errors.Is(err, ErrOutcomeUnknown) && !errors.Is(err, errLockFree)) {
			return l, err
		}
		if !sleep(ctx, jitter(backoff)) {
			return nil, fmt.Errorf("%w: %w", ctx.Err(), err)
		}
		backoff = min(backoff*2, time.Second)
	}
}

// retryLock reports whether Lock keeps waiting after err.
func retryLock(err error) bool {
	return errors.Is(err, ErrLockHeld) || errors.Is(err, ErrOutcomeUnknown) || errors.Is(err, errLockFree) ||
		errors.Is(err, ErrNoLeader) || errors.Is(err, ErrTimeout) || errors.Is(err, ErrRateLimited)
}

func lockRequest(call, name string, ttl time.Duration, opts []LockOption) (key string, value []byte, err error) {
	var o lockOptions
	for _, f := range opts {
		if f == nil {
			return "", nil, invalid("%s: nil option", call)
		}
		f(&o)
	}
	switch {
	case name == "" && o.key == "":
		return "", nil, invalid("%s: empty lock name", call)
	case ttl < time.Second || ttl%time.Second != 0:
		return "", nil, invalid("%s: TTL %v must be a whole number of seconds, at least 1s", call, ttl)
	}
	key = o.key
	if key == "" {
		key = "locks/" + name
	}
	if err := checkKey(key); err != nil {
		return "", nil, err
	}
	var token [16]byte
	_, _ = rand.Read(token[:]) // never fails
	value, err = json.Marshal(lockValue{Owner: o.owner, Token: hex.EncodeToString(token[:])})
	return key, value, err
}

// acquire makes one attempt to create key. *unknown records that an earlier
// attempt's outcome is unknown: that write may have created the key, so a
// conflict is checked against our token.
func (c *Client) acquire(ctx context.Context, key string, value []byte, ttl time.Duration, unknown *bool) (*Lock, error) {
	start := time.Now()
	w, err := c.Put(ctx, key, value, IfAbsent(), WithTTL(ttl), WithContentType(JSON.ContentType()))
	switch {
	case err == nil:
		// The key lives at least ttl from when the write was sent.
		return c.holdLock(ctx, key, ttl, w.Revision, start.Add(ttl)), nil
	case errors.Is(err, ErrConflict) && !*unknown:
		return nil, fmt.Errorf("lock %q: %w", key, ErrLockHeld)
	case !errors.Is(err, ErrConflict) && !errors.Is(err, ErrOutcomeUnknown):
		return nil, err
	}
	*unknown = true
	kv, gerr := c.Get(ctx, key, Consistency(Strong))
	switch {
	case errors.Is(gerr, ErrNotFound):
		// Free again, or our write is still in flight: try again.
		return nil, fmt.Errorf("lock %q: %w: %w", key, errLockFree, err)
	case gerr != nil:
		return nil, gerr
	case !bytes.Equal(kv.Value, value):
		return nil, fmt.Errorf("lock %q: %w", key, ErrLockHeld)
	}
	// An earlier write of ours created the key, at a time we do not know:
	// renew it now, and count its life from that renewal.
	l := &Lock{c: c, key: key, ttl: ttl, fence: kv.ModRevision}
	if err := l.renew(ctx); err != nil {
		if errors.Is(err, errLockGone) {
			return nil, fmt.Errorf("lock %q: %w: %w", key, errLockFree, err)
		}
		return nil, err
	}
	return c.holdLock(ctx, key, ttl, l.fence, l.validUntil), nil
}

// holdLock returns the Lock for a key this client created at revision
// fence and that lives at least until validUntil, and starts its keepalive.
func (c *Client) holdLock(ctx context.Context, key string, ttl time.Duration, fence uint64, validUntil time.Time) *Lock {
	l := &Lock{
		c: c, key: key, ttl: ttl, fence: fence, validUntil: validUntil,
		lost: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{}),
	}
	go l.keepalive(context.WithoutCancel(ctx))
	return l
}

// Fence returns the lock's fencing token: the revision that created the
// key. Each successive holder of a lock gets a strictly greater token.
// Check it in the resource the lock protects (see [Lock]).
func (l *Lock) Fence() uint64 { return l.fence }

// Key returns the key that holds the lock.
func (l *Lock) Key() string { return l.key }

// Lost is closed when the lock is found lost: its key vanished or was
// replaced, the client was closed, or the keepalive could not renew it
// before the TTL ran out. A successful Unlock does not close it; an Unlock
// that finds the lock already lost does.
func (l *Lock) Lost() <-chan struct{} { return l.lost }

// keepalive renews the lock every TTL/3 until Unlock or until the lock is
// lost.
func (l *Lock) keepalive(ctx context.Context) {
	defer close(l.done)
	t := time.NewTicker(l.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		l.mu.Lock()
		expired := !time.Now().Before(l.validUntil)
		l.mu.Unlock()
		if expired {
			l.markLost()
			return
		}
		err := l.renew(ctx)
		switch {
		case err == nil:
		case errors.Is(err, errLockGone), errors.Is(err, ErrClosed),
			errors.Is(err, ErrUnauthorized), errors.Is(err, ErrForbidden):
			l.markLost()
			return
		default:
			l.c.opts.logger.Debug("concord: lock keepalive failed", "key", l.key, "error", err)
		}
	}
}

var (
	// errLockGone: the lock key no longer holds this lock.
	errLockGone = errors.New("lock key gone or replaced")
	// errLockFree: an attempt decided nothing and the lock looks free.
	errLockFree = errors.New("lock free again")
)

// renew touches the key, then checks that the key touched is still this
// lock (Touch is unconditional), and extends validUntil.
func (l *Lock) renew(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, l.ttl/3)
	defer cancel()
	start := time.Now()
	if _, err := l.c.Touch(ctx, l.key, l.ttl); err != nil {
		if errors.Is(err, ErrNotFound) {
			return errLockGone
		}
		return err
	}
	kv, err := l.c.Get(ctx, l.key, Consistency(Strong))
	if errors.Is(err, ErrNotFound) || (err == nil && kv.ModRevision != l.fence) {
		return errLockGone
	}
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.validUntil = start.Add(l.ttl)
	l.mu.Unlock()
	return nil
}

func (l *Lock) markLost() { l.lostOnce.Do(func() { close(l.lost) }) }

// Unlock stops the keepalive and deletes the key if it still holds this
// lock (Delete with IfModRevision(Fence)), so it never removes another
// holder's lock. If the lock was lost before Unlock, Unlock fails with an
// error wrapping [ErrConflict]: the critical section may have overlapped
// another holder's, and Lost is closed. Unlock may be called again after
// an error; after a success it does nothing.
func (l *Lock) Unlock(ctx context.Context) error {
	l.stopOnce.Do(func() { close(l.stop) })
	<-l.done
	l.unlockMu.Lock()
	defer l.unlockMu.Unlock()
	if l.released {
		return nil
	}
	backoff := 20 * time.Millisecond
	for {
		_, err := l.c.Delete(ctx, l.key, IfModRevision(l.fence))
		if err == nil {
			l.released = true
			return nil
		}
		if errors.Is(err, ErrConflict) {
			l.markLost()
			return fmt.Errorf("unlock %q: lock was lost: %w", l.key, err)
		}
		if !errors.Is(err, ErrOutcomeUnknown) {
			return err
		}
		// The delete may have been applied: see whether the key is still ours.
		kv, gerr := l.c.Get(ctx, l.key, Consistency(Strong))
		if errors.Is(gerr, ErrNotFound) || (gerr == nil && kv.ModRevision != l.fence) {
			l.released = true
			return nil
		}
		if !sleep(ctx, jitter(backoff)) {
			return err
		}
		backoff = min(backoff*2, time.Second)
	}
}
