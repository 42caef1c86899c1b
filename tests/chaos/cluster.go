package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"connectrpc.com/connect"
	concordv1 "github.com/concord-kv/concord/proto/gen/go/concord/v1"
	"github.com/concord-kv/concord/proto/gen/go/concord/v1/concordv1connect"
	"github.com/gofrs/flock"
)

// Node is one replica process behind its chaos proxy.
type Node struct {
	Index     int
	ID        string
	IP        netip.Addr
	APIAddr   string // host:port the API listens on
	RaftAddr  string // host:port Raft listens on
	ProxyAddr string // host:port of the proxy in front of RaftAddr: what peers dial
	// APIProxyAddr is the proxy in front of APIAddr (Cluster.APINet), which
	// clients and forwarding replicas use; empty when the cluster has no
	// API proxies.
	APIProxyAddr string
	DataDir      string
	LogPath      string
	// FailpointAddr is the failpoint control endpoint (failpoints.go);
	// empty unless the cluster runs the failpoint build.
	FailpointAddr string

	kv      concordv1connect.KVServiceClient
	cluster concordv1connect.ClusterServiceClient

	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{} // closed when cmd has exited
	paused   bool
	expected bool // the current process is meant to exit (we killed it)
	crashes  []string
	// starts counts the processes started, so a reader can tell whether
	// two answers came from one process.
	starts int
	// exitErr is how the last process ended (nil: status 0).
	exitErr error
	// faultExits are exits caused by an injected fault (failpoints.go).
	faultExits []string
	// rejoin: the node was removed and came back with an empty data
	// directory, so it starts with --join, never with --peers (which would
	// bootstrap a new cluster from an empty directory).
	rejoin bool
}

// URL is the node's API base URL, without any proxy: the harness's own
// view of the node, which faults never cut.
func (n *Node) URL() string { return "http://" + n.APIAddr }

// ClientURL is the URL clients use: through the API proxy if there is
// one.
func (n *Node) ClientURL() string {
	if n.APIProxyAddr != "" {
		return "http://" + n.APIProxyAddr
	}
	return n.URL()
}

// Running reports whether the process is up (perhaps paused).
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd != nil
}

// Paused reports whether the process is stopped with SIGSTOP.
func (n *Node) Paused() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.paused
}

// Cluster is N replica processes on distinct loopback IPs, each behind a
// chaos proxy on its Raft port. Node i listens on 127.0.B.(11+i); its proxy
// on 127.0.B+1.(11+i), where B is an even block no other running cluster
// holds (claimBlock).
type Cluster struct {
	Nodes []*Node
	block *flock.Flock // held until Close
	Net   *Network
	// APINet holds the proxies in front of the API ports (nil without
	// ClusterConfig.APIProxies). Node i's API is its node i; every
	// connection to it counts as coming from pseudo-node len(Nodes)
	// (Outside), since clients and forwarding replicas all dial from
	// 127.0.0.1.
	APINet *Network

	bin        string
	extra      []string
	failpoints bool
	http       *http.Client
	logf       func(format string, args ...any)
}

// ClusterConfig describes a cluster to start.
type ClusterConfig struct {
	Bin   string   // replica binary
	Nodes int      // 3 or 5
	Args  []string // extra replica flags
	Dir   string   // data and logs
	Seed  uint64
	Logf  func(format string, args ...any)
	// Failpoints: Bin is a failpoint build (-tags failpoints) and every
	// node gets a failpoint control endpoint.
	Failpoints bool
	// APIProxies puts a chaos proxy in front of every API port too (see
	// Cluster.APINet); replicas advertise it as their API address.
	APIProxies bool
}

// Outside is the pseudo-node that every API connection comes from
// (Cluster.APINet).
func (c *Cluster) Outside() int { return len(c.Nodes) }

