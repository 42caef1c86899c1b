// Package replicatest starts in-process Concord clusters for tests: N real
// replicas with real Raft over TCP on 127.0.0.1, data in t.TempDir(), and
// the means to kill, restart and partition any of them.
package replicatest

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/concord-kv/concord/services/replica"
)

// Cluster is a set of in-process replicas. Methods must be called from the
// test goroutine.
type Cluster struct {
	tb    testing.TB
	cfgs  []replica.Config
	nodes []*replica.Node
	cut   []bool
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
	c := &Cluster{tb: tb, cfgs: make([]replica.Config, n), nodes: make([]*replica.Node, n), cut: make([]bool, n)}
	raftLns := make([]net.Listener, n)
	apiLns := make([]net.Listener, n)
	peers := make([]replica.Peer, n)
	for i := range n {
		raftLns[i] = listen(tb, "127.0.0.1:0")
		apiLns[i] = listen(tb, "127.0.0.1:0")
		peers[i] = replica.Peer{ID: fmt.Sprintf("n%d", i+1), RaftAddress: raftLns[i].Addr().String()}
	}
	logger := slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	dir := tb.TempDir()
	for i := range n {
		cfg := replica.DefaultConfig()
		cfg.NodeID = peers[i].ID
		cfg.DataDir = fmt.Sprintf("%s/%s", dir, peers[i].ID)
		cfg.APIAddr = apiLns[i].Addr().String()
		cfg.RaftAddr = raftLns[i].Addr().String()
		cfg.Bootstrap = true
		cfg.Peers = peers
		// hashicorp/raft's defaults. Shorter ones fail over faster but make
		// leaders step down under CPU starvation (-race on two cores with
		// other packages' tests running), failing writes with "outcome
		// unknown" in tests that do not expect a leader change.
		cfg.HeartbeatTimeout = time.Second
		cfg.ElectionTimeout = time.Second
		cfg.LeaderLeaseTimeout = 500 * time.Millisecond
		cfg.ReapInterval = 100 * time.Millisecond
		cfg.Logger = logger
		cfg.RaftLogOutput = tb.Output()
		cfg.RaftLogLevel = "error"
		for _, o := range opts {
			o(i, &cfg)
		}
		c.cfgs[i] = cfg
		cfg.APIListener, cfg.RaftListener = apiLns[i], raftLns[i]
		node, err := replica.Start(tb.Context(), cfg)
		if err != nil {
			tb.Fatalf("start replica %d: %v", i, err)
		}
		c.nodes[i] = node
	}
	tb.Cleanup(c.stopAll)
	return c
}

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
	cfg.APIListener = listen(c.tb, cfg.APIAddr)
	cfg.RaftListener = listen(c.tb, cfg.RaftAddr)
	node, err := replica.Start(c.tb.Context(), cfg)
	if err != nil {
		c.tb.Fatalf("restart replica %d: %v", i, err)
	}
	c.nodes[i] = node
	c.cut[i] = false
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
		if n != nil && !c.cut[i] && n.IsLeader() {
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
				if n != nil && !c.cut[j] && n.LeaderID() != id {
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
	for _, n := range c.nodes {
		for n != nil && n.AppliedIndex() < idx {
			select {
			case <-ctx.Done():
				c.tb.Fatalf("replica %s applied %d, want %d: %v", n.ID(), n.AppliedIndex(), idx, ctx.Err())
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
}
