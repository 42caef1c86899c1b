// Package replicatest starts in-process Concord clusters for tests: N real
// replicas with real Raft over TCP on 127.0.0.1, data in t.TempDir(), and
// the means to kill, restart and partition any of them.
package replicatest

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	concordv1 "github.com/concord-kv/concord/proto/gen/go/concord/v1"
	"github.com/concord-kv/concord/proto/gen/go/concord/v1/concordv1connect"
	"github.com/concord-kv/concord/services/replica"
)

// Cluster is a set of in-process replicas. Methods must be called from the
// test goroutine.
type Cluster struct {
	tb       testing.TB
	dir      string
	logger   *slog.Logger
	opts     []Option
	cfgs     []replica.Config
	nodes    []*replica.Node
	cut      []bool
	excluded []bool
}

// Option adjusts each replica's config before it starts.
type Option func(i int, c *replica.Config)

// WithConfig applies f to every replica's config.
func WithConfig(f func(i int, c *replica.Config)) Option { return Option(f) }

// Clock is a clock that tests move forward, so TTLs expire without
// sleeping. It reads real time plus an offset that only grows; share one
// between the replicas of a cluster with WithClock. The zero Clock is ready
// to use and safe for concurrent use.
type Clock struct {
	offset atomic.Int64
}

// Now is real time plus the offset.
func (c *Clock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// WithClock gives every replica clk: it stamps writes (TTLs count from the
// stamp), hides expired keys on reads and drives the leader's reaper.
func WithClock(clk *Clock) Option {
	return func(_ int, c *replica.Config) { c.Now = clk.Now }
}

// Start runs n replicas that bootstrap one cluster, and stops them when the
// test ends. It does not wait for a leader: call WaitLeader.
func Start(tb testing.TB, n int, opts ...Option) *Cluster {
	tb.Helper()
	c := &Cluster{
		tb: tb, dir: tb.TempDir(), opts: opts,
		logger: slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
		cfgs:   make([]replica.Config, n), nodes: make([]*replica.Node, n), cut: make([]bool, n), excluded: make([]bool, n),
	}
	tb.Cleanup(c.stopAll)
	raftLns := make([]net.Listener, n)
	apiLns := make([]net.Listener, n)
	peers := make([]replica.Peer, n)
	for i := range n {
		raftLns[i] = listen(tb, "127.0.0.1:0")
		apiLns[i] = listen(tb, "127.0.0.1:0")
		peers[i] = replica.Peer{ID: fmt.Sprintf("n%d", i+1), RaftAddress: raftLns[i].Addr().String()}
	}
	for i := range n {
		cfg := c.config(peers[i].ID, apiLns[i], raftLns[i])
		cfg.Bootstrap = true
		cfg.Peers = peers
		for _, o := range opts {
			o(i, &cfg)
		}
		c.start(i, cfg, apiLns[i], raftLns[i])
	}
	return c
}

// config is the base config of a replica listening on apiLn and raftLn.
func (c *Cluster) config(id string, apiLn, raftLn net.Listener) replica.Config {
	cfg := replica.DefaultConfig()
	cfg.NodeID = id
	cfg.DataDir = fmt.Sprintf("%s/%s", c.dir, id)
	cfg.APIAddr = apiLn.Addr().String()
	cfg.RaftAddr = raftLn.Addr().String()
	// hashicorp/raft's defaults. Shorter ones fail over faster but make
	// leaders step down under CPU starvation (-race on two cores with
	// other packages' tests running), failing writes with "outcome
	// unknown" in tests that do not expect a leader change.
	cfg.HeartbeatTimeout = time.Second
	cfg.ElectionTimeout = time.Second
	cfg.LeaderLeaseTimeout = 500 * time.Millisecond
	cfg.ReapInterval = 100 * time.Millisecond
	cfg.Logger = c.logger
	cfg.RaftLogOutput = c.tb.Output()
	// CONCORD_TEST_RAFT_LOG_LEVEL=info (or debug) shows raft's own lines
	// when a test needs looking into; they are many, so errors only by
	// default.
	cfg.RaftLogLevel = cmp.Or(os.Getenv("CONCORD_TEST_RAFT_LOG_LEVEL"), "error")
	return cfg
}

// start runs replica i with cfg on the given listeners.
func (c *Cluster) start(i int, cfg replica.Config, apiLn, raftLn net.Listener) {
	c.tb.Helper()
	c.cfgs[i] = cfg
	cfg.APIListener, cfg.RaftListener = apiLn, raftLn
	node, err := replica.Start(c.tb.Context(), cfg)
	if err != nil {
		c.tb.Fatalf("start replica %d: %v", i, err)
	}
	c.nodes[i] = node
	c.cut[i] = false
}

// running lists the API URLs of the running replicas that are not excluded.
func (c *Cluster) running() []string {
	var out []string
	for i, n := range c.nodes {
		if n != nil && !c.excluded[i] {
			out = append(out, c.Addr(i))
		}
	}
	return out
}

// Add starts one more replica, with the next id (n<index+1>), new addresses
// and an empty data directory, that does not bootstrap but joins the
// cluster through the running replicas (Config.Join). The cluster's options
// apply to it, then opts (called with the new index): clear Join for a
// replica that waits to be added by hand, set Nonvoter to join as a
// non-voter. Add returns the new replica's index without waiting for the
// join (see replica.Node.Joined).
func (c *Cluster) Add(opts ...Option) int {
	c.tb.Helper()
	i := len(c.nodes)
	apiLn, raftLn := listen(c.tb, "127.0.0.1:0"), listen(c.tb, "127.0.0.1:0")
	cfg := c.config(fmt.Sprintf("n%d", i+1), apiLn, raftLn)
	cfg.Join = c.running()
	for _, o := range append(append([]Option(nil), c.opts...), opts...) {
		o(i, &cfg)
	}
	c.cfgs = append(c.cfgs, cfg)
	c.nodes = append(c.nodes, nil)
	c.cut = append(c.cut, false)
	c.excluded = append(c.excluded, false)
	c.start(i, cfg, apiLn, raftLn)
	return i
}

// Replace starts the stopped replica i again as a new machine would: same
// id and addresses, but its data directory wiped, and joining the cluster
// through the running replicas instead of bootstrapping. Remove it from the
// cluster first (the safe procedure in docs/OPERATIONS.md).
func (c *Cluster) Replace(i int) {
	c.tb.Helper()
	if c.nodes[i] != nil {
		c.tb.Fatalf("replica %d is running", i)
	}
	cfg := c.cfgs[i]
	if err := os.RemoveAll(cfg.DataDir); err != nil {
		c.tb.Fatalf("wipe replica %d: %v", i, err)
	}
	cfg.Bootstrap, cfg.Peers, cfg.BootstrapExpect = false, nil, 0
	cfg.Join = c.running()
	c.excluded[i] = false
	c.start(i, cfg, listen(c.tb, cfg.APIAddr), listen(c.tb, cfg.RaftAddr))
}

// Exclude leaves replica i out of Leader, WaitLeader, WaitApplied and the
// join lists of Add and Replace: for a replica that is running but not a
// member (removed, or waiting to be added).
func (c *Cluster) Exclude(i int) { c.excluded[i] = true }

// Excluded reports whether replica i is excluded.
func (c *Cluster) Excluded(i int) bool { return c.excluded[i] }

// Include undoes Exclude.
func (c *Cluster) Include(i int) { c.excluded[i] = false }

// ID is replica i's node id.
func (c *Cluster) ID(i int) string { return c.cfgs[i].NodeID }

// RaftAddr is replica i's Raft address.
func (c *Cluster) RaftAddr(i int) string { return c.cfgs[i].RaftAddr }

func listen(tb testing.TB, addr string) net.Listener {
	tb.Helper()
	var err error
	for range 50 {
		var ln net.Listener
		if ln, err = net.Listen("tcp", addr); err == nil {
			return ln
		}
		time.Sleep(100 * time.Millisecond)
	}
	tb.Fatalf("listen %s: %v", addr, err)
	return nil
}

func (c *Cluster) stopAll() {
	for i, n := range c.nodes {
		if n != nil {
			if err := n.Close(); err != nil {
				c.tb.Logf("close replica %d: %v", i, err)
			}
			c.nodes[i] = nil
		}
	}
}

// Len is the number of replicas, running or not.
func (c *Cluster) Len() int { return len(c.nodes) }

// Node returns replica i (nil while it is stopped).
func (c *Cluster) Node(i int) *replica.Node { return c.nodes[i] }

// Config returns replica i's config.
func (c *Cluster) Config(i int) replica.Config { return c.cfgs[i] }

// Addr is replica i's API base URL (stable across restarts).
func (c *Cluster) Addr(i int) string { return "http://" + c.cfgs[i].APIAddr }

// Addrs lists every replica's API base URL.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.cfgs))
	for i := range c.cfgs {
		out[i] = c.Addr(i)
	}
	return out
}

