// Package gateway runs Concord's stateless front door on one port (HTTP/1.1
// and cleartext HTTP/2): the REST API under /api/v1 with its OpenAPI document
// (/api/v1/openapi.json) and Swagger UI (/api/docs); Connect, gRPC and
// gRPC-web for concord.v1 KVService and ClusterService; the web console
// (/ui/); Prometheus metrics (/metrics); and the /health and /ready probes.
//
// Start is what the gateway binary, the dev stack (concord-dev) and the tests
// call. The gateway keeps no state: it reaches the replicas through the Go
// SDK, which routes writes and leader or strong reads to the leader and
// spreads eventual reads over the healthy replicas.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/validate"
	concordv1 "github.com/concord-kv/concord/proto/gen/go/concord/v1"
	concord "github.com/concord-kv/concord/sdk/go"
	"github.com/concord-kv/concord/sdk/go/consul"
	"github.com/concord-kv/concord/services/gateway/internal/backend"
	"github.com/concord-kv/concord/services/gateway/internal/server"
)

// DefaultMaxBodyBytes limits request bodies unless Config.MaxBodyBytes says
// otherwise: room for a 1 MiB value encoded as JSON.
const DefaultMaxBodyBytes = 2 << 20

// DefaultRequestTimeout bounds a call to the replicas unless
// Config.RequestTimeout says otherwise.
const DefaultRequestTimeout = backend.DefaultTimeout

// HTTP server limits.
const (
	// shutdownTimeout bounds how long Close waits for in-flight requests.
	shutdownTimeout = 5 * time.Second
	// readHeaderTimeout bounds the wait for a request's headers (slowloris).
	readHeaderTimeout = 10 * time.Second
	// idleTimeout closes keep-alive connections idle this long.
	idleTimeout = 2 * time.Minute
	// maxHeaderBytes bounds a request's headers.
	maxHeaderBytes = 64 << 10
)

// Config configures a gateway.
type Config struct {
	// Listener is served if set; otherwise Addr (host:port) is listened on.
	Listener net.Listener
	Addr     string
	// Replicas are the replicas' API base URLs (http://host:port). Required
	// unless ConsulAddr is set.
	Replicas []string
	// ConsulAddr, instead of Replicas, is a Consul agent's HTTP API
	// (host:port or http(s)://host:port): the gateway follows the passing
	// instances of ConsulService (default concord-replica) registered there,
	// with ConsulToken (optional) as the ACL token.
	ConsulAddr, ConsulService, ConsulToken string
	// DefaultConsistency for reads that do not ask: eventual, leader or
	// strong (default leader).
	DefaultConsistency string
	// MaxBodyBytes limits request bodies (default DefaultMaxBodyBytes).
	MaxBodyBytes int64
	// CORSOrigins lists the origins browsers may call from; "*" allows any,
	// empty disables CORS.
	CORSOrigins []string
	// RequestTimeout bounds a call to the replicas (retries included) whose
	// request has no deadline (default 10s).
	RequestTimeout time.Duration
	// Logger receives the gateway's logs (default slog.Default()).
	Logger *slog.Logger
}

// ParseConsistency reads eventual, leader or strong; "" is unspecified.
func ParseConsistency(s string) (concordv1.Consistency, error) {
	switch s {
	case "":
		return concordv1.Consistency_CONSISTENCY_UNSPECIFIED, nil
	case "eventual":
		return concordv1.Consistency_CONSISTENCY_EVENTUAL, nil
	case "leader":
		return concordv1.Consistency_CONSISTENCY_LEADER, nil
	case "strong":
		return concordv1.Consistency_CONSISTENCY_STRONG, nil
	}
	return 0, fmt.Errorf("unknown consistency %q (want eventual, leader or strong)", s)
}

