// Package cluster tests replicas as separate processes on 127.0.0.1: the
// replica binary, real Raft over TCP, kill -9 and restart.
package cluster

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	concordv1 "github.com/concord-kv/concord/proto/gen/go/concord/v1"
	"github.com/concord-kv/concord/proto/gen/go/concord/v1/concordv1connect"
)

// buildReplica compiles the replica binary once per test binary run.
func buildReplica(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "replica")
	cmd := exec.Command("go", "build", "-race", "-o", bin, "github.com/concord-kv/concord/services/replica/cmd/replica")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build replica: %v\n%s", err, out)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().String()
}

type proc struct {
	id, api, raft, dir string
	cmd                *exec.Cmd
	log                *bytes.Buffer
}

type cluster struct {
	t     *testing.T
	bin   string
	peers string
	procs []*proc
}

func startCluster(t *testing.T, n int) *cluster {
	c := &cluster{t: t, bin: buildReplica(t)}
	var peers []string
	for i := range n {
		p := &proc{id: fmt.Sprintf("p%d", i+1), api: freeAddr(t), raft: freeAddr(t), dir: filepath.Join(t.TempDir(), "data")}
		peers = append(peers, p.id+"="+p.raft)
		c.procs = append(c.procs, p)
	}
	c.peers = strings.Join(peers, ",")
	for i := range c.procs {
		c.start(i)
	}
	t.Cleanup(func() {
		for _, p := range c.procs {
			if p.cmd != nil {
				_ = p.cmd.Process.Kill()
				_ = p.cmd.Wait()
			}
		}
	})
	return c
}

func (c *cluster) start(i int) {
	p := c.procs[i]
	p.log = &bytes.Buffer{}
	p.cmd = exec.Command(c.bin, "--node-id", p.id, "--api-addr", p.api, "--raft-addr", p.raft, "--data-dir", p.dir, "--log-level", "warn")
	p.cmd.Env = append(os.Environ(), "CONCORD_PEERS="+c.peers)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		c.t.Fatalf("start %s: %v", p.id, err)
	}
}

// waitReady polls replica i's /ready until it knows a leader.
func (c *cluster) waitReady(ctx context.Context, i int) {
	c.t.Helper()
	for {
		resp, err := http.Get("http://" + c.procs[i].api + "/ready")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("%s not ready: %v\n%s", c.procs[i].id, ctx.Err(), c.procs[i].log)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// kill9 kills replica i with SIGKILL: no shutdown code runs.
func (c *cluster) kill9(i int) {
	p := c.procs[i]
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.cmd.Wait()
	p.cmd = nil
}

func (c *cluster) kv(i int) concordv1connect.KVServiceClient {
	return concordv1connect.NewKVServiceClient(http.DefaultClient, "http://"+c.procs[i].api)
}

// leader asks every running replica for its status until one says it leads.
func (c *cluster) leader(ctx context.Context) int {
	c.t.Helper()
	for {
		for i, p := range c.procs {
			if p.cmd == nil {
				continue
			}
			cl := concordv1connect.NewClusterServiceClient(http.DefaultClient, "http://"+p.api)
			st, err := cl.Status(ctx, connect.NewRequest(&concordv1.StatusRequest{}))
			if err == nil && st.Msg.GetState() == "leader" {
				return i
			}
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("no leader: %v", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func TestKill9LeaderLosesNoAcknowledgedWrite(t *testing.T) {
	c := startCluster(t, 3)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	l := c.leader(ctx)

	acked := map[string]string{}
	write := func(via int, n int, tag string) {
		for j := range n {
			k, v := fmt.Sprintf("%s-%03d", tag, j), fmt.Sprintf("v-%s-%d", tag, j)
			wctx, wcancel := context.WithTimeout(ctx, 15*time.Second)
			_, err := c.kv(via).Put(wctx, connect.NewRequest(&concordv1.PutRequest{Key: k, Value: []byte(v)}))
			wcancel()
			if err != nil {
				t.Fatalf("put %s via %s: %v", k, c.procs[via].id, err)
			}
			acked[k] = v
		}
	}
	write((l+1)%3, 50, "before")
	c.kill9(l)
	survivor := (l + 1) % 3
	write(survivor, 50, "during") // retried by the replica until a new leader takes it
	c.start(l)
	c.waitReady(ctx, l)
	write(l, 20, "after")

	for i := range c.procs {
		for k, v := range acked {
			gctx, gcancel := context.WithTimeout(ctx, 15*time.Second)
			resp, err := c.kv(i).Get(gctx, connect.NewRequest(&concordv1.GetRequest{Key: k, Consistency: concordv1.Consistency_CONSISTENCY_STRONG}))
			gcancel()
			if err != nil {
				t.Fatalf("%s: get %s: %v\nlog:\n%s", c.procs[i].id, k, err, c.procs[i].log)
			}
			if got := string(resp.Msg.GetKv().GetValue()); got != v {
				t.Fatalf("%s: %s = %q, want %q", c.procs[i].id, k, got, v)
			}
		}
	}
}

func TestSIGTERMStopsCleanlyAndRestartRecovers(t *testing.T) {
	c := startCluster(t, 1)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	c.leader(ctx)
	if _, err := c.kv(0).Put(ctx, connect.NewRequest(&concordv1.PutRequest{Key: "config:api_rate_limit", Value: []byte("1000")})); err != nil {
		t.Fatal(err)
	}
	p := c.procs[0]
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("replica exited with %v after SIGTERM\n%s", err, p.log)
	}
	p.cmd = nil
	c.start(0)
	c.waitReady(ctx, 0)
	resp, err := c.kv(0).Get(ctx, connect.NewRequest(&concordv1.GetRequest{Key: "config:api_rate_limit"}))
	if err != nil || string(resp.Msg.GetKv().GetValue()) != "1000" {
		t.Fatalf("after restart: %v %v", resp, err)
	}
}
