package concord

import (
	"crypto/tls"
	"log/slog"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// ConsistencyLevel is how fresh a read must be.
type ConsistencyLevel int

// The read levels.
const (
	// Default uses the client's default (WithDefaultConsistency), which is
	// Leader unless set.
	Default ConsistencyLevel = iota
	// Eventual reads any replica's local state; it may be stale. Eventual
	// reads are spread over the healthy replicas.
	Eventual
	// Leader reads state at least as new as the leader's, without a quorum round.
	Leader
	// Strong reads are linearizable.
	Strong
)

func (l ConsistencyLevel) String() string {
	switch l {
	case Eventual:
		return "eventual"
	case Leader:
		return "leader"
	case Strong:
		return "strong"
	}
	return "default"
}

// RetryPolicy bounds the client's retries. Retries always stop at the call's
// deadline.
type RetryPolicy struct {
	// MaxAttempts per call, including the first (0 = until the deadline).
	MaxAttempts int
	// InitialBackoff before the second attempt; it doubles up to MaxBackoff.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
}

// DefaultRetryPolicy retries until the deadline, from 20 ms up to 1 s apart.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{InitialBackoff: 20 * time.Millisecond, MaxBackoff: time.Second}
}

type options struct {
	token       string
	timeout     time.Duration
	consistency ConsistencyLevel
	httpClient  *http.Client
	tlsConfig   *tls.Config
	retry       RetryPolicy
	logger      *slog.Logger
	tracer      trace.TracerProvider
	refresh     time.Duration
	discovery   bool
	coalesce    bool
}

// Option configures a Client.
type Option func(*options)

// WithToken sends a bearer token with every request.
func WithToken(token string) Option { return func(o *options) { o.token = token } }

// WithTimeout bounds each call that has no earlier context deadline
// (default 10 s), retries included.
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithDefaultConsistency sets the read level of calls that name none
// (default Leader).
func WithDefaultConsistency(l ConsistencyLevel) Option {
	return func(o *options) { o.consistency = l }
}

// WithHTTPClient replaces the HTTP client. The default speaks HTTP/2 to
// https:// endpoints and cleartext HTTP/2 (h2c) to http:// endpoints.
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.httpClient = c } }

// WithTLSConfig sets the TLS configuration of the default HTTP client.
func WithTLSConfig(c *tls.Config) Option { return func(o *options) { o.tlsConfig = c } }

// WithRetryPolicy replaces the retry policy.
func WithRetryPolicy(p RetryPolicy) Option { return func(o *options) { o.retry = p } }

// WithLogger logs membership changes and retries at debug level.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithTracerProvider records a span per call (concord.api.<op>).
func WithTracerProvider(tp trace.TracerProvider) Option { return func(o *options) { o.tracer = tp } }

// WithRefreshInterval sets how often the member list and leader are
// refreshed in the background (default 5 s).
func WithRefreshInterval(d time.Duration) Option { return func(o *options) { o.refresh = d } }

// WithDiscovery turns member discovery on (default) or off. Off, the client
// uses exactly the endpoints it was given, as it does when they are gateways.
func WithDiscovery(on bool) Option { return func(o *options) { o.discovery = on } }

// WithCoalescing turns request coalescing on (default) or off: concurrent
// Get calls with the same options, and concurrent unconditional Put calls,
// share one BatchGet or BatchPut RPC when they would otherwise wait. Each
// call still gets its own result and error; a coalesced call is traced by
// the span of the RPC that carried it. See "Coalescing" in the package
// documentation.
func WithCoalescing(on bool) Option { return func(o *options) { o.coalesce = on } }

func defaultOptions() options {
	return options{
		timeout:     10 * time.Second,
		consistency: Leader,
		retry:       DefaultRetryPolicy(),
		logger:      slog.New(slog.DiscardHandler),
		tracer:      noop.NewTracerProvider(),
		refresh:     5 * time.Second,
		discovery:   true,
		coalesce:    true,
	}
}

func (o *options) validate() error {
	switch {
	case o.timeout <= 0:
		return invalid("timeout %v must be positive", o.timeout)
	case o.consistency < Default || o.consistency > Strong:
		return invalid("unknown consistency level %d", o.consistency)
	case o.retry.MaxAttempts < 0 || o.retry.InitialBackoff < 0 || o.retry.MaxBackoff < o.retry.InitialBackoff:
		return invalid("retry policy %+v: attempts and backoffs must be >= 0 and max >= initial", o.retry)
	case o.refresh <= 0:
		return invalid("refresh interval %v must be positive", o.refresh)
	case o.logger == nil:
		return invalid("nil logger")
	case o.tracer == nil:
		return invalid("nil tracer provider")
	}
	return nil
}

