// Package replica runs one Concord replica: a Raft member that stores the
// keys and serves the Connect KVService and ClusterService.
//
// Start is what the replica binary, the dev stack (concord-dev) and the
// tests call; replicatest builds in-process clusters on top of it.
package replica

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/concord-kv/concord/proto/gen/go/concord/raft/v1/raftv1connect"
	concordv1 "github.com/concord-kv/concord/proto/gen/go/concord/v1"
	"github.com/concord-kv/concord/proto/gen/go/concord/v1/concordv1connect"
	"github.com/concord-kv/concord/services/replica/internal/compress"
	"github.com/concord-kv/concord/services/replica/internal/discovery"
	"github.com/concord-kv/concord/services/replica/internal/server"
	"github.com/concord-kv/concord/services/replica/internal/store"
	"github.com/hashicorp/raft"
)

// Peer is a member of the initial configuration.
type Peer struct {
	ID          string
	RaftAddress string
}

// Config configures a replica. Zero values take the documented defaults.
type Config struct {
	// NodeID names this replica in the Raft configuration. Required.
	NodeID string
	// DataDir holds the Raft log (wal/, or raft.db with LogStoreBolt) and
	// snapshots. Required.
	DataDir string
	// LogStore is where the Raft log is kept: LogStoreWAL
	// (hashicorp/raft-wal: one fsync per append) or LogStoreBolt
	// (hashicorp/raft-boltdb: two, so slower writes). Both fsync every
	// append. A data directory keeps the kind it was created with: opening
	// it with the other one fails. LogStoreAuto (the default; "" too) opens
	// the kind the data directory holds, and LogStoreWAL in a new one.
	LogStore string

	// APIListener serves Connect; if nil, APIAddr is listened on.
	APIListener net.Listener
	APIAddr     string
	// APIAdvertise is the base URL peers use to reach this API
	// (default http://<listener address>).
	APIAdvertise string

	// RaftListener carries Raft; if nil, RaftAddr is listened on.
	RaftListener  net.Listener
	RaftAddr      string
	RaftAdvertise string

	// Bootstrap the cluster with Peers (or alone when Peers is empty) if the
	// data directory has no Raft state yet.
	Bootstrap bool
	Peers     []Peer
	// BootstrapExpect, if not 0, is how many members Peers must list: a
	// guard against bootstrapping from a partial or mistyped list.
	BootstrapExpect int

	// Join lists API base URLs of running members (any of them). A replica
	// with Join never bootstraps. If its data directory is empty it starts
	// Raft and asks the cluster to add it (ClusterService.AddMember, through
	// each URL in turn, retried with backoff until it succeeds or the
	// context given to Start ends). With existing state it is already a
	// member and only completes an interrupted promotion to voter: it never
	// adds itself back after it was removed.
	Join []string
	// Nonvoter joins as a non-voter: it receives the log and serves
	// eventual reads but does not vote or count toward the quorum.
	Nonvoter bool

	// ConsulAddr, if set, is a Consul agent's HTTP API (host:port or
	// http(s)://host:port): the replica registers there and bootstraps
	// (with BootstrapExpect replicas) or joins its cluster from the replicas
	// registered with it, instead of Peers or Join. Close deregisters it.
	ConsulAddr string
	// ConsulService is the service name (default concord-replica).
	ConsulService string
	// ConsulToken is the Consul ACL token (optional).
	ConsulToken string
	// ConsulCheckInterval is how often Consul probes /health (default 10s).
	ConsulCheckInterval time.Duration

	// Compression of stored values.
	CompressionEnabled   bool
	CompressionAlgorithm string // zlib (default), gzip, zstd, none
	CompressionLevel     int    // -1 for the algorithm's default
	CompressionThreshold int    // bytes; values larger than this are compressed

	// MaxValueBytes limits a value (default and maximum 1 MiB).
	MaxValueBytes int
	// DefaultConsistency for reads that do not ask: eventual, leader (default) or strong.
	DefaultConsistency string

	// Raft tuning (0 = hashicorp/raft defaults).
	SnapshotThreshold  uint64
	SnapshotInterval   time.Duration
	TrailingLogs       uint64
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	ReapInterval       time.Duration

	// Now is the clock; tests inject one to jump it.
	Now func() time.Time

	Logger        *slog.Logger
	RaftLogOutput io.Writer
	RaftLogLevel  string

	// PprofAddr, if set, serves net/http/pprof on this address, apart from
	// the API (for profiling; off by default).
	PprofAddr string
}

// Log store kinds for Config.LogStore.
const (
	LogStoreAuto = store.LogStoreAuto
	LogStoreBolt = store.LogStoreBolt
	LogStoreWAL  = store.LogStoreWAL
)

// MaxValueLimit is the largest value the API accepts.
const MaxValueLimit = 1 << 20