// StartCluster starts the proxies and replicas and waits until every
// replica is ready. Close stops everything.
func StartCluster(ctx context.Context, cfg ClusterConfig) (*Cluster, error) {
	block, lock, err := claimBlock()
	if err != nil {
		return nil, err
	}
	c := &Cluster{block: lock, bin: cfg.Bin, extra: cfg.Args, failpoints: cfg.Failpoints, logf: cfg.Logf, http: newHTTPClient()}
	if c.logf == nil {
		c.logf = func(string, ...any) {}
	}
	ips := make([]netip.Addr, cfg.Nodes)
	for i := range cfg.Nodes {
		ips[i] = netip.AddrFrom4([4]byte{127, 0, byte(block), byte(11 + i)})
	}
	c.Net = NewNetwork(ips, cfg.Seed)
	if cfg.APIProxies {
		c.APINet = NewNetwork(ips, cfg.Seed^0x5bd1e995)
		c.APINet.CatchAll(cfg.Nodes)
	}
	var peers []string
	for i := range cfg.Nodes {
		n := &Node{
			Index: i, ID: fmt.Sprintf("n%d", i+1), IP: ips[i],
			DataDir: filepath.Join(cfg.Dir, fmt.Sprintf("n%d", i+1)),
			LogPath: filepath.Join(cfg.Dir, fmt.Sprintf("n%d.log", i+1)),
		}
		var err error
		if n.APIAddr, err = freeAddr(ips[i]); err != nil {
			c.Close()
			return nil, err
		}
		if n.RaftAddr, err = freeAddr(ips[i]); err != nil {
			c.Close()
			return nil, err
		}
		if cfg.Failpoints {
			if n.FailpointAddr, err = freeAddr(ips[i]); err != nil {
				c.Close()
				return nil, err
			}
		}
		proxyIP := netip.AddrFrom4([4]byte{127, 0, byte(block + 1), byte(11 + i)})
		addr, err := c.Net.Listen(i, netip.AddrPortFrom(proxyIP, 0).String(), n.RaftAddr)
		if err != nil {
			c.Close()
			return nil, err
		}
		n.ProxyAddr = addr.String()
		if c.APINet != nil {
			addr, err := c.APINet.Listen(i, netip.AddrPortFrom(proxyIP, 0).String(), n.APIAddr)
			if err != nil {
				c.Close()
				return nil, err
			}
			n.APIProxyAddr = addr.String()
		}
		n.kv = concordv1connect.NewKVServiceClient(c.http, n.URL())
		n.cluster = concordv1connect.NewClusterServiceClient(c.http, n.URL())
		peers = append(peers, n.ID+"="+n.ProxyAddr)
		c.Nodes = append(c.Nodes, n)
	}
	for _, n := range c.Nodes {
		if err := c.start(n, strings.Join(peers, ",")); err != nil {
			c.Close()
			return nil, err
		}
	}
	if err := c.WaitReady(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// blocks is how many address blocks claimBlock picks from: 127.0.2.x to
// 127.0.240.x for nodes, each with the next block for its proxies.
const blocks = 120

// claimBlock picks a cluster's address block B (nodes on 127.0.B.x, their
// proxies on 127.0.B+1.x) and locks it with a file in the temporary
// directory, so that no other cluster, in this process or another, uses the
// block until Close. Two clusters on one block share node IPs: a replica
// dials its peers from its own IP, and its ephemeral ports could take the
// port the other cluster reserved for a replica, whose start then fails
// with "address already in use" (seen with two `make test-chaos` at once).
func claimBlock() (int, *flock.Flock, error) {
	dir := filepath.Join(os.TempDir(), "concord-chaos-blocks")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, nil, err
	}
	for _, k := range rand.Perm(blocks) {
		block := 2 * (1 + k)
		lock := flock.New(filepath.Join(dir, fmt.Sprintf("%d.lock", block)))
		ok, err := lock.TryLock()
		if err != nil {
			return 0, nil, fmt.Errorf("chaos: lock address block %d: %w", block, err)
		}
		if ok {
			return block, lock, nil
		}
	}
	return 0, nil, fmt.Errorf("chaos: all %d address blocks are held by running clusters (lock files in %s)", blocks, dir)
}

func newHTTPClient() *http.Client {
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &p, MaxIdleConnsPerHost: 16}}
}

