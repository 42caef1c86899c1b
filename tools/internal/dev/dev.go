// Package dev is concord-dev: the whole Concord product on one machine, for
// development. It runs three replicas in-process (one Raft cluster on
// 127.0.0.1) and the gateway in front of them, with auth off.
//
// The replicas' Raft and API ports are picked free on the first start and
// remembered in <data dir>/cluster.json, so a later start finds the same
// peers and the same data. Nothing else uses a fixed port, so two stacks with
// different API ports and data directories run side by side.
package dev

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/concord-kv/concord/services/gateway"
	"github.com/concord-kv/concord/services/replica"
)

// Defaults.
const (
	DefaultPort    = 4000
	DefaultDataDir = "data/dev"
	replicaCount   = 3
	stateFile      = "cluster.json"
)

const usageText = `Usage: concord-dev [flags]

Runs the Concord dev stack: 3 replicas (one Raft cluster on 127.0.0.1) and
the gateway (REST, Connect, gRPC, gRPC-web, the web console at /ui/, API
docs at /api/docs, /metrics) on 127.0.0.1:PORT, auth off; browsers may call it
from any origin unless CONCORD_CORS_ORIGINS says otherwise.
Data survives restarts. Ctrl-C stops it. Values larger than 1 KiB are
compressed as CONCORD_COMPRESSION_ENABLED, _ALGORITHM (zlib, gzip, zstd,
none), _LEVEL and _THRESHOLD say.

Flags (each defaults to its environment variable, then to the value shown):
`

// Run starts the stack, prints its URLs to stdout and serves until ctx ends,
// then stops the gateway and the replicas. --help prints the usage and
// returns nil. Errors are also printed to stderr.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	err := run(ctx, args, getenv, stdout, stderr)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		_, _ = fmt.Fprintln(stderr, "concord-dev:", err)
		return err
	}
	return nil
}

type config struct {
	port        int
	dataDir     string
	logLevel    slog.Level
	consistency string
	// corsOrigins the browsers may call the gateway from ("*": any).
	corsOrigins []string
	// compression of stored values, from CONCORD_COMPRESSION_* as for the
	// replica binary.
	compressionEnabled   bool
	compressionAlgorithm string
	compressionLevel     int
	compressionThreshold int
}

// parseCompression reads CONCORD_COMPRESSION_{ENABLED,ALGORITHM,LEVEL,THRESHOLD}.
func parseCompression(c *config, getenv func(string) string) error {
	d := replica.DefaultConfig()
	c.compressionEnabled, c.compressionAlgorithm = d.CompressionEnabled, d.CompressionAlgorithm
	c.compressionLevel, c.compressionThreshold = d.CompressionLevel, d.CompressionThreshold
	if v := getenv("CONCORD_COMPRESSION_ENABLED"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("CONCORD_COMPRESSION_ENABLED=%q: want true or false", v)
		}
		c.compressionEnabled = b
	}
	if v := getenv("CONCORD_COMPRESSION_ALGORITHM"); v != "" {
		c.compressionAlgorithm = v
	}
	for name, dst := range map[string]*int{"CONCORD_COMPRESSION_LEVEL": &c.compressionLevel, "CONCORD_COMPRESSION_THRESHOLD": &c.compressionThreshold} {
		if v := getenv(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("%s=%q: want an integer", name, v)
			}
			*dst = n
		}
	}
	rc := replica.DefaultConfig()
	rc.NodeID, rc.DataDir = "check", "check"
	rc.CompressionEnabled, rc.CompressionAlgorithm = c.compressionEnabled, c.compressionAlgorithm
	rc.CompressionLevel, rc.CompressionThreshold = c.compressionLevel, c.compressionThreshold
	return rc.Validate()
}

