package replica_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"
	concordv1 "github.com/concord-kv/concord/proto/gen/go/concord/v1"
	"github.com/concord-kv/concord/proto/gen/go/concord/v1/concordv1connect"
	"github.com/concord-kv/concord/services/replica/replicatest"
)

func kvClient(addr string) concordv1connect.KVServiceClient {
	return concordv1connect.NewKVServiceClient(http.DefaultClient, addr)
}

func put(t *testing.T, c concordv1connect.KVServiceClient, key, value string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	resp, err := c.Put(ctx, connect.NewRequest(&concordv1.PutRequest{Key: key, Value: []byte(value)}))
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	return resp.Msg.GetHeader().GetRevision()
}

func get(t *testing.T, c concordv1connect.KVServiceClient, key string, cons concordv1.Consistency) (*concordv1.GetResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	resp, err := c.Get(ctx, connect.NewRequest(&concordv1.GetRequest{Key: key, Consistency: cons}))
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

func TestWriteThroughFollowerReadEverywhere(t *testing.T) {
	c := replicatest.Start(t, 3)
	l := c.WaitLeader(10 * time.Second)
	f := (l + 1) % 3
	rev := put(t, kvClient(c.Addr(f)), "user:1001", `{"name":"Alice"}`)
	if rev == 0 {
		t.Fatal("put returned revision 0")
	}
	for i := range 3 {
		for _, cons := range []concordv1.Consistency{concordv1.Consistency_CONSISTENCY_STRONG, concordv1.Consistency_CONSISTENCY_LEADER} {
			got, err := get(t, kvClient(c.Addr(i)), "user:1001", cons)
			if err != nil {
				t.Fatalf("replica %d %v: %v", i, cons, err)
			}
			if string(got.GetKv().GetValue()) != `{"name":"Alice"}` || got.GetKv().GetModRevision() != rev {
				t.Fatalf("replica %d %v: got %q rev %d, want rev %d", i, cons, got.GetKv().GetValue(), got.GetKv().GetModRevision(), rev)
			}
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		resp, err := kvClient(c.Addr(i)).Get(ctx, connect.NewRequest(&concordv1.GetRequest{
			Key: "user:1001", Consistency: concordv1.Consistency_CONSISTENCY_EVENTUAL, MinRevision: rev,
		}))
		cancel()
		if err != nil || resp.Msg.GetKv().GetModRevision() != rev {
			t.Fatalf("replica %d eventual with min_revision: %v %v", i, resp, err)
		}
	}
}

func TestLeaderFailoverKeepsAcknowledgedWrites(t *testing.T) {
	for _, kind := range logStores {
		t.Run(kind, func(t *testing.T) { testLeaderFailoverKeepsAcknowledgedWrites(t, kind) })
	}
}

func testLeaderFailoverKeepsAcknowledgedWrites(t *testing.T, kind string) {
	c := replicatest.Start(t, 3, withLogStore(kind))
	l := c.WaitLeader(10 * time.Second)
	for i := range 20 {
		put(t, kvClient(c.Addr((l+1)%3)), fmt.Sprintf("k%02d", i), fmt.Sprint(i))
	}
	c.Kill(l)
	nl := c.WaitLeader(10 * time.Second)
	put(t, kvClient(c.Addr(nl)), "after", "failover")
	c.Restart(l)
	c.WaitLeader(10 * time.Second)
	for i := range 20 {
		got, err := get(t, kvClient(c.Addr(l)), fmt.Sprintf("k%02d", i), concordv1.Consistency_CONSISTENCY_STRONG)
		if err != nil || string(got.GetKv().GetValue()) != fmt.Sprint(i) {
			t.Fatalf("k%02d after failover: %v %v", i, got, err)
		}
	}
}

func TestConnectErrorsFollowTheTable(t *testing.T) {
	c := replicatest.Start(t, 1)
	c.WaitLeader(10 * time.Second)
	kv := kvClient(c.Addr(0))
	ctx := t.Context()
	_, err := kv.Get(ctx, connect.NewRequest(&concordv1.GetRequest{Key: "missing"}))
	wantCode(t, err, connect.CodeNotFound)
	_, err = kv.Put(ctx, connect.NewRequest(&concordv1.PutRequest{Key: ""}))
	wantCode(t, err, connect.CodeInvalidArgument)
	_, err = kv.Put(ctx, connect.NewRequest(&concordv1.PutRequest{Key: "bad\x01key"}))
	wantCode(t, err, connect.CodeInvalidArgument)
	_, err = kv.Put(ctx, connect.NewRequest(&concordv1.PutRequest{Key: "k", TtlSeconds: -1}))
	wantCode(t, err, connect.CodeInvalidArgument)
	put(t, kv, "lock", "a")
	_, err = kv.Put(ctx, connect.NewRequest(&concordv1.PutRequest{Key: "lock", Value: []byte("b"), IfAbsent: true}))
	wantCode(t, err, connect.CodeFailedPrecondition)
	got, err := get(t, kv, "lock", concordv1.Consistency_CONSISTENCY_STRONG)
	if err != nil || string(got.GetKv().GetValue()) != "a" {
		t.Fatalf("failed CAS changed the value: %v %v", got, err)
	}
}

func wantCode(t *testing.T, err error, want connect.Code) {
	t.Helper()
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != want {
		t.Fatalf("got error %v, want code %v", err, want)
	}
}
