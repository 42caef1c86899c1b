// Package consul finds Concord replicas in Consul and keeps a
// [concord.Client] pointed at them.
//
// Replicas started with --consul-addr register as instances of the service
// concord-replica, with their API base URL in the service meta "api_addr"
// and an HTTP check on their /health endpoint. A [Watcher] reads the
// passing instances with blocking queries (GET /v1/health/service/<name>
// ?passing&index=...) through the official client library,
// github.com/hashicorp/consul/api, which speaks the HTTP API of Consul 1.x:
//
//	w, err := consul.NewWatcher(consul.Config{Address: "127.0.0.1:8500"})
//	seeds, err := w.Endpoints(ctx)        // waits for a passing replica
//	c, err := concord.New(ctx, seeds)
//	go w.Follow(ctx, c)                    // c.SetSeeds on every change
//
// Follow keeps the client's seeds equal to the passing instances' API URLs.
// When the list becomes empty (every replica failing its check, or all
// deregistered) the client keeps its last seeds rather than none.
package consul

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	concord "github.com/concord-kv/concord/sdk/go"
	"github.com/hashicorp/consul/api"
)

// DefaultService is the Consul service Concord replicas register as.
const DefaultService = "concord-replica"

// MetaAPIAddr is the service meta key holding a replica's API base URL.
const MetaAPIAddr = "api_addr"

// Defaults for Config.
const (
	DefaultWaitTime = 5 * time.Minute
	minBackoff      = 100 * time.Millisecond
	maxBackoff      = 10 * time.Second
)

// Config configures a Watcher.
type Config struct {
	// Address is the Consul agent's HTTP API: host:port or
	// http(s)://host:port. Required.
	Address string
	// Token is the Consul ACL token (optional).
	Token string
	// Service is the replicas' service name (default DefaultService).
	Service string
	// WaitTime bounds one blocking query (default DefaultWaitTime; Consul
	// caps it at 10 minutes).
	WaitTime time.Duration
	// Logger receives query failures (default slog.Default()).
	Logger *slog.Logger
}

// Watcher reads the passing replicas from Consul. It is safe for concurrent
// use and holds no background goroutine of its own.
type Watcher struct {
	cfg    Config
	client *api.Client
}

// NewWatcher returns a Watcher; it does not contact Consul yet.
func NewWatcher(cfg Config) (*Watcher, error) {
	if cfg.Address == "" {
		return nil, errors.New("consul: an agent address is required")
	}
	if cfg.Service == "" {
		cfg.Service = DefaultService
	}
	if cfg.WaitTime <= 0 {
		cfg.WaitTime = DefaultWaitTime
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	// Not pooled: no idle connection outlives a query.
	cc := api.DefaultNonPooledConfig()
	cc.Address = cfg.Address
	if cfg.Token != "" {
		cc.Token = cfg.Token
	}
	client, err := api.NewClient(cc)
	if err != nil {
		return nil, fmt.Errorf("consul: %w", err)
	}
	return &Watcher{cfg: cfg, client: client}, nil
}

// passing returns the passing instances' API URLs, sorted, and the index
// to wait on next. With index > 0 it blocks until the service changes after
// index or the wait time passes.
func (w *Watcher) passing(ctx context.Context, index uint64) ([]string, uint64, error) {
	q := (&api.QueryOptions{WaitIndex: index, WaitTime: w.cfg.WaitTime}).WithContext(ctx)
	entries, meta, err := w.client.Health().Service(w.cfg.Service, "", true, q)
	if err != nil {
		return nil, index, fmt.Errorf("consul: health of service %s: %w", w.cfg.Service, err)
	}
	next := meta.LastIndex
	if next < index { // the index went back (Consul restarted): start over
		next = 0
	}
	var urls []string
	for _, e := range entries {
		if e.Service == nil {
			continue
		}
		if u := strings.TrimRight(e.Service.Meta[MetaAPIAddr], "/"); u != "" && !slices.Contains(urls, u) {
			urls = append(urls, u)
		}
	}
	slices.Sort(urls)
	return urls, next, nil
}

// Endpoints returns the API URLs of the passing replicas, waiting until
// there is at least one or ctx ends.
func (w *Watcher) Endpoints(ctx context.Context) ([]string, error) {
	var index uint64
	backoff := minBackoff
	for {
		urls, next, err := w.passing(ctx, index)
		if err == nil && len(urls) > 0 {
			return urls, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("consul: no passing %s instance: %w", w.cfg.Service, ctx.Err())
		}
		if err != nil {
			w.cfg.Logger.Warn("consul query failed; retrying", "error", err, "retry_in", backoff)
			if !sleep(ctx, backoff) {
				return nil, fmt.Errorf("consul: no passing %s instance: %w", w.cfg.Service, err)
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		index, backoff = next, minBackoff
	}
}

// Follow keeps c's seeds equal to the passing replicas' API URLs, following
// Consul with blocking queries (see [concord.Client.SetSeeds]), until ctx
// ends; cancel ctx before or when closing c. It returns ctx's error, or
// concord.ErrClosed if it finds c closed at a change.
func (w *Watcher) Follow(ctx context.Context, c *concord.Client) error {
	var (
		index   uint64
		current []string
		backoff = minBackoff
	)
	for {
		urls, next, err := w.passing(ctx, index)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			w.cfg.Logger.Warn("consul query failed; retrying", "error", err, "retry_in", backoff)
			if !sleep(ctx, backoff) {
				return ctx.Err()
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		index, backoff = next, minBackoff
		if len(urls) == 0 || slices.Equal(urls, current) {
			continue
		}
		current = urls
		if err := c.SetSeeds(ctx, urls); errors.Is(err, concord.ErrClosed) {
			return err
		} else if err != nil {
			w.cfg.Logger.Debug("new seeds from consul do not answer yet", "seeds", urls, "error", err)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