// Kill stops replica i (its data stays for Restart).
func (c *Cluster) Kill(i int) {
	c.tb.Helper()
	if c.nodes[i] == nil {
		return
	}
	if err := c.nodes[i].Close(); err != nil {
		c.tb.Logf("kill replica %d: %v", i, err)
	}
	c.nodes[i] = nil
}

// Restart starts a stopped replica again on the same addresses and data.
func (c *Cluster) Restart(i int) {
	c.tb.Helper()
	if c.nodes[i] != nil {
		c.tb.Fatalf("replica %d is running", i)
	}
	cfg := c.cfgs[i]
	c.start(i, cfg, listen(c.tb, cfg.APIAddr), listen(c.tb, cfg.RaftAddr))
}

// Partition cuts every Raft link of replica i; Heal restores them.
func (c *Cluster) Partition(i int) {
	c.nodes[i].SetPartitioned(true)
	c.cut[i] = true
}

// Heal restores replica i's Raft links.
func (c *Cluster) Heal(i int) {
	c.nodes[i].SetPartitioned(false)
	c.cut[i] = false
}

// Leader returns the index of the running replica that leads, or -1.
func (c *Cluster) Leader() int {
	for i, n := range c.nodes {
		if n != nil && !c.cut[i] && !c.excluded[i] && n.IsLeader() {
			return i
		}
	}
	return -1
}