// Validate checks the config.
func (c *Config) Validate() error {
	if c.Listener == nil && c.Addr == "" {
		return errors.New("gateway: an address or a listener is required")
	}
	if c.ConsulAddr != "" && len(c.Replicas) > 0 {
		return errors.New("gateway: replica URLs and a Consul address exclude each other: give one or the other")
	}
	if len(c.Replicas) == 0 && c.ConsulAddr == "" {
		return errors.New("gateway: at least one replica URL (or a Consul address) is required")
	}
	for _, r := range c.Replicas {
		if u, err := url.Parse(r); err != nil || u.Host == "" || u.Scheme != "http" && u.Scheme != "https" {
			return fmt.Errorf("gateway: replica %q is not an http(s)://host:port URL", r)
		}
	}
	if c.MaxBodyBytes < 0 {
		return fmt.Errorf("gateway: max body bytes %d is negative", c.MaxBodyBytes)
	}
	if _, err := ParseConsistency(c.DefaultConsistency); err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	return nil
}

// Server is a running gateway.
type Server struct {
	srv      *http.Server
	backend  *backend.Backend
	addr     string
	serveErr chan error
}

// Start listens and serves in the background. It returns once the listener
// is bound; the replicas need not be up yet (GET /ready says when they are).
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	bopts := backend.Options{
		DefaultConsistency: sdkLevel(cfg.DefaultConsistency), Timeout: cfg.RequestTimeout, Logger: cfg.Logger,
	}
	if cfg.ConsulAddr != "" {
		w, err := consul.NewWatcher(consul.Config{
			Address: cfg.ConsulAddr, Service: cfg.ConsulService, Token: cfg.ConsulToken, Logger: cfg.Logger,
		})
		if err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		bopts.Seeds, bopts.Follow = w.Endpoints, func(ctx context.Context, c *concord.Client) { _ = w.Follow(ctx, c) }
	}
	be, err := backend.New(cfg.Replicas, bopts)
	if err != nil {
		return nil, err
	}
	handler, err := server.New(ctx, server.Options{
		KV: be, Cluster: be,
		Interceptors: []connect.Interceptor{validate.NewInterceptor()},
		MaxBodyBytes: cfg.MaxBodyBytes, CORSOrigins: cfg.CORSOrigins,
		DefaultConsistency: cfg.DefaultConsistency, Logger: cfg.Logger,
	})
	if err != nil {
		_ = be.Close()
		return nil, fmt.Errorf("gateway: %w", err)
	}
	ln := cfg.Listener
	if ln == nil {
		if ln, err = (&net.ListenConfig{}).Listen(ctx, "tcp", cfg.Addr); err != nil {
			_ = be.Close()
			return nil, fmt.Errorf("gateway: listen: %w", err)
		}
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	s := &Server{
		srv: &http.Server{
			Handler:           handler,
			Protocols:         &protocols,
			ReadHeaderTimeout: readHeaderTimeout,
			IdleTimeout:       idleTimeout,
			MaxHeaderBytes:    maxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
		},
		backend:  be,
		addr:     baseURL(ln.Addr()),
		serveErr: make(chan error, 1),
	}
	go func() { s.serveErr <- s.srv.Serve(ln) }()
	return s, nil
}

// sdkLevel maps a validated consistency name to the SDK's level.
func sdkLevel(name string) concord.ConsistencyLevel {
	switch c, _ := ParseConsistency(name); c {
	case concordv1.Consistency_CONSISTENCY_EVENTUAL:
		return concord.Eventual
	case concordv1.Consistency_CONSISTENCY_STRONG:
		return concord.Strong
	}
	return concord.Leader
}

// baseURL makes a dialable URL of a listener address: an unspecified host
// (0.0.0.0, ::) becomes the loopback address.
func baseURL(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return "http://" + a.String()
	}
	ip := tcp.IP
	if ip == nil || ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
	}
	return "http://" + net.JoinHostPort(ip.String(), strconv.Itoa(tcp.Port))
}

// Addr is the gateway's base URL, e.g. http://127.0.0.1:4000.
func (s *Server) Addr() string { return s.addr }

// Served reports how many calls each replica has served through this
// gateway, by replica URL (nil until a replica has answered).
func (s *Server) Served() map[string]uint64 { return s.backend.Served() }

// Close stops accepting requests, waits (up to 5 s) for in-flight ones and
// releases the connections to the replicas. Call it once.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.srv.Close()
	}
	if serr := <-s.serveErr; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if berr := s.backend.Close(); berr != nil && err == nil {
		err = berr
	}
	return err
}
