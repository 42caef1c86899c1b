// Package cluster tests replicas as separate processes on 127.0.0.1: the
// replica binary, real Raft over TCP, kill -9 and restart.
package cluster

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"
	concordv1 "github.com/concord-kv/concord/proto/gen/go/concord/v1"
	"github.com/concord-kv/concord/proto/gen/go/concord/v1/concordv1connect"
	"github.com/concord-kv/concord/sdk/go/concordtest"
)

func kv(c *concordtest.Cluster, i int) concordv1connect.KVServiceClient {
	return concordv1connect.NewKVServiceClient(http.DefaultClient, c.Replicas[i].URL())
}

// leader asks every running replica for its status until one says it leads.
func leader(ctx context.Context, t *testing.T, c *concordtest.Cluster) int {
	t.Helper()
	for {
		for i, r := range c.Replicas {
			if !r.Running() {
				continue
			}
			cl := concordv1connect.NewClusterServiceClient(http.DefaultClient, r.URL())
			st, err := cl.Status(ctx, connect.NewRequest(&concordv1.StatusRequest{}))
			if err == nil && st.Msg.GetState() == "leader" {
				return i
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no leader: %v", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestKill9LeaderLosesNoAcknowledgedWrite writes through followers with the
// bare Connect API (no SDK retries): the replicas themselves forward to the
// leader and retry while a new one is elected.
func TestKill9LeaderLosesNoAcknowledgedWrite(t *testing.T) {
	c := concordtest.Start(t, 3)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	l := leader(ctx, t, c)

	acked := map[string]string{}
	// write puts n keys through replica via. While the leader dies, a write
	// the follower had already forwarded may come back DeadlineExceeded
	// (outcome unknown: the follower does not retry it, by the documented
	// rules); it is not acknowledged, so it is not checked. Any other error
	// fails the test.
	write := func(via int, n int, tag string, mayBeUnknown bool) {
		for j := range n {
			k, v := fmt.Sprintf("%s-%03d", tag, j), fmt.Sprintf("v-%s-%d", tag, j)
			wctx, wcancel := context.WithTimeout(ctx, 15*time.Second)
			_, err := kv(c, via).Put(wctx, connect.NewRequest(&concordv1.PutRequest{Key: k, Value: []byte(v)}))
			wcancel()
			if mayBeUnknown && connect.CodeOf(err) == connect.CodeDeadlineExceeded {
				t.Logf("put %s via %s: %v", k, c.Replicas[via].ID, err)
				continue
			}
			if err != nil {
				t.Fatalf("put %s via %s: %v", k, c.Replicas[via].ID, err)
			}
			acked[k] = v
		}
	}
	write((l+1)%3, 50, "before", false)
	c.Kill(l)
	write((l+1)%3, 50, "during", true)
	c.Restart(l)
	c.WaitReady(ctx, l)
	write(l, 20, "after", false)

	for i, r := range c.Replicas {
		for k, v := range acked {
			gctx, gcancel := context.WithTimeout(ctx, 15*time.Second)
			resp, err := kv(c, i).Get(gctx, connect.NewRequest(&concordv1.GetRequest{Key: k, Consistency: concordv1.Consistency_CONSISTENCY_STRONG}))
			gcancel()
			if err != nil {
				t.Fatalf("%s: get %s: %v\nlog:\n%s", r.ID, k, err, r.Log())
			}
			if got := string(resp.Msg.GetKv().GetValue()); got != v {
				t.Fatalf("%s: %s = %q, want %q", r.ID, k, got, v)
			}
		}
	}
}

func TestSIGTERMStopsCleanlyAndRestartRecovers(t *testing.T) {
	c := concordtest.Start(t, 1)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if _, err := kv(c, 0).Put(ctx, connect.NewRequest(&concordv1.PutRequest{Key: "config:api_rate_limit", Value: []byte("1000")})); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(0); err != nil {
		t.Fatalf("replica exited with %v after SIGTERM\n%s", err, c.Replicas[0].Log())
	}
	c.Restart(0)
	c.WaitReady(ctx, 0)
	resp, err := kv(c, 0).Get(ctx, connect.NewRequest(&concordv1.GetRequest{Key: "config:api_rate_limit"}))
	if err != nil || string(resp.Msg.GetKv().GetValue()) != "1000" {
		t.Fatalf("after restart: %v %v", resp, err)
	}
}