// WaitLeader waits until a running, connected replica leads and every
// running, connected replica agrees on it, then returns its index.
func (c *Cluster) WaitLeader(timeout time.Duration) int {
	c.tb.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if l := c.Leader(); l >= 0 {
			id := c.nodes[l].ID()
			agreed := true
			for j, n := range c.nodes {
				if n != nil && !c.cut[j] && !c.excluded[j] && n.LeaderID() != id {
					agreed = false
				}
			}
			if agreed {
				return l
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.tb.Fatalf("no leader within %v", timeout)
	return -1
}

// WaitApplied waits until every running replica has applied index idx.
func (c *Cluster) WaitApplied(ctx context.Context, idx uint64) {
	c.tb.Helper()
	for i, n := range c.nodes {
		for n != nil && !c.excluded[i] && n.AppliedIndex() < idx {
			select {
			case <-ctx.Done():
				c.tb.Fatalf("replica %s applied %d, want %d: %v", n.ID(), n.AppliedIndex(), idx, ctx.Err())
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
}

// WaitRegistered waits until every running replica's Status names an API
// address for every member: clients that discover members from Status then
// learn the whole cluster from whichever replica they ask.
func (c *Cluster) WaitRegistered(timeout time.Duration) {
	c.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for i, n := range c.nodes {
		if n == nil || c.cut[i] || c.excluded[i] {
			continue
		}
		cl := concordv1connect.NewClusterServiceClient(http.DefaultClient, c.Addr(i))
		for !registered(ctx, cl) {
			select {
			case <-ctx.Done():
				c.tb.Fatalf("replica %s does not know every member's API address within %v", n.ID(), timeout)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
}

func registered(ctx context.Context, cl concordv1connect.ClusterServiceClient) bool {
	st, err := cl.Status(ctx, connect.NewRequest(&concordv1.StatusRequest{}))
	if err != nil {
		return false
	}
	for _, m := range st.Msg.GetMembers() {
		if m.GetApiAddress() == "" {
			return false
		}
	}
	return len(st.Msg.GetMembers()) > 0
}