func freeAddr(ip netip.Addr) (string, error) {
	ln, err := net.Listen("tcp", netip.AddrPortFrom(ip, 0).String())
	if err != nil {
		return "", err
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().String(), nil
}

func (c *Cluster) peers() string {
	var peers []string
	for _, n := range c.Nodes {
		peers = append(peers, n.ID+"="+n.ProxyAddr)
	}
	return strings.Join(peers, ",")
}

func (c *Cluster) start(n *Node, peers string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		return fmt.Errorf("%s is running", n.ID)
	}
	logf, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	_, _ = fmt.Fprintf(logf, "=== chaos: start %s at %s\n", n.ID, time.Now().Format(time.RFC3339Nano))
	from, _ := logf.Seek(0, io.SeekEnd)
	members := []string{"--peers", peers}
	if n.rejoin {
		members = []string{"--join", strings.Join(c.othersURLs(n), ",")}
	}
	args := append(append([]string{
		"--node-id", n.ID, "--api-addr", n.APIAddr, "--raft-addr", n.RaftAddr,
		"--raft-advertise", n.ProxyAddr, "--data-dir", n.DataDir, "--log-level", "info",
	}, members...), c.extra...)
	if n.APIProxyAddr != "" {
		args = append(args, "--api-advertise", "http://"+n.APIProxyAddr)
	}
	cmd := exec.Command(c.bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if n.FailpointAddr != "" {
		cmd.Env = append(os.Environ(), "CONCORD_FAILPOINT_ADDR="+n.FailpointAddr)
	}
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("start %s: %w", n.ID, err)
	}
	exited := make(chan struct{})
	n.cmd, n.exited, n.paused, n.expected = cmd, exited, false, false
	n.starts++
	go func() {
		err := cmd.Wait()
		_ = logf.Close()
		fault := !n.expected && injectedExit(n.LogPath, from)
		n.mu.Lock()
		n.exitErr = err
		switch {
		case n.expected:
		case fault:
			n.faultExits = append(n.faultExits, fmt.Sprintf("%s exited because of an injected fault: %v", n.ID, err))
		default:
			n.crashes = append(n.crashes, fmt.Sprintf("%s exited on its own: %v", n.ID, err))
		}
		if n.cmd == cmd {
			n.cmd = nil
		}
		n.mu.Unlock()
		close(exited)
	}()
	return nil
}

// othersURLs lists the API URLs of every node but n.
func (c *Cluster) othersURLs(n *Node) []string {
	var out []string
	for _, o := range c.Nodes {
		if o != n {
			out = append(out, o.URL())
		}
	}
	return out
}

// injectedExit reports whether the output a process wrote to logPath from
// offset on shows that it died of an injected fault: a panic whose message
// names a failpoint (an injected panic, or raft panicking on an injected
// disk error).
func injectedExit(logPath string, from int64) bool {
	f, err := os.Open(logPath)
	if err != nil {
		return false
	}
	defer func() { _ = f.Close() }()
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return false
	}
	out, err := io.ReadAll(f)
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(out)) {
		if strings.HasPrefix(line, "panic: ") && strings.Contains(line, "failpoint: injected") {
			return true
		}
	}
	return false
}

// Restart starts node n again on its addresses and data directory.
func (c *Cluster) Restart(n *Node) error { return c.start(n, c.peers()) }