func parse(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet("concord-dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		_, _ = io.WriteString(stderr, usageText)
		fs.PrintDefaults()
	}
	port := fs.String("port", env("CONCORD_API_PORT", strconv.Itoa(DefaultPort)), "gateway port on 127.0.0.1; 0 picks a free one (env CONCORD_API_PORT)")
	dataDir := fs.String("data-dir", env("CONCORD_DATA_DIR", DefaultDataDir), "data directory, one subdirectory per replica (env CONCORD_DATA_DIR)")
	consistency := fs.String("default-consistency", env("CONCORD_DEFAULT_CONSISTENCY", "leader"), "read consistency when a request names none: eventual, leader or strong (env CONCORD_DEFAULT_CONSISTENCY)")
	cors := fs.String("cors-origins", env("CONCORD_CORS_ORIGINS", "*"), "comma-separated origins browsers may call the gateway from, * for any (env CONCORD_CORS_ORIGINS)")
	logLevel := fs.String("log-level", env("CONCORD_LOG_LEVEL", "warn"), "debug, info, warn or error (env CONCORD_LOG_LEVEL)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var c config
	var err error
	if c.port, err = strconv.Atoi(*port); err != nil || c.port < 0 || c.port > 65535 {
		return config{}, fmt.Errorf("port %q: want 0..65535", *port)
	}
	if c.dataDir, err = filepath.Abs(*dataDir); err != nil {
		return config{}, fmt.Errorf("data dir: %w", err)
	}
	if err := c.logLevel.UnmarshalText([]byte(*logLevel)); err != nil {
		return config{}, fmt.Errorf("log level %q: %w", *logLevel, err)
	}
	if _, err := gateway.ParseConsistency(*consistency); err != nil {
		return config{}, err
	}
	c.consistency = *consistency
	for o := range strings.SplitSeq(*cors, ",") {
		if o = strings.TrimSpace(o); o != "" {
			c.corsOrigins = append(c.corsOrigins, o)
		}
	}
	if err := parseCompression(&c, getenv); err != nil {
		return config{}, err
	}
	return c, nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parse(args, getenv, stderr)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.logLevel}))

	// The gateway port first: it is the one a user is most likely to clash on.
	gwLn, err := (&net.ListenConfig{}).Listen(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.port)))
	if err != nil {
		return fmt.Errorf("gateway port %d: %w (set --port or CONCORD_API_PORT to use another)", cfg.port, err)
	}
	st, lns, err := openState(ctx, cfg.dataDir)
	if err != nil {
		_ = gwLn.Close()
		return err
	}
	nodes, err := startReplicas(ctx, cfg, st, lns, logger, stderr)
	if err != nil {
		_ = gwLn.Close()
		return err
	}
	urls := make([]string, len(nodes))
	for i, n := range nodes {
		urls[i] = n.Addr()
	}
	gw, err := gateway.Start(ctx, gateway.Config{
		Listener: gwLn, Replicas: urls, DefaultConsistency: cfg.consistency,
		CORSOrigins: cfg.corsOrigins, Logger: logger,
	})
	if err != nil {
		_ = gwLn.Close()
		closeReplicas(nodes, logger)
		return err
	}
	printBanner(stdout, gw.Addr(), cfg.dataDir, st)

	if leader := waitLeader(ctx, nodes); leader != "" {
		_, _ = fmt.Fprintf(stdout, "Ready: %s leads. Press Ctrl-C to stop.\n", leader)
	}
	<-ctx.Done()

	_, _ = fmt.Fprintln(stdout, "Stopping…")
	err = gw.Close()
	closeReplicas(nodes, logger)
	_, _ = fmt.Fprintln(stdout, "Stopped.")
	return err
}

// state is what cluster.json remembers about the replicas.
type state struct {
	Replicas []replicaState `json:"replicas"`
}

type replicaState struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	APIAddr  string `json:"api_addr"`
}

// listeners are a replica's bound ports.
type listeners struct{ raft, api net.Listener }

// openState binds every replica's ports: the remembered ones, or free ones
// on the first start (then remembered).
func openState(ctx context.Context, dir string) (state, []listeners, error) {
	path := filepath.Join(dir, stateFile)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return newState(ctx, dir, path)
	case err != nil:
		return state{}, nil, err
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return state{}, nil, fmt.Errorf("%s is damaged (remove %s to start afresh): %w", path, dir, err)
	}
	if len(st.Replicas) != replicaCount {
		return state{}, nil, fmt.Errorf("%s lists %d replicas, want %d: remove %s to start afresh", path, len(st.Replicas), replicaCount, dir)
	}
	lns := make([]listeners, 0, replicaCount)
	bind := func(addr, what string) (net.Listener, error) {
		ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
		if err != nil {
			closeListeners(lns)
			return nil, fmt.Errorf("%s %s, remembered in %s, is not free (%w): "+
				"is another concord-dev running on this data dir? Stop it, or remove %s to start afresh",
				what, addr, path, err, dir)
		}
		return ln, nil
	}
	for _, r := range st.Replicas {
		raftLn, err := bind(r.RaftAddr, "the Raft port of replica "+r.ID)
		if err != nil {
			return state{}, nil, err
		}
		apiLn, err := bind(r.APIAddr, "the API port of replica "+r.ID)
		if err != nil {
			_ = raftLn.Close()
			return state{}, nil, err
		}
		lns = append(lns, listeners{raft: raftLn, api: apiLn})
	}
	return st, lns, nil
}

