package concord

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	concordv1 "github.com/concord-kv/concord/proto/gen/go/concord/v1"
	"github.com/concord-kv/concord/proto/gen/go/concord/v1/concordv1connect"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Client talks to a Concord cluster. It is safe for concurrent use; create
// one per process and Close it when done.
type Client struct {
	opts   options
	http   connect.HTTPClient
	tracer trace.Tracer
	seeds  []string

	mu        sync.RWMutex
	endpoints []*endpoint // known replicas (or the seeds, for gateways)
	byURL     map[string]*endpoint
	leader    *endpoint // nil when unknown
	direct    bool      // endpoints are replicas: route to the leader ourselves

	refreshMu   sync.Mutex
	lastRefresh time.Time
	// incomplete: the last status named members without an API address.
	incomplete atomic.Bool
	// apiByID remembers each member's API address and the applied index of
	// the Status answer it came from, so an answer from a replica that has
	// not applied a member's registration yet does not drop that member
	// from the list. Guarded by refreshMu.
	apiByID map[string]learnedAddr

	// co coalesces concurrent calls into batch RPCs; nil when disabled.
	co *coalescer

	stop chan struct{}
	done chan struct{}
}

type endpoint struct {
	url     string
	kv      concordv1connect.KVServiceClient
	cluster concordv1connect.ClusterServiceClient
	// latency is an exponentially weighted moving average in nanoseconds.
	latency atomic.Int64
	// downUntil marks an endpoint unreachable until then (unix nanos).
	downUntil atomic.Int64
	// served counts requests served, for tests and metrics.
	served atomic.Uint64
}

func (e *endpoint) observe(d time.Duration) {
	e.served.Add(1)
	old := e.latency.Load()
	if old == 0 {
		e.latency.Store(int64(d))
		return
	}
	e.latency.Store(old + (int64(d)-old)/8)
}

func (e *endpoint) healthy(now time.Time) bool { return e.downUntil.Load() < now.UnixNano() }

// New connects to a cluster through endpoints: base URLs of replicas or
// gateways (http://host:port). With replicas, the client learns every member
// from Status and keeps the list and the leader fresh in the background;
// with gateways it uses the given URLs. New fails if no endpoint answers
// before ctx ends.
func New(ctx context.Context, endpoints []string, opts ...Option) (*Client, error) {
	o := defaultOptions()
	for _, f := range opts {
		if f == nil {
			return nil, invalid("nil option")
		}
		f(&o)
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	if len(endpoints) == 0 {
		return nil, invalid("no endpoints")
	}
	seeds := make([]string, 0, len(endpoints))
	for _, e := range endpoints {
		u, err := normalizeURL(e)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(seeds, u) {
			seeds = append(seeds, u)
		}
	}
	c := &Client{
		opts: o, seeds: seeds, byURL: map[string]*endpoint{},
		tracer: o.tracer.Tracer("github.com/concord-kv/concord/sdk/go"),
		stop:   make(chan struct{}), done: make(chan struct{}),
	}
	if o.httpClient != nil {
		c.http = o.httpClient
	} else {
		c.http = defaultHTTPClient(o)
	}
	if o.coalesce {
		c.co = newCoalescer(c)
	}
	c.setEndpoints(seeds, "", false)
	if err := c.refresh(ctx, true); err != nil {
		return nil, err
	}
	go c.refreshLoop()
	return c, nil
}

func normalizeURL(raw string) (string, error) {
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", invalid("endpoint %q is not an http(s) URL", raw)
	}
	return strings.TrimRight(u.Scheme+"://"+u.Host+u.Path, "/"), nil
}

func defaultHTTPClient(o options) *http.Client {
	var p http.Protocols
	p.SetHTTP2(true)
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{
		Protocols:           &p,
		TLSClientConfig:     o.tlsConfig,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
	}}
}

// Close stops the background refresh. Calls after Close fail with ErrClosed.
func (c *Client) Close() error {
	select {
	case <-c.stop:
	default:
		close(c.stop)
		<-c.done
	}
	return nil
}

func (c *Client) newEndpoint(u string) *endpoint {
	var opts []connect.ClientOption
	if c.opts.token != "" {
		opts = append(opts, connect.WithInterceptors(bearer(c.opts.token)))
	}
	return &endpoint{
		url:     u,
		kv:      concordv1connect.NewKVServiceClient(c.http, u, opts...),
		cluster: concordv1connect.NewClusterServiceClient(c.http, u, opts...),
	}
}

