package app

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"
	concordv1 "github.com/concord-kv/concord/proto/gen/go/concord/v1"
	"github.com/concord-kv/concord/proto/gen/go/concord/v1/concordv1connect"
	"github.com/concord-kv/concord/services/replica/replicatest"
)

// A replica started with CONCORD_JOIN and an empty data dir does not
// bootstrap: it asks the running cluster to add it, as a voter.
func TestRunJoinsARunningCluster(t *testing.T) {
	c := replicatest.Start(t, 1)
	c.WaitLeader(10 * time.Second)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	var out bytes.Buffer
	go func() {
		done <- Run(ctx, []string{"--node-id", "joiner", "--api-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0",
			"--data-dir", t.TempDir(), "--log-level", "warn"},
			mapEnv(map[string]string{"CONCORD_JOIN": c.Addr(0) + ", "}), &syncWriter{buf: &out}, &bytes.Buffer{})
	}()
	cluster := concordv1connect.NewClusterServiceClient(http.DefaultClient, c.Addr(0))
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := cluster.Members(ctx, connect.NewRequest(&concordv1.MembersRequest{}))
		// It is a non-voter until it has caught up, then a voter.
		if err == nil && len(resp.Msg.GetMembers()) == 2 {
			m := resp.Msg.GetMembers()[1]
			if m.GetId() != "joiner" {
				t.Fatalf("joined as %v", m)
			}
			if m.GetSuffrage() == concordv1.Suffrage_SUFFRAGE_VOTER {
				break
			}
		}
		select {
		case err := <-done:
			t.Fatalf("Run returned early: %v\n%s", err, (&syncWriter{buf: &out}).String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("not joined: %v %v", resp, err)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