// DefaultConfig returns a config with the product defaults; callers fill in
// NodeID, DataDir and addresses.
func DefaultConfig() Config {
	c := compress.DefaultConfig()
	return Config{
		CompressionEnabled:   c.Enabled,
		CompressionAlgorithm: compress.Name(c.Algorithm),
		CompressionLevel:     c.Level,
		CompressionThreshold: c.ThresholdBytes,
		MaxValueBytes:        MaxValueLimit,
		DefaultConsistency:   "leader",
		LogStore:             LogStoreAuto,
	}
}

// ParseConsistency reads eventual, leader or strong.
func ParseConsistency(s string) (concordv1.Consistency, error) {
	switch s {
	case "eventual":
		return concordv1.Consistency_CONSISTENCY_EVENTUAL, nil
	case "leader", "":
		return concordv1.Consistency_CONSISTENCY_LEADER, nil
	case "strong":
		return concordv1.Consistency_CONSISTENCY_STRONG, nil
	}
	return 0, fmt.Errorf("unknown consistency %q (want eventual, leader or strong)", s)
}

// Validate checks the config.
func (c *Config) Validate() error {
	if c.NodeID == "" {
		return errors.New("node id is required")
	}
	if c.DataDir == "" {
		return errors.New("data dir is required")
	}
	if err := store.ValidateLogStore(c.LogStore); err != nil {
		return err
	}
	if c.MaxValueBytes <= 0 || c.MaxValueBytes > MaxValueLimit {
		return fmt.Errorf("max value bytes %d out of range 1..%d", c.MaxValueBytes, MaxValueLimit)
	}
	if _, err := ParseConsistency(c.DefaultConsistency); err != nil {
		return err
	}
	if err := c.validateMembership(); err != nil {
		return err
	}
	if err := c.validateTimings(); err != nil {
		return err
	}
	_, err := c.compression()
	return err
}

// validateTimings checks the Raft timings that are set (0 keeps
// hashicorp/raft's default) the way raft itself would, with our flag names.
func (c *Config) validateTimings() error {
	for name, d := range map[string]time.Duration{
		"heartbeat timeout": c.HeartbeatTimeout, "election timeout": c.ElectionTimeout,
		"leader lease timeout": c.LeaderLeaseTimeout, "snapshot interval": c.SnapshotInterval,
	} {
		if d < 0 || (d > 0 && d < 5*time.Millisecond) {
			return fmt.Errorf("%s %v must be at least 5ms", name, d)
		}
	}
	hb, election, lease := c.timings()
	if election < hb {
		return fmt.Errorf("election timeout %v must not be shorter than the heartbeat timeout %v", election, hb)
	}
	if lease > hb {
		return fmt.Errorf("leader lease timeout %v must not be longer than the heartbeat timeout %v", lease, hb)
	}
	return nil
}

// timings returns the heartbeat, election and leader lease timeouts raft
// will use: hashicorp/raft's defaults (1s, 1s, 500ms) for those not set,
// scaled so that setting only the heartbeat timeout stays valid.
// DefaultHeartbeatTimeout is how long a follower waits for the leader
// before it starts an election (randomised up to twice that), and the
// default election timeout. hashicorp/raft's 1 s default makes a leader
// failover take 2-3 s; 500 ms brings it to about 1 s on a LAN, and raft's
// pre-vote keeps a follower that merely missed heartbeats from deposing a
// healthy leader.
const DefaultHeartbeatTimeout = 500 * time.Millisecond

func (c *Config) timings() (hb, election, lease time.Duration) {
	hb, election, lease = c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout
	if hb == 0 {
		hb = DefaultHeartbeatTimeout
	}
	if election == 0 {
		election = max(DefaultHeartbeatTimeout, hb)
	}
	if lease == 0 {
		lease = min(500*time.Millisecond, hb/2)
	}
	return hb, election, lease
}

func (c *Config) validateMembership() error {
	if c.ConsulAddr != "" && (len(c.Join) > 0 || len(c.Peers) > 0) {
		return errors.New("consul-addr excludes peers and join: with Consul the replicas find each other, bootstrap and join through it")
	}
	if len(c.Join) > 0 && len(c.Peers) > 0 {
		return errors.New("join and peers exclude each other: peers bootstrap a new cluster, join enters a running one")
	}
	if c.BootstrapExpect < 0 {
		return fmt.Errorf("bootstrap expect %d must not be negative", c.BootstrapExpect)
	}
	if c.BootstrapExpect > 0 && len(c.Join) == 0 && c.ConsulAddr == "" && len(c.Peers) != c.BootstrapExpect {
		ids := make([]string, len(c.Peers))
		for i, p := range c.Peers {
			ids[i] = p.ID
		}
		return fmt.Errorf("bootstrap expects %d members but the peer list has %d [%s]: list every initial member, this one included",
			c.BootstrapExpect, len(c.Peers), strings.Join(ids, ", "))
	}
	if c.Bootstrap && len(c.Join) == 0 && len(c.Peers) > 0 && !slices.ContainsFunc(c.Peers, func(p Peer) bool { return p.ID == c.NodeID }) {
		return fmt.Errorf("the peer list does not include this node (%s)", c.NodeID)
	}
	for _, u := range c.Join {
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return fmt.Errorf("join address %q is not an http(s) URL of a member's API", u)
		}
	}
	return nil
}