// Kill sends SIGKILL to node n and waits until it has exited.
func (c *Cluster) Kill(n *Node) {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	if cmd == nil {
		n.mu.Unlock()
		return
	}
	n.expected = true
	n.paused = false
	n.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

// Terminate sends SIGTERM to node n and waits until it has exited, or for
// at most wait (then it kills it). It returns how the process ended: nil
// for status 0, and an error if it did not exit in time. Such an error is
// also recorded as a crash (Crashes): a graceful shutdown must end well.
//
// A node that was just started gets the signal only once its API port
// accepts connections (for at most wait). The replica handles SIGTERM from
// before it binds its listeners (app.Run), but until then, while Go's
// runtime and package initialisation run, the signal's default action ends
// any Go program. Under load a restarted replica got SIGTERM 0.8 s after it
// was started, before it had bound its port, and such runs failed with
// "exited after SIGTERM with signal: terminated".
func (c *Cluster) Terminate(n *Node, wait time.Duration) error {
	c.waitListening(n, wait)
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	if cmd == nil {
		n.mu.Unlock()
		return nil
	}
	n.expected = true
	if n.paused {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		n.paused = false
	}
	n.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(wait)
	defer t.Stop()
	var err error
	select {
	case <-exited:
	case <-t.C:
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		err = fmt.Errorf("%s did not exit within %v of SIGTERM", n.ID, wait)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if err == nil && n.exitErr != nil {
		err = fmt.Errorf("%s exited after SIGTERM with %w", n.ID, n.exitErr)
	}
	if err != nil {
		n.crashes = append(n.crashes, err.Error())
	}
	return err
}

// waitListening waits until n's API port accepts a connection, n's process
// is gone, or wait has passed.
func (c *Cluster) waitListening(n *Node, wait time.Duration) {
	deadline := time.Now().Add(wait)
	for n.Running() && time.Now().Before(deadline) {
		conn, err := net.DialTimeout("tcp", n.APIAddr, time.Second)
		if err == nil {
			_ = conn.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Generations returns, by node id, how many processes of each node have
// been started.
func (c *Cluster) Generations() map[string]int {
	out := make(map[string]int, len(c.Nodes))
	for _, n := range c.Nodes {
		n.mu.Lock()
		out[n.ID] = n.starts
		n.mu.Unlock()
	}
	return out
}

// SnapshotInstalls counts the snapshots the replicas installed from their
// leader (hashicorp/raft logs "Installed remote snapshot"), over every
// process of every node.
func (c *Cluster) SnapshotInstalls() int {
	total := 0
	for _, n := range c.Nodes {
		data, err := os.ReadFile(n.LogPath)
		if err != nil {
			continue
		}
		total += strings.Count(string(data), "Installed remote snapshot")
	}
	return total
}

// Pause stops node n with SIGSTOP.
func (c *Cluster) Pause(n *Node) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil && !n.paused {
		_ = n.cmd.Process.Signal(syscall.SIGSTOP)
		n.paused = true
	}
}

// Resume continues node n after Pause.
func (c *Cluster) Resume(n *Node) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil && n.paused {
		_ = n.cmd.Process.Signal(syscall.SIGCONT)
		n.paused = false
	}
}

// FaultExits lists the processes that died of an injected fault: expected
// in the disk-fault scenarios, and not violations.
func (c *Cluster) FaultExits() []string {
	var out []string
	for _, n := range c.Nodes {
		n.mu.Lock()
		out = append(out, n.faultExits...)
		n.mu.Unlock()
	}
	return out
}

// Crashes lists the processes that exited without being killed.
func (c *Cluster) Crashes() []string {
	var out []string
	for _, n := range c.Nodes {
		n.mu.Lock()
		out = append(out, n.crashes...)
		n.mu.Unlock()
	}
	return out
}

// HealAll makes every link pass, resumes paused nodes and restarts stopped
// ones.
func (c *Cluster) HealAll() error {
	c.Net.Heal()
	if c.APINet != nil {
		c.APINet.Heal()
	}
	var errs []error
	for _, n := range c.Nodes {
		c.Resume(n)
		if !n.Running() {
			errs = append(errs, c.Restart(n))
		}
	}
	return errors.Join(errs...)
}

// Close kills every replica and stops the proxies.
func (c *Cluster) Close() {
	for _, n := range c.Nodes {
		c.Kill(n)
	}
	if c.Net != nil {
		c.Net.Close()
	}
	if c.APINet != nil {
		c.APINet.Close()
	}
	c.http.CloseIdleConnections()
	if c.block != nil {
		_ = c.block.Unlock()
	}
}

// URLs lists the API base URLs clients use (ClientURL).
func (c *Cluster) URLs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.ClientURL()
	}
	return out
}

// WaitReady waits until every running node answers /ready.
func (c *Cluster) WaitReady(ctx context.Context) error {
	for _, n := range c.Nodes {
		for n.Running() {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.URL()+"/ready", nil)
			if err != nil {
				return err
			}
			resp, err := c.http.Do(req)
			if err == nil {
				_ = resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s not ready: %w", n.ID, ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

// Status asks node n for its status.
func (c *Cluster) Status(ctx context.Context, n *Node) (*concordv1.StatusResponse, error) {
	resp, err := n.cluster.Status(ctx, connect.NewRequest(&concordv1.StatusRequest{}))
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

// Leader returns the node that says it leads, asking every running,
// unpaused node; nil if none does before ctx ends.
func (c *Cluster) Leader(ctx context.Context) *Node {
	for {
		for _, n := range c.Nodes {
			if !n.Running() || n.Paused() {
				continue
			}
			sctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			st, err := c.Status(sctx, n)
			cancel()
			if err == nil && st.GetState() == "leader" {
				return n
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}