// op holds the per-call options.
type op struct {
	ttl           *time.Duration
	ifAbsent      bool
	ifModRevision uint64
	compress      *bool
	contentType   string
	consistency   ConsistencyLevel
	minRevision   uint64
	keysOnly      bool
	limit         int
	withTTL       bool
	used          []string // names of the options given, for error messages
}

// OpOption configures one call. Options that do not apply to a call make it
// fail with ErrInvalidArgument before any network call.
type OpOption func(*op)

func (o *op) mark(name string) { o.used = append(o.used, name) }

// WithTTL makes a written key expire after d (whole seconds, at least 1 s),
// counted from when the leader accepted the write. The key expires at one
// point of the Raft log, the same for every replica, read and conditional
// write; on an idle cluster it may stay readable up to about 100 ms longer.
func WithTTL(d time.Duration) OpOption {
	return func(o *op) { o.ttl = &d; o.mark("WithTTL") }
}

// IfAbsent writes only if the key does not exist (else ErrConflict).
func IfAbsent() OpOption { return func(o *op) { o.ifAbsent = true; o.mark("IfAbsent") } }

// IfModRevision writes (or deletes) only if the key's ModRevision is rev
// (else ErrConflict).
func IfModRevision(rev uint64) OpOption {
	return func(o *op) { o.ifModRevision = rev; o.mark("IfModRevision") }
}

// Compress forces (true) or disables (false) compression of this value;
// without it the server compresses values above its threshold.
func Compress(on bool) OpOption { return func(o *op) { o.compress = &on; o.mark("Compress") } }

// WithContentType records the value's media type (default
// application/octet-stream for raw bytes, application/json for Typed).
func WithContentType(ct string) OpOption {
	return func(o *op) { o.contentType = ct; o.mark("WithContentType") }
}

// Consistency sets the read level of this call.
func Consistency(l ConsistencyLevel) OpOption {
	return func(o *op) { o.consistency = l; o.mark("Consistency") }
}

// MinRevision makes a read wait until the serving replica has applied rev:
// read-your-writes on any replica.
func MinRevision(rev uint64) OpOption {
	return func(o *op) { o.minRevision = rev; o.mark("MinRevision") }
}

// KeysOnly makes List return keys and metadata without values.
func KeysOnly() OpOption { return func(o *op) { o.keysOnly = true; o.mark("KeysOnly") } }

// WithPageSize sets how many keys List fetches per request (1..1000, default 100).
func WithPageSize(n int) OpOption { return func(o *op) { o.limit = n; o.mark("WithPageSize") } }

// WithRemainingTTL makes List return each key's remaining TTL.
func WithRemainingTTL() OpOption { return func(o *op) { o.withTTL = true; o.mark("WithRemainingTTL") } }

// buildOp applies opts and checks that each is one the call accepts.
func buildOp(call string, allowed map[string]bool, opts []OpOption) (*op, error) {
	o := &op{}
	for _, f := range opts {
		if f == nil {
			return nil, invalid("%s: nil option", call)
		}
		f(o)
	}
	for _, name := range o.used {
		if !allowed[name] {
			return nil, invalid("%s does not take %s", call, name)
		}
	}
	if o.ttl != nil && (*o.ttl < time.Second || *o.ttl%time.Second != 0) {
		return nil, invalid("%s: TTL %v must be a whole number of seconds, at least 1s", call, *o.ttl)
	}
	if o.consistency < Default || o.consistency > Strong {
		return nil, invalid("%s: unknown consistency level %d", call, o.consistency)
	}
	if o.limit < 0 || o.limit > 1000 {
		return nil, invalid("%s: page size %d out of range 1..1000", call, o.limit)
	}
	if o.ifAbsent && o.ifModRevision != 0 {
		return nil, invalid("%s: IfAbsent and IfModRevision exclude each other", call)
	}
	return o, nil
}

func allow(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

var (
	putOptions    = allow("WithTTL", "IfAbsent", "IfModRevision", "Compress", "WithContentType")
	readOptions   = allow("Consistency", "MinRevision")
	deleteOptions = allow("IfModRevision")
	listOptions   = allow("Consistency", "KeysOnly", "WithPageSize", "WithRemainingTTL")
)