func (c *Config) compression() (compress.Config, error) {
	algo, err := compress.ParseAlgorithm(c.CompressionAlgorithm)
	if err != nil {
		return compress.Config{}, err
	}
	cc := compress.Config{Enabled: c.CompressionEnabled, Algorithm: algo, Level: c.CompressionLevel, ThresholdBytes: c.CompressionThreshold}
	return cc, cc.Validate()
}

// compressMinBytes is the smallest response the API compresses (when the
// client accepts it).
const compressMinBytes = 64 << 10

// Node is a running replica.
type Node struct {
	store  *store.Store
	srv    *http.Server
	apiURL string
	served chan error

	stopJoin func()        // cancels the join loop
	joined   chan struct{} // closed once the join loop has nothing (more) to do

	consul         *discovery.Agent // nil without Consul
	stopDiscovery  func()           // cancels the discovery loop
	discoveryEnded chan struct{}    // closed when the discovery loop returned
}

// Start opens the store, joins or bootstraps raft and serves the API. It
// returns once the listeners are bound; the cluster may not have a leader yet.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cc, _ := cfg.compression()
	comp, err := compress.New(cc)
	if err != nil {
		return nil, err
	}
	cons, _ := ParseConsistency(cfg.DefaultConsistency)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}

	apiLn := cfg.APIListener
	if apiLn == nil {
		if apiLn, err = net.Listen("tcp", cfg.APIAddr); err != nil {
			return nil, fmt.Errorf("listen api: %w", err)
		}
	}
	raftLn := cfg.RaftListener
	if raftLn == nil {
		if raftLn, err = net.Listen("tcp", cfg.RaftAddr); err != nil {
			_ = apiLn.Close()
			return nil, fmt.Errorf("listen raft: %w", err)
		}
	}
	apiURL := cfg.APIAdvertise
	if apiURL == "" {
		apiURL = "http://" + apiLn.Addr().String()
	}
	initial := make([]store.Peer, len(cfg.Peers))
	for i, p := range cfg.Peers {
		initial[i] = store.Peer{ID: p.ID, Address: p.RaftAddress}
	}
	peers := peerClient()
	hb, election, lease := cfg.timings()
	st, err := store.Open(store.Config{
		NodeID: cfg.NodeID, DataDir: cfg.DataDir, LogStore: cfg.LogStore, RaftListener: raftLn, RaftAdvertise: cfg.RaftAdvertise,
		APIAddress: apiURL, Bootstrap: cfg.Bootstrap && len(cfg.Join) == 0 && cfg.ConsulAddr == "", Peers: initial, HTTPClient: peers,
		Now: cfg.Now, Logger: cfg.Logger, RaftLogOutput: cfg.RaftLogOutput, RaftLogLevel: cfg.RaftLogLevel,
		SnapshotThreshold: cfg.SnapshotThreshold, SnapshotInterval: cfg.SnapshotInterval, TrailingLogs: cfg.TrailingLogs,
		HeartbeatTimeout: hb, ElectionTimeout: election,
		LeaderLeaseTimeout: lease, ReapInterval: cfg.ReapInterval,
	})
	if err != nil {
		_ = apiLn.Close()
		_ = raftLn.Close()
		return nil, err
	}

	// Responses are compressed only when large: gzip of small messages
	// cost a fifth of a leader's CPU under load and saves nothing on a LAN.
	opts := connect.WithHandlerOptions(connect.WithInterceptors(server.NewValidator()), connect.WithCompressMinBytes(compressMinBytes))
	mux := http.NewServeMux()
	mux.Handle(concordv1connect.NewKVServiceHandler(&server.KV{
		Store: st, Compressor: comp, MaxValueBytes: cfg.MaxValueBytes, DefaultConsistency: cons,
	}, opts))
	mux.Handle(concordv1connect.NewClusterServiceHandler(&server.Cluster{Store: st, Peers: peers}, opts))
	mux.Handle(raftv1connect.NewInternalServiceHandler(&server.Internal{Store: st}, opts))
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `{"status":"ok"}`)
	})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		// Ready once a leader is known and reachable (it has recorded its
		// API address, so this replica can forward to it) and this replica's
		// own API address is in the members table (clients can find it).
		if id, api := st.Leader(); id == "" || api == "" {
			http.Error(w, `{"status":"no leader"}`, http.StatusServiceUnavailable)
			return
		}
		if st.FSM().Members()[st.ID()] != apiURL {
			http.Error(w, `{"status":"registering"}`, http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, `{"status":"ready"}`)
	})

	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Handler:           mux,
		Protocols:         &protocols,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	n := &Node{store: st, srv: srv, apiURL: apiURL, served: make(chan error, 1), stopJoin: func() {}, joined: make(chan struct{}),
		stopDiscovery: func() {}, discoveryEnded: make(chan struct{})}
	go func() { n.served <- srv.Serve(apiLn) }()
	if len(cfg.Join) > 0 {
		jctx, cancel := context.WithCancel(ctx)
		n.stopJoin = cancel
		go func() {
			defer close(n.joined)
			n.join(jctx, cfg, peers)
		}()
	} else {
		close(n.joined)
	}
	if cfg.ConsulAddr != "" {
		if err := n.startDiscovery(ctx, cfg, peers); err != nil {
			_ = n.Close()
			return nil, err
		}
	} else {
		close(n.discoveryEnded)
	}
	return n, nil
}

