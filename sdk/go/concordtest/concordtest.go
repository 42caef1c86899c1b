// Package concordtest runs real Concord clusters for tests: replica
// processes on 127.0.0.1 with their data in t.TempDir(), which a test can
// kill -9, restart and stop.
//
// The replica binary is taken from CONCORD_REPLICA_BIN, or built (with
// -race) from the Concord source tree this package was compiled from.
package concordtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	buildBin  string
	buildErr  error
)

// ReplicaBinary returns the path of a replica binary, building it once per
// test process when CONCORD_REPLICA_BIN is not set.
func ReplicaBinary(tb testing.TB) string {
	tb.Helper()
	if bin := os.Getenv("CONCORD_REPLICA_BIN"); bin != "" {
		return bin
	}
	buildOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		src := filepath.Join(filepath.Dir(file), "..", "..", "..", "services", "replica")
		dir, err := os.MkdirTemp("", "concordtest")
		if err != nil {
			buildErr = err
			return
		}
		buildBin = filepath.Join(dir, "replica")
		cmd := exec.Command("go", "build", "-race", "-o", buildBin, "./cmd/replica")
		cmd.Dir = src
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build replica in %s: %w\n%s", src, err, out)
		}
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return buildBin
}

// Replica is one replica process.
type Replica struct {
	ID       string
	APIAddr  string // host:port
	RaftAddr string
	DataDir  string

	mu  sync.Mutex
	cmd *exec.Cmd
	log *bytes.Buffer
}

// URL is the replica's API base URL.
func (r *Replica) URL() string { return "http://" + r.APIAddr }

// Log returns what the process printed.
func (r *Replica) Log() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.log == nil {
		return ""
	}
	return r.log.String()
}

// Running reports whether the process is up.
func (r *Replica) Running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cmd != nil
}

// Cluster is a set of replica processes that bootstrapped one cluster.
type Cluster struct {
	tb       testing.TB
	bin      string
	peers    string
	extra    []string
	Replicas []*Replica
}

// Option changes how replicas start.
type Option func(*Cluster)

// WithArgs passes extra flags to every replica.
func WithArgs(args ...string) Option { return func(c *Cluster) { c.extra = append(c.extra, args...) } }

// Start runs n replicas and waits until every one is ready (knows a
// leader). They are killed when the test ends.
func Start(tb testing.TB, n int, opts ...Option) *Cluster {
	tb.Helper()
	c := &Cluster{tb: tb, bin: ReplicaBinary(tb)}
	for _, o := range opts {
		o(c)
	}
	var peers []string
	for i := range n {
		r := &Replica{ID: fmt.Sprintf("r%d", i+1), APIAddr: freeAddr(tb), RaftAddr: freeAddr(tb), DataDir: filepath.Join(tb.TempDir(), "data")}
		peers = append(peers, r.ID+"="+r.RaftAddr)
		c.Replicas = append(c.Replicas, r)
	}
	c.peers = strings.Join(peers, ",")
	tb.Cleanup(func() {
		for i := range c.Replicas {
			c.Kill(i)
		}
	})
	for i := range c.Replicas {
		c.Restart(i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range c.Replicas {
		c.WaitReady(ctx, i)
	}
	for i := range c.Replicas {
		c.waitRegistered(ctx, i, n)
	}
	return c
}

// waitRegistered waits until replica i reports n members that have all
// registered their API addresses, so a client that learns the members from
// any replica learns all of them.
func (c *Cluster) waitRegistered(ctx context.Context, i, n int) {
	c.tb.Helper()
	r := c.Replicas[i]
	for {
		var st statusJSON
		err := postJSON(ctx, r.URL()+"/concord.v1.ClusterService/Status", &st)
		if err == nil && len(st.Members) == n && !slices.ContainsFunc(st.Members, func(m memberJSON) bool { return m.APIAddress == "" }) {
			return
		}
		select {
		case <-ctx.Done():
			c.tb.Fatalf("replica %s: members not registered (%+v, %v): %v\n%s", r.ID, st, err, ctx.Err(), r.Log())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// statusJSON is the part of a Status answer (Connect JSON) waitRegistered reads.
type statusJSON struct {
	Members []memberJSON `json:"members"`
}

type memberJSON struct {
	APIAddress string `json:"apiAddress"`
}

// postJSON makes a Connect unary call with an empty JSON request.
func postJSON(ctx context.Context, url string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader("{}"))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func freeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().String()
}

// URLs lists every replica's API base URL.
func (c *Cluster) URLs() []string {
	out := make([]string, len(c.Replicas))
	for i, r := range c.Replicas {
		out[i] = r.URL()
	}
	return out
}

// Restart starts replica i (again) on its addresses and data directory.
func (c *Cluster) Restart(i int) {
	c.tb.Helper()
	r := c.Replicas[i]
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		c.tb.Fatalf("replica %s is running", r.ID)
	}
	// Raft timings of 1 s rather than the replica's 500 ms defaults: tests
	// run replicas built with -race on loaded machines, where shorter
	// timeouts make leaders change when a test does not expect it. WithArgs
	// overrides them (the last flag wins).
	args := append([]string{"--node-id", r.ID, "--api-addr", r.APIAddr, "--raft-addr", r.RaftAddr,
		"--data-dir", r.DataDir, "--peers", c.peers, "--log-level", "warn",
		"--heartbeat-timeout", "1s", "--election-timeout", "1s", "--leader-lease-timeout", "500ms"}, c.extra...)
	cmd := exec.Command(c.bin, args...)
	// The replica dies with the test process, even when a test binary is
	// killed or panics before its cleanups run.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	r.log = &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = &lockedWriter{mu: &r.mu, w: r.log}, &lockedWriter{mu: &r.mu, w: r.log}
	if err := cmd.Start(); err != nil {
		c.tb.Fatalf("start %s: %v", r.ID, err)
	}
	r.cmd = cmd
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Kill stops replica i with SIGKILL: no shutdown code runs.
func (c *Cluster) Kill(i int) { _ = c.signal(i, syscall.SIGKILL) }

// Stop stops replica i with SIGTERM and reports how it exited.
func (c *Cluster) Stop(i int) error { return c.signal(i, syscall.SIGTERM) }

func (c *Cluster) signal(i int, sig syscall.Signal) error {
	r := c.Replicas[i]
	r.mu.Lock()
	cmd := r.cmd
	r.cmd = nil
	r.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(sig)
	return cmd.Wait()
}

// WaitReady waits until replica i answers /ready (it knows a leader).
func (c *Cluster) WaitReady(ctx context.Context, i int) {
	c.tb.Helper()
	r := c.Replicas[i]
	for {
		resp, err := http.Get(r.URL() + "/ready")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-ctx.Done():
			c.tb.Fatalf("replica %s not ready: %v\n%s", r.ID, ctx.Err(), r.Log())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
