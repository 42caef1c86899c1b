// Package app is the replica binary: it reads flags and CONCORD_*
// environment variables into a replica.Config, starts the replica and stops
// it on SIGINT/SIGTERM.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/concord-kv/concord/services/replica"
)

// Run parses args (without the program name) and env, runs a replica until
// ctx ends or a signal arrives, and returns after it has stopped.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, logLevel, err := parse(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: logLevel}))
	cfg.Logger = logger
	cfg.RaftLogOutput = stderr

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if cfg.PprofAddr != "" {
		stopPprof, err := servePprof(cfg.PprofAddr, logger)
		if err != nil {
			return err
		}
		defer stopPprof()
	}
	node, err := replica.Start(ctx, cfg)
	if err != nil {
		return err
	}
	_, _ = fmt.Fprintf(stdout, "concord replica %s: api %s raft %s data %s\n", node.ID(), node.Addr(), node.RaftAddr(), cfg.DataDir)
	<-ctx.Done()
	logger.Info("shutting down", "node", node.ID())
	return node.Close()
}

// servePprof serves net/http/pprof on addr until the returned func is called.
func servePprof(addr string, logger *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen pprof: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			logger.Warn("pprof server stopped", "error", err)
		}
	}()
	logger.Info("serving pprof", "addr", ln.Addr().String())
	return func() { _ = srv.Close(); <-done }, nil
}