// join asks the cluster to add this replica, if it must: when its data
// directory was empty, or when it is a non-voter that should be a voter (a
// promotion that was interrupted). A replica that was a member and is not
// any more (it was removed) is left alone.
func (n *Node) join(ctx context.Context, cfg Config, peers *http.Client) {
	log := cfg.Logger.With("node", cfg.NodeID)
	if n.store.HadState() {
		if suffrage, ok := n.store.Suffrage(); !ok || suffrage == raft.Voter || cfg.Nonvoter {
			return
		}
		log.Info("completing the promotion to voter")
	}
	var urls []string // the members to ask, not this replica itself
	for _, u := range cfg.Join {
		if u = strings.TrimRight(u, "/"); u != n.apiURL && u != "http://"+cfg.APIAddr {
			urls = append(urls, u)
		}
	}
	if len(urls) == 0 {
		log.Error("cannot join: the join list names only this replica", "join", cfg.Join)
		return
	}
	req := &concordv1.AddMemberRequest{Id: cfg.NodeID, RaftAddress: n.RaftAddr(), ApiAddress: n.apiURL, Nonvoter: cfg.Nonvoter}
	backoff := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		url := urls[attempt%len(urls)]
		actx, cancel := context.WithTimeout(ctx, joinAttemptTimeout)
		resp, err := concordv1connect.NewClusterServiceClient(peers, url).AddMember(actx, connect.NewRequest(req))
		cancel()
		if err == nil {
			log.Info("joined the cluster", "through", url, "suffrage", resp.Msg.GetMember().GetSuffrage().String())
			return
		}
		if ctx.Err() != nil {
			return
		}
		log.Warn("join failed; retrying", "through", url, "error", err, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// joinAttemptTimeout bounds one AddMember call of a joining replica; the
// leader answers once the replica has caught up, and a later attempt
// resumes where an earlier one stopped.
const joinAttemptTimeout = time.Minute

// Joined is closed once the replica needs no more joining: it was added (or
// promoted), it was a member already, it did not ask to join, or it stopped
// trying because it was closed.
func (n *Node) Joined() <-chan struct{} { return n.joined }

// peerClient talks to other replicas over HTTP/2 without TLS, so forwarded
// requests share a connection.
func peerClient() *http.Client {
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &protocols, MaxIdleConnsPerHost: 16}}
}

// ID is the node id.
func (n *Node) ID() string { return n.store.ID() }

// Addr is the base URL of the Connect API.
func (n *Node) Addr() string { return n.apiURL }

// RaftAddr is the Raft transport address.
func (n *Node) RaftAddr() string { return n.store.RaftAddr() }

// IsLeader reports whether this node leads.
func (n *Node) IsLeader() bool { return n.store.IsLeader() }

// LeaderID is the id of the leader this node knows ("" if none).
func (n *Node) LeaderID() string {
	id, _ := n.store.Leader()
	return id
}

// AppliedIndex is the index of the last entry applied to this node's FSM.
func (n *Node) AppliedIndex() uint64 { return n.store.FSM().Applied() }

// SetPartitioned cuts (true) or heals (false) all of this node's Raft links.
// The API stays reachable, as in a real partition between replicas.
func (n *Node) SetPartitioned(cut bool) { n.store.SetPartitioned(cut) }

// Close stops serving and shuts raft down. Acknowledged writes are on disk.
func (n *Node) Close() error {
	n.stopDiscovery()
	<-n.discoveryEnded
	n.deregister()
	n.stopJoin()
	<-n.joined
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := n.srv.Shutdown(ctx)
	if err != nil {
		_ = n.srv.Close()
	}
	if serr := <-n.served; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if cerr := n.store.Close(); err == nil {
		err = cerr
	}
	return err
}