// newState picks free ports and writes cluster.json before anything is
// bootstrapped with them.
func newState(ctx context.Context, dir, path string) (state, []listeners, error) {
	for i := range replicaCount {
		if _, err := os.Stat(filepath.Join(dir, nodeID(i))); err == nil {
			return state{}, nil, fmt.Errorf("%s holds replica data but no %s: remove %s to start afresh", dir, stateFile, dir)
		}
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return state{}, nil, err
	}
	var st state
	lns := make([]listeners, 0, replicaCount)
	for i := range replicaCount {
		var l listeners
		var err error
		if l.raft, err = (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0"); err == nil {
			if l.api, err = (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0"); err != nil {
				_ = l.raft.Close()
			}
		}
		if err != nil {
			closeListeners(lns)
			return state{}, nil, err
		}
		lns = append(lns, l)
		st.Replicas = append(st.Replicas, replicaState{ID: nodeID(i), RaftAddr: l.raft.Addr().String(), APIAddr: l.api.Addr().String()})
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err == nil {
		err = writeFileAtomic(path, append(b, '\n'))
	}
	if err != nil {
		closeListeners(lns)
		return state{}, nil, fmt.Errorf("remember ports: %w", err)
	}
	return st, lns, nil
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func nodeID(i int) string { return "n" + strconv.Itoa(i+1) }

func closeListeners(lns []listeners) {
	for _, l := range lns {
		_ = l.raft.Close()
		_ = l.api.Close()
	}
}

// startReplicas starts every replica on its listeners; on failure it stops
// those already running and closes the rest of the listeners.
func startReplicas(ctx context.Context, cfg config, st state, lns []listeners, logger *slog.Logger, raftLog io.Writer) ([]*replica.Node, error) {
	peers := make([]replica.Peer, len(st.Replicas))
	for i, r := range st.Replicas {
		peers[i] = replica.Peer{ID: r.ID, RaftAddress: r.RaftAddr}
	}
	nodes := make([]*replica.Node, 0, len(st.Replicas))
	for i, r := range st.Replicas {
		rc := replica.DefaultConfig()
		rc.NodeID = r.ID
		rc.DataDir = filepath.Join(cfg.dataDir, r.ID)
		rc.APIListener, rc.RaftListener = lns[i].api, lns[i].raft
		rc.Bootstrap, rc.Peers = true, peers // bootstraps only an empty data dir
		rc.DefaultConsistency = cfg.consistency
		rc.CompressionEnabled, rc.CompressionAlgorithm = cfg.compressionEnabled, cfg.compressionAlgorithm
		rc.CompressionLevel, rc.CompressionThreshold = cfg.compressionLevel, cfg.compressionThreshold
		rc.Logger = logger.With("replica", r.ID)
		rc.RaftLogOutput = raftLog
		rc.RaftLogLevel = raftLevel(cfg.logLevel)
		n, err := replica.Start(ctx, rc)
		if err != nil {
			closeListeners(lns[i:]) // closing twice is harmless
			closeReplicas(nodes, logger)
			return nil, fmt.Errorf("start replica %s: %w", r.ID, err)
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}

// raftLevel keeps hashicorp/raft one notch quieter than our own logs: it
// reports every election and lost heartbeat at warn.
func raftLevel(l slog.Level) string {
	switch {
	case l <= slog.LevelDebug:
		return "debug"
	case l <= slog.LevelInfo:
		return "warn"
	}
	return "error"
}

// closeReplicas stops the leader first, while its peers still answer (a
// leader waits for its replication to peers to wind down), then the rest
// together.
func closeReplicas(nodes []*replica.Node, logger *slog.Logger) {
	closeOne := func(n *replica.Node) {
		if err := n.Close(); err != nil {
			logger.Warn("stop replica", "replica", n.ID(), "error", err)
		}
	}
	rest := make([]*replica.Node, 0, len(nodes))
	for _, n := range nodes {
		if n.IsLeader() {
			closeOne(n)
		} else {
			rest = append(rest, n)
		}
	}
	var wg sync.WaitGroup
	for _, n := range rest {
		wg.Go(func() { closeOne(n) })
	}
	wg.Wait()
}

// waitLeader waits until a replica knows the leader; "" if ctx ends first.
func waitLeader(ctx context.Context, nodes []*replica.Node) string {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, n := range nodes {
			if id := n.LeaderID(); id != "" {
				return id
			}
		}
		select {
		case <-ctx.Done():
			return ""
		case <-tick.C:
		}
	}
}

func printBanner(w io.Writer, base, dataDir string, st state) {
	p := func(format string, args ...any) { _, _ = fmt.Fprintf(w, format, args...) }
	p("Concord dev stack: %d replicas + gateway, auth off, data in %s\n", len(st.Replicas), dataDir)
	p("  REST      %s/api/v1\n", base)
	p("  Health    %s/health\n", base)
	p("  Ready     %s/ready\n", base)
	p("  Connect   %s  (concord.v1.KVService, concord.v1.ClusterService; gRPC and gRPC-web too)\n", base)
	p("  Console   %s/ui/\n", base)
	p("  API docs  %s/api/docs  (OpenAPI: %s/api/v1/openapi.json)\n", base, base)
	p("  Metrics   %s/metrics\n", base)
	for _, r := range st.Replicas {
		p("  Replica   %s  http://%s  (raft %s)\n", r.ID, r.APIAddr, r.RaftAddr)
	}
	p("Try:\n")
	p("  curl -X PUT -d '{\"value\": {\"name\": \"Alice\"}}' %s/api/v1/kv/user:1001\n", base)
	p("  curl %s/api/v1/kv/user:1001\n", base)
}
