package concord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// ServiceInstance is one registered instance of a service, stored as JSON
// under "services/<service>/<instance ID>".
type ServiceInstance struct {
	// ID is the instance ID; Register and Discover fill it in.
	ID      string            `json:"id"`
	Address string            `json:"address"`
	Port    int               `json:"port"`
	Meta    map[string]string `json:"meta,omitempty"`
}

// Registration keeps a service instance registered: a heartbeat renews its
// key's TTL every TTL/3, and writes the key again if it expired (after a
// partition, say). An instance whose process dies disappears from Discover
// when its TTL runs out. The methods are safe for concurrent use.
type Registration struct {
	c     *Client
	key   string
	value []byte
	ttl   time.Duration

	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

func serviceKey(service, instanceID string) (string, error) {
	for _, s := range []string{service, instanceID} {
		if s == "" || strings.Contains(s, "/") {
			return "", invalid("service and instance ID must be non-empty and free of '/': %q, %q", service, instanceID)
		}
	}
	key := "services/" + service + "/" + instanceID
	return key, checkKey(key)
}

// Register registers instanceID of service with info, under the key
// "services/<service>/<instanceID>" with a TTL of ttl (whole seconds, at
// least 1 s), and keeps it registered until Deregister or until the client
// is closed. Registering an instance again replaces its info.
func (c *Client) Register(ctx context.Context, service, instanceID string, info ServiceInstance, ttl time.Duration) (*Registration, error) {
	key, err := serviceKey(service, instanceID)
	if err != nil {
		return nil, err
	}
	info.ID = instanceID
	value, err := json.Marshal(info)
	if err != nil {
		return nil, fmt.Errorf("%w: encode %q: %w", ErrInvalidArgument, key, err)
	}
	r := &Registration{c: c, key: key, value: value, ttl: ttl, stop: make(chan struct{}), done: make(chan struct{})}
	if err := r.put(ctx); err != nil {
		return nil, err
	}
	go r.heartbeat(context.WithoutCancel(ctx))
	return r, nil
}

func (r *Registration) put(ctx context.Context) error {
	_, err := r.c.Put(ctx, r.key, r.value, WithTTL(r.ttl), WithContentType(JSON.ContentType()))
	return err
}

// Key returns the instance's key.
func (r *Registration) Key() string { return r.key }

func (r *Registration) heartbeat(ctx context.Context) {
	defer close(r.done)
	t := time.NewTicker(r.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		cctx, cancel := context.WithTimeout(ctx, r.ttl/3)
		_, err := r.c.Touch(cctx, r.key, r.ttl)
		if errors.Is(err, ErrNotFound) {
			err = r.put(cctx) // expired: register again
		}
		cancel()
		if errors.Is(err, ErrClosed) {
			return
		}
		if err != nil {
			r.c.opts.logger.Debug("concord: registration heartbeat failed", "key", r.key, "error", err)
		}
	}
}

// Deregister stops the heartbeat and deletes the instance's key, so it
// leaves Discover at once. It may be called again after an error.
func (r *Registration) Deregister(ctx context.Context) error {
	r.stopOnce.Do(func() { close(r.stop) })
	<-r.done
	_, err := r.c.Delete(ctx, r.key)
	return err
}

// Discover lists the registered instances of service, in instance ID order.
// Instances whose heartbeat stopped are gone once their TTL has run out.
// Options: Consistency.
func (c *Client) Discover(ctx context.Context, service string, opts ...OpOption) ([]ServiceInstance, error) {
	if service == "" || strings.Contains(service, "/") {
		return nil, invalid("service %q must be non-empty and free of '/'", service)
	}
	if _, err := buildOp("Discover", allow("Consistency"), opts); err != nil {
		return nil, err
	}
	prefix := "services/" + service + "/"
	var out []ServiceInstance
	for kv, err := range c.List(ctx, prefix, opts...) {
		if err != nil {
			return nil, err
		}
		var inst ServiceInstance
		if err := json.Unmarshal(kv.Value, &inst); err != nil {
			return nil, fmt.Errorf("decode %q: %w", kv.Key, err)
		}
		inst.ID = strings.TrimPrefix(kv.Key, prefix)
		out = append(out, inst)
	}
	return out, nil
}