func bearer(token string) connect.UnaryInterceptorFunc {
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			req.Header().Set("Authorization", "Bearer "+token)
			return next(ctx, req)
		}
	}
}

// setEndpoints replaces the endpoint list, keeping the state of endpoints
// that stay.
func (c *Client) setEndpoints(urls []string, leader string, direct bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	eps := make([]*endpoint, 0, len(urls))
	byURL := make(map[string]*endpoint, len(urls))
	for _, u := range urls {
		e, ok := c.byURL[u]
		if !ok {
			e = c.newEndpoint(u)
		}
		eps = append(eps, e)
		byURL[u] = e
	}
	c.endpoints, c.byURL, c.direct = eps, byURL, direct
	c.leader = byURL[leader]
}

func (c *Client) refreshLoop() {
	defer close(c.done)
	first := c.opts.refresh
	if c.incomplete.Load() {
		first = min(first, 200*time.Millisecond)
	}
	t := time.NewTimer(first)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			// While some members have not registered their API address yet
			// (a cluster that is starting), look again soon.
			next := c.opts.refresh
			if c.incomplete.Load() {
				next = min(next, 200*time.Millisecond)
			}
			t.Reset(next)
			ctx, cancel := context.WithTimeout(context.Background(), c.opts.timeout)
			if err := c.refresh(ctx, true); err != nil {
				c.opts.logger.Debug("concord: refresh failed", "error", err)
			}
			cancel()
		}
	}
}

// refresh asks the endpoints for the cluster status and updates the member
// list and leader. Unless force is set it does nothing if another refresh
// finished in the last 50 ms (callers that saw a failover all ask at once).
func (c *Client) refresh(ctx context.Context, force bool) error {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	if !force && time.Since(c.lastRefresh) < 50*time.Millisecond {
		return nil
	}
	c.mu.RLock()
	candidates := append([]*endpoint(nil), c.endpoints...)
	c.mu.RUnlock()
	for _, s := range c.seeds {
		if !slices.ContainsFunc(candidates, func(e *endpoint) bool { return e.url == s }) {
			candidates = append(candidates, c.newEndpoint(s))
		}
	}
	rand.Shuffle(len(candidates), func(i, j int) { candidates[i], candidates[j] = candidates[j], candidates[i] })
	var errs []error
	for _, e := range candidates {
		sctx, cancel := context.WithTimeout(ctx, min(c.opts.timeout, 2*time.Second))
		resp, err := e.cluster.Status(sctx, connect.NewRequest(&concordv1.StatusRequest{}))
		cancel()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c.learn(e.url, resp.Msg)
		c.lastRefresh = time.Now()
		return nil
	}
	return fmt.Errorf("%w: no endpoint answered: %w", ErrNoLeader, errors.Join(errs...))
}

// learnedAddr is a member's API address as of a replica's applied index.
type learnedAddr struct {
	addr    string
	applied uint64
}

// learn updates membership from a Status answer given by the endpoint at
// from. If from is one of the members' API addresses the endpoints are
// replicas and the client routes itself; otherwise (a gateway) it keeps
// the seeds. The caller holds refreshMu.
func (c *Client) learn(from string, st *concordv1.StatusResponse) {
	var members []string
	direct := false
	incomplete := false
	known := make(map[string]learnedAddr, len(st.GetMembers()))
	for _, m := range st.GetMembers() {
		l := learnedAddr{addr: strings.TrimRight(m.GetApiAddress(), "/"), applied: st.GetAppliedIndex()}
		if prev, ok := c.apiByID[m.GetId()]; ok && prev.addr != l.addr && prev.applied > l.applied {
			// A replica behind the one we learned the address from has not
			// applied the member's newer registration (or any) yet: keep
			// what the one further along said, and look again soon. One as
			// far along as that is believed, even with no address (a
			// member removed and re-added under the same id).
			l, incomplete = prev, true
		}
		if l.addr == "" {
			incomplete = true
			continue
		}
		a := l.addr
		known[m.GetId()] = l
		members = append(members, a)
		if a == from {
			direct = true
		}
	}
	c.incomplete.Store(incomplete && c.opts.discovery)
	if !c.opts.discovery || !direct {
		c.setEndpoints(c.seeds, "", false)
		return
	}
	c.apiByID = known
	c.setEndpoints(members, strings.TrimRight(st.GetLeaderApiAddress(), "/"), true)
}