// parse builds the config: flag > environment > default.
func parse(args []string, getenv func(string) string, stderr io.Writer) (replica.Config, slog.Level, error) {
	cfg := replica.DefaultConfig()
	e := &envReader{getenv: getenv}
	envBool, envInt, envDuration := e.boolean, e.integer, e.duration
	env := func(key, def string) string {
		if v := getenv(key); v != "" {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet("replica", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		_, _ = fmt.Fprintf(fs.Output(), `Usage: replica [flags]

Runs one Concord replica: a Raft member that stores keys and serves the
Connect KVService and ClusterService. Every flag can also be set with the
environment variable named in brackets; a flag wins over the variable.

Flags:
`)
		fs.PrintDefaults()
	}
	var (
		peers, join, level, consistency, algo string
		bootstrap, compression                bool
		snapThreshold                         uint64
		snapInterval                          time.Duration
	)
	fs.StringVar(&cfg.NodeID, "node-id", env("CONCORD_NODE_ID", "node1"), "this replica's id in the Raft configuration [CONCORD_NODE_ID]")
	fs.StringVar(&cfg.DataDir, "data-dir", env("CONCORD_DATA_DIR", ""), "directory for the Raft log and snapshots (default ./data/<node-id>) [CONCORD_DATA_DIR]")
	fs.StringVar(&cfg.LogStore, "log-store", env("CONCORD_LOG_STORE", cfg.LogStore), "Raft log store: auto (what the data dir holds; wal in a new one), wal (hashicorp/raft-wal: one fsync per append) or bolt (hashicorp/raft-boltdb: two fsyncs per append, slower writes); a data dir keeps the kind it was created with [CONCORD_LOG_STORE]")
	fs.StringVar(&cfg.APIAddr, "api-addr", env("CONCORD_API_ADDR", "127.0.0.1:7100"), "listen address of the Connect API [CONCORD_API_ADDR]")
	fs.StringVar(&cfg.APIAdvertise, "api-advertise", env("CONCORD_API_ADVERTISE", ""), "base URL peers use to reach the API (default http://<api-addr>) [CONCORD_API_ADVERTISE]")
	fs.StringVar(&cfg.RaftAddr, "raft-addr", env("CONCORD_RAFT_ADDR", "127.0.0.1:7000"), "listen address of the Raft transport [CONCORD_RAFT_ADDR]")
	fs.StringVar(&cfg.RaftAdvertise, "raft-advertise", env("CONCORD_RAFT_ADVERTISE", ""), "address peers dial for Raft (default the listen address) [CONCORD_RAFT_ADVERTISE]")
	fs.StringVar(&peers, "peers", env("CONCORD_PEERS", ""), "initial members as id=raft-host:port,... including this node; empty bootstraps a single-node cluster [CONCORD_PEERS]")
	fs.BoolVar(&bootstrap, "bootstrap", envBool("CONCORD_BOOTSTRAP", true), "bootstrap the cluster from --peers when the data dir is empty [CONCORD_BOOTSTRAP]")
	fs.IntVar(&cfg.BootstrapExpect, "bootstrap-expect", envInt("CONCORD_BOOTSTRAP_EXPECT", 0), "with --peers: refuse to start unless it lists exactly this many members (0: no check); with --consul-addr: bootstrap once this many replicas are registered (0: only join) [CONCORD_BOOTSTRAP_EXPECT]")
	fs.StringVar(&join, "join", env("CONCORD_JOIN", ""), "API URLs of running members, comma-separated: with an empty data dir, do not bootstrap but ask the cluster to add this replica [CONCORD_JOIN]")
	fs.BoolVar(&cfg.Nonvoter, "nonvoter", envBool("CONCORD_NONVOTER", false), "with --join, join as a non-voter (receives data, serves eventual reads, does not count for quorum) [CONCORD_NONVOTER]")
	fs.StringVar(&cfg.ConsulAddr, "consul-addr", env("CONCORD_CONSUL_ADDR", ""), "Consul agent HTTP API (host:port or http(s)://host:port): register there and bootstrap or join with the replicas registered; excludes --peers and --join [CONCORD_CONSUL_ADDR]")
	fs.StringVar(&cfg.ConsulService, "consul-service", env("CONCORD_CONSUL_SERVICE", "concord-replica"), "Consul service name the replicas register as [CONCORD_CONSUL_SERVICE]")
	fs.StringVar(&cfg.ConsulToken, "consul-token", env("CONCORD_CONSUL_TOKEN", ""), "Consul ACL token (optional) [CONCORD_CONSUL_TOKEN]")
	fs.DurationVar(&cfg.ConsulCheckInterval, "consul-check-interval", envDuration("CONCORD_CONSUL_CHECK_INTERVAL", 10*time.Second), "how often Consul probes this replica's /health [CONCORD_CONSUL_CHECK_INTERVAL]")
	fs.BoolVar(&compression, "compression", envBool("CONCORD_COMPRESSION_ENABLED", cfg.CompressionEnabled), "compress values larger than the threshold [CONCORD_COMPRESSION_ENABLED]")
	fs.StringVar(&algo, "compression-algorithm", env("CONCORD_COMPRESSION_ALGORITHM", cfg.CompressionAlgorithm), "zlib, gzip, zstd or none [CONCORD_COMPRESSION_ALGORITHM]")
	fs.IntVar(&cfg.CompressionLevel, "compression-level", envInt("CONCORD_COMPRESSION_LEVEL", cfg.CompressionLevel), "0-9 for zlib/gzip, 1-4 for zstd, -1 default [CONCORD_COMPRESSION_LEVEL]")
	fs.IntVar(&cfg.CompressionThreshold, "compression-threshold", envInt("CONCORD_COMPRESSION_THRESHOLD", cfg.CompressionThreshold), "compress values larger than this many bytes [CONCORD_COMPRESSION_THRESHOLD]")
	fs.IntVar(&cfg.MaxValueBytes, "max-value-bytes", envInt("CONCORD_MAX_VALUE_BYTES", cfg.MaxValueBytes), "largest value accepted, at most 1048576 [CONCORD_MAX_VALUE_BYTES]")
	fs.StringVar(&consistency, "default-consistency", env("CONCORD_DEFAULT_CONSISTENCY", cfg.DefaultConsistency), "read level when a request names none: eventual, leader or strong [CONCORD_DEFAULT_CONSISTENCY]")
	fs.Uint64Var(&snapThreshold, "snapshot-threshold", uint64(envInt("CONCORD_SNAPSHOT_THRESHOLD", 8192)), "log entries between snapshots [CONCORD_SNAPSHOT_THRESHOLD]")
	fs.DurationVar(&snapInterval, "snapshot-interval", envDuration("CONCORD_SNAPSHOT_INTERVAL", 2*time.Minute), "how often to check whether to snapshot [CONCORD_SNAPSHOT_INTERVAL]")
	fs.Uint64Var(&cfg.TrailingLogs, "trailing-logs", uint64(envInt("CONCORD_TRAILING_LOGS", 10240)), "log entries kept after a snapshot, for followers that lag [CONCORD_TRAILING_LOGS]")
	fs.DurationVar(&cfg.HeartbeatTimeout, "heartbeat-timeout", envDuration("CONCORD_HEARTBEAT_TIMEOUT", 0), "follower's wait for the leader before an election; 0 = 500ms [CONCORD_HEARTBEAT_TIMEOUT]")
	fs.DurationVar(&cfg.ElectionTimeout, "election-timeout", envDuration("CONCORD_ELECTION_TIMEOUT", 0), "candidate's wait for votes; 0 = max(500ms, heartbeat timeout) [CONCORD_ELECTION_TIMEOUT]")
	fs.DurationVar(&cfg.LeaderLeaseTimeout, "leader-lease-timeout", envDuration("CONCORD_LEADER_LEASE_TIMEOUT", 0), "leader steps down after this long without a quorum; 0 = min(500ms, heartbeat/2) [CONCORD_LEADER_LEASE_TIMEOUT]")
	fs.StringVar(&cfg.PprofAddr, "pprof-addr", env("CONCORD_PPROF_ADDR", ""), "serve net/http/pprof on this address, apart from the API (off when empty) [CONCORD_PPROF_ADDR]")
	fs.StringVar(&level, "log-level", env("CONCORD_LOG_LEVEL", "info"), "debug, info, warn or error [CONCORD_LOG_LEVEL]")
	if err := fs.Parse(args); err != nil {
		return cfg, 0, err
	}
	if e.err != nil {
		return cfg, 0, e.err
	}
	if fs.NArg() > 0 {
		return cfg, 0, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if cfg.DataDir == "" {
		cfg.DataDir = "data/" + cfg.NodeID
	}
	cfg.Bootstrap = bootstrap
	cfg.CompressionEnabled = compression
	cfg.CompressionAlgorithm = algo
	cfg.DefaultConsistency = consistency
	cfg.SnapshotThreshold, cfg.SnapshotInterval = snapThreshold, snapInterval
	cfg.RaftLogLevel = level
	var err error
	if cfg.Peers, err = ParsePeers(peers); err != nil {
		return cfg, 0, err
	}
	for _, u := range strings.Split(join, ",") {
		if u = strings.TrimSpace(u); u != "" {
			cfg.Join = append(cfg.Join, u)
		}
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return cfg, 0, fmt.Errorf("log level: %w", err)
	}
	return cfg, lv, cfg.Validate()
}

// ParsePeers reads "id=host:port,id=host:port".
func ParsePeers(s string) ([]replica.Peer, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []replica.Peer
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		id, addr, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || id == "" || addr == "" {
			return nil, fmt.Errorf("peer %q: want id=host:port", part)
		}
		if seen[id] {
			return nil, fmt.Errorf("peer id %q listed twice", id)
		}
		seen[id] = true
		out = append(out, replica.Peer{ID: id, RaftAddress: addr})
	}
	return out, nil
}

// envReader parses typed environment variables, remembering the first bad one.
type envReader struct {
	getenv func(string) string
	err    error
}

func (e *envReader) bad(key, v string, err error) {
	if e.err == nil {
		e.err = fmt.Errorf("environment variable %s=%q: %w", key, v, err)
	}
}

func (e *envReader) boolean(key string, def bool) bool {
	v := e.getenv(key)
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		e.bad(key, v, err)
		return def
	}
	return b
}

func (e *envReader) integer(key string, def int) int {
	v := e.getenv(key)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		e.bad(key, v, err)
		return def
	}
	return n
}

func (e *envReader) duration(key string, def time.Duration) time.Duration {
	v := e.getenv(key)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		e.bad(key, v, err)
		return def
	}
	return d
}
