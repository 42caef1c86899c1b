// Package app is the gateway binary: it reads flags and environment into a
// gateway.Config, runs the gateway until ctx ends, and shuts it down.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/concord-kv/concord/services/gateway"
)

const usageText = `Usage: gateway [flags]

Serves Concord's REST API (/api/v1, documented at /api/docs), Connect, gRPC
and gRPC-web, the web console (/ui/), /metrics, /health and /ready on one
port, reaching the replicas through the Go SDK. SIGINT or SIGTERM stops it
gracefully.

Flags (each defaults to its environment variable, then to the value shown):
`

// Run runs the gateway until ctx is canceled. Errors are also printed to
// stderr; --help prints the usage and returns nil.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	err := run(ctx, args, getenv, stdout, stderr)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		_, _ = fmt.Fprintln(stderr, "gateway:", err)
		return err
	}
	return nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		_, _ = io.WriteString(stderr, usageText)
		fs.PrintDefaults()
	}
	addr := fs.String("addr", env("CONCORD_GATEWAY_ADDR", ":4000"), "listen address host:port (env CONCORD_GATEWAY_ADDR)")
	replicas := fs.String("replicas", env("CONCORD_REPLICAS", ""), "comma-separated replica API URLs, e.g. http://r1:7001,http://r2:7001 (env CONCORD_REPLICAS, required unless -consul-addr is set)")
	consulAddr := fs.String("consul-addr", env("CONCORD_CONSUL_ADDR", ""), "Consul agent HTTP API (host:port or http(s)://host:port): follow the passing replicas registered there instead of -replicas (env CONCORD_CONSUL_ADDR)")
	consulService := fs.String("consul-service", env("CONCORD_CONSUL_SERVICE", "concord-replica"), "Consul service name of the replicas (env CONCORD_CONSUL_SERVICE)")
	consulToken := fs.String("consul-token", env("CONCORD_CONSUL_TOKEN", ""), "Consul ACL token, optional (env CONCORD_CONSUL_TOKEN)")
	consistency := fs.String("default-consistency", env("CONCORD_DEFAULT_CONSISTENCY", "leader"), "read consistency when a request names none: eventual, leader or strong (env CONCORD_DEFAULT_CONSISTENCY)")
	cors := fs.String("cors-origins", env("CONCORD_CORS_ORIGINS", ""), "comma-separated origins browsers may call from, * for any; empty disables CORS (env CONCORD_CORS_ORIGINS)")
	maxBody := fs.String("max-body-bytes", env("CONCORD_MAX_BODY_BYTES", strconv.Itoa(gateway.DefaultMaxBodyBytes)), "request body limit in bytes (env CONCORD_MAX_BODY_BYTES)")
	timeout := fs.String("request-timeout", env("CONCORD_REQUEST_TIMEOUT", gateway.DefaultRequestTimeout.String()), "bound on a call to the replicas, retries included (env CONCORD_REQUEST_TIMEOUT)")
	logLevel := fs.String("log-level", env("CONCORD_LOG_LEVEL", "info"), "debug, info, warn or error (env CONCORD_LOG_LEVEL)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("log level %q: %w", *logLevel, err)
	}
	body, err := strconv.ParseInt(*maxBody, 10, 64)
	if err != nil || body <= 0 {
		return fmt.Errorf("max body bytes %q: want a positive integer", *maxBody)
	}
	reqTimeout, err := time.ParseDuration(*timeout)
	if err != nil || reqTimeout <= 0 {
		return fmt.Errorf("request timeout %q: want a positive duration such as 10s", *timeout)
	}
	cfg := gateway.Config{
		Addr:               *addr,
		Replicas:           splitList(*replicas),
		ConsulAddr:         *consulAddr,
		ConsulService:      *consulService,
		ConsulToken:        *consulToken,
		DefaultConsistency: *consistency,
		MaxBodyBytes:       body,
		CORSOrigins:        splitList(*cors),
		RequestTimeout:     reqTimeout,
		Logger:             slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})),
	}
	srv, err := gateway.Start(ctx, cfg)
	if err != nil {
		return err
	}
	from := strings.Join(cfg.Replicas, ",")
	if cfg.ConsulAddr != "" {
		from = "from consul " + cfg.ConsulAddr
	}
	_, _ = fmt.Fprintf(stdout, "gateway: serving %s (REST %s/api/v1, replicas %s)\n", srv.Addr(), srv.Addr(), from)
	<-ctx.Done()
	return srv.Close()
}

// splitList splits a comma-separated list, dropping blanks.
func splitList(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