// pick chooses where to send one attempt. Writes and leader/strong reads go
// to the leader when known; eventual reads use the power of two choices over
// healthy endpoints by observed latency.
func (c *Client) pick(toLeader bool, attempt int) *endpoint {
	now := time.Now()
	c.mu.RLock()
	defer c.mu.RUnlock()
	if toLeader && c.leader != nil && c.direct && c.leader.healthy(now) {
		return c.leader
	}
	healthy := make([]*endpoint, 0, len(c.endpoints))
	for _, e := range c.endpoints {
		if e.healthy(now) {
			healthy = append(healthy, e)
		}
	}
	if len(healthy) == 0 {
		healthy = c.endpoints
	}
	if toLeader || len(healthy) == 1 {
		return healthy[(attempt+rand.IntN(len(healthy)))%len(healthy)]
	}
	a, b := rand.IntN(len(healthy)), rand.IntN(len(healthy)-1)
	if b >= a {
		b++
	}
	if healthy[b].latency.Load() < healthy[a].latency.Load() {
		return healthy[b]
	}
	return healthy[a]
}

// forgetLeader drops the leader so the next attempt asks again.
func (c *Client) forgetLeader(e *endpoint) {
	c.mu.Lock()
	if c.leader == e {
		c.leader = nil
	}
	c.mu.Unlock()
}

type callKind int

const (
	readCall  callKind = iota // always retried
	writeCall                 // retried only while certainly not applied
)

// do runs one call with routing, retries and tracing. fn performs one
// attempt against an endpoint.
func (c *Client) do(ctx context.Context, name string, kind callKind, toLeader bool, fn func(context.Context, *endpoint) error) error {
	select {
	case <-c.stop:
		return ErrClosed
	default:
	}
	ctx, span := c.tracer.Start(ctx, "concord.api."+name, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("concord.operation", name)))
	defer span.End()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.opts.timeout)
		defer cancel()
	}
	err := c.attempts(ctx, name, kind, toLeader, fn)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	return err
}

func (c *Client) attempts(ctx context.Context, name string, kind callKind, toLeader bool, fn func(context.Context, *endpoint) error) error {
	backoff := c.opts.retry.InitialBackoff
	var last error
	uncertain := false
	for attempt := 0; ; attempt++ {
		e := c.pick(toLeader, attempt)
		start := time.Now()
		err := fn(ctx, e)
		if err == nil {
			e.observe(time.Since(start))
			return nil
		}
		last = err
		switch classify(err) {
		case permanent:
			e.observe(time.Since(start))
			return wrap(name, err)
		case notApplied:
			var ce *connect.Error
			if !errors.As(err, &ce) || !connect.IsWireError(ce) {
				e.downUntil.Store(time.Now().Add(time.Second).UnixNano()) // unreachable
			}
			c.forgetLeader(e)
		case unknown:
			if kind == writeCall {
				return unknownOutcome(name, err)
			}
			uncertain = true
			c.forgetLeader(e)
		}
		if ctx.Err() != nil {
			break
		}
		if max := c.opts.retry.MaxAttempts; max > 0 && attempt+1 >= max {
			break
		}
		c.opts.logger.Debug("concord: retrying", "op", name, "endpoint", e.url, "error", err)
		if toLeader {
			_ = c.refresh(ctx, false)
		}
		if !sleep(ctx, jitter(backoff)) {
			break
		}
		backoff = min(backoff*2, c.opts.retry.MaxBackoff)
	}
	if uncertain && kind == readCall {
		return fmt.Errorf("%s: %w: %w", name, ErrTimeout, last)
	}
	return fmt.Errorf("%s: %w: %w", name, ErrNoLeader, last)
}

func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d/2+1)
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

// Endpoints lists the URLs the client currently routes to.
func (c *Client) Endpoints() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]string, len(c.endpoints))
	for i, e := range c.endpoints {
		out[i] = e.url
	}
	return out
}

// Served reports how many requests each endpoint has served, by URL.
func (c *Client) Served() map[string]uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make(map[string]uint64, len(c.endpoints))
	for _, e := range c.endpoints {
		out[e.url] = e.served.Load()
	}
	return out
}
