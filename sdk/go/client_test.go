package concord_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	concord "github.com/concord-kv/concord/sdk/go"
)

func newClient(t *testing.T, endpoints []string, opts ...concord.Option) *concord.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c, err := concord.New(ctx, endpoints, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestBadOptionsFailWithoutNetwork(t *testing.T) {
	// No server listens on this address: a network call would fail differently.
	for name, opts := range map[string][]concord.Option{
		"timeout":     {concord.WithTimeout(-time.Second)},
		"consistency": {concord.WithDefaultConsistency(concord.ConsistencyLevel(9))},
		"retry":       {concord.WithRetryPolicy(concord.RetryPolicy{InitialBackoff: time.Second, MaxBackoff: time.Millisecond})},
		"nil":         {nil},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := concord.New(t.Context(), []string{"http://127.0.0.1:1"}, opts...)
			if !errors.Is(err, concord.ErrInvalidArgument) {
				t.Fatalf("got %v, want ErrInvalidArgument", err)
			}
		})
	}
	for _, eps := range [][]string{nil, {"ftp://x"}, {"http://"}} {
		if _, err := concord.New(t.Context(), eps); !errors.Is(err, concord.ErrInvalidArgument) {
			t.Fatalf("New(%v) = %v, want ErrInvalidArgument", eps, err)
		}
	}
}

func TestBadCallsFailWithoutNetwork(t *testing.T) {
	c := cluster(t)
	cl := newClient(t, c.URLs())
	ctx := t.Context()
	before := total(cl.Served())
	checks := map[string]error{}
	_, checks["empty key"] = cl.Put(ctx, "", []byte("v"))
	_, checks["control char"] = cl.Put(ctx, "a\nb", []byte("v"))
	_, checks["long key"] = cl.Put(ctx, string(make([]byte, 513)), nil)
	_, checks["big value"] = cl.Put(ctx, "k", make([]byte, concord.MaxValueBytes+1))
	_, checks["sub-second ttl"] = cl.Put(ctx, "k", nil, concord.WithTTL(time.Millisecond))
	_, checks["ttl on get"] = cl.Get(ctx, "k", concord.WithTTL(time.Second))
	_, checks["both conditions"] = cl.Put(ctx, "k", nil, concord.IfAbsent(), concord.IfModRevision(3))
	_, checks["bad level"] = cl.Get(ctx, "k", concord.Consistency(7))
	_, checks["empty batch"] = cl.PutMany(ctx, nil)
	_, checks["501 batch"] = cl.DeleteMany(ctx, make([]string, 501))
	_, checks["negative touch"] = cl.Touch(ctx, "k", -time.Second)
	for _, err := range cl.List(ctx, "", concord.WithPageSize(5000)) {
		checks["page size"] = err
	}
	for name, err := range checks {
		if !errors.Is(err, concord.ErrInvalidArgument) {
			t.Errorf("%s: got %v, want ErrInvalidArgument", name, err)
		}
	}
	if after := total(cl.Served()); after != before {
		t.Errorf("bad calls reached the network: %d requests", after-before)
	}
}

func total(m map[string]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}

func TestCRUDAndConditionalWrites(t *testing.T) {
	cl := newClient(t, cluster(t).URLs())
	ctx := t.Context()
	w, err := cl.Put(ctx, "crud:a", []byte("1"), concord.WithTTL(time.Hour))
	if err != nil || w.Revision == 0 {
		t.Fatalf("put: %+v %v", w, err)
	}
	kv, err := cl.GetWithTTL(ctx, "crud:a", concord.Consistency(concord.Strong))
	if err != nil || string(kv.Value) != "1" || kv.ModRevision != w.Revision || kv.TTL <= 0 || kv.TTL > time.Hour {
		t.Fatalf("get: %+v %v", kv, err)
	}
	if _, err := cl.Put(ctx, "crud:a", []byte("2"), concord.IfAbsent()); !errors.Is(err, concord.ErrConflict) {
		t.Fatalf("IfAbsent on existing key: %v", err)
	}
	if _, err := cl.Put(ctx, "crud:a", []byte("2"), concord.IfModRevision(w.Revision+1000)); !errors.Is(err, concord.ErrConflict) {
		t.Fatalf("IfModRevision mismatch: %v", err)
	}
	w2, err := cl.Put(ctx, "crud:a", []byte("2"), concord.IfModRevision(w.Revision))
	if err != nil {
		t.Fatalf("IfModRevision match: %v", err)
	}
	if ttl, ok, err := cl.TTL(ctx, "crud:a"); err != nil || ok {
		t.Fatalf("a plain put clears the TTL: %v %v %v", ttl, ok, err)
	}
	if _, err := cl.Touch(ctx, "crud:a", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if ttl, ok, err := cl.TTL(ctx, "crud:a"); err != nil || !ok || ttl <= 0 || ttl > 30*time.Second {
		t.Fatalf("after touch: %v %v %v", ttl, ok, err)
	}
	kv, err = cl.Get(ctx, "crud:a")
	if err != nil || kv.ModRevision != w2.Revision || kv.Version != 2 {
		t.Fatalf("touch changed metadata: %+v %v", kv, err)
	}
	d, err := cl.Delete(ctx, "crud:a")
	if err != nil || !d.Deleted {
		t.Fatalf("delete: %+v %v", d, err)
	}
	if _, err := cl.Get(ctx, "crud:a"); !errors.Is(err, concord.ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	if _, err := cl.Touch(ctx, "crud:a", time.Second); !errors.Is(err, concord.ErrNotFound) {
		t.Fatalf("touch missing: %v", err)
	}
}

func TestBatches(t *testing.T) {
	cl := newClient(t, cluster(t).URLs())
	ctx := t.Context()
	items := make([]concord.Item, concord.MaxBatchItems)
	keys := make([]string, len(items))
	for i := range items {
		keys[i] = fmt.Sprintf("batch:%03d", i)
		items[i] = concord.Item{Key: keys[i], Value: []byte(fmt.Sprint(i))}
	}
	if _, err := cl.PutMany(ctx, items); err != nil {
		t.Fatal(err)
	}
	got, err := cl.GetMany(ctx, append(keys[:10:10], "batch:missing"), concord.Consistency(concord.Strong))
	if err != nil || len(got.KVs) != 10 || len(got.Missing) != 1 || string(got.KVs[3].Value) != "3" {
		t.Fatalf("GetMany: %+v %v", got, err)
	}
	tr, err := cl.TouchMany(ctx, []concord.TouchItem{{Key: keys[0], TTL: time.Minute}, {Key: "batch:missing", TTL: time.Minute}})
	if err != nil || len(tr.Missing) != 1 || tr.Missing[0] != "batch:missing" {
		t.Fatalf("TouchMany: %+v %v", tr, err)
	}
	dr, err := cl.DeleteMany(ctx, keys)
	if err != nil || dr.Deleted != len(keys) {
		t.Fatalf("DeleteMany: %+v %v", dr, err)
	}
}

func TestEventualReadsSpreadOverReplicas(t *testing.T) {
	c := cluster(t)
	cl := newClient(t, c.URLs()[:1]) // learns the other two from Status
	ctx := t.Context()
	w, err := cl.Put(ctx, "spread", []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	before := cl.Served()
	for range 300 {
		if _, err := cl.Get(ctx, "spread", concord.Consistency(concord.Eventual), concord.MinRevision(w.Revision)); err != nil {
			t.Fatal(err)
		}
	}
	used := 0
	for u, n := range cl.Served() {
		if n-before[u] > 0 {
			used++
		}
	}
	if len(cl.Endpoints()) != 3 || used < 2 {
		t.Fatalf("eventual reads used %d of %v", used, cl.Served())
	}
}

func TestStrongReadAfterWriteOnAnotherEndpoint(t *testing.T) {
	c := cluster(t)
	ctx := t.Context()
	writer := newClient(t, c.URLs()[:1], concord.WithDiscovery(false))
	reader := newClient(t, c.URLs()[2:], concord.WithDiscovery(false))
	for i := range 20 {
		v := fmt.Sprint(i)
		if _, err := writer.Put(ctx, "rw", []byte(v)); err != nil {
			t.Fatal(err)
		}
		kv, err := reader.Get(ctx, "rw", concord.Consistency(concord.Strong))
		if err != nil || string(kv.Value) != v {
			t.Fatalf("strong read %d: %+v %v", i, kv, err)
		}
	}
}

func TestListPagesWithoutGapsWhileWriting(t *testing.T) {
	cl := newClient(t, cluster(t).URLs())
	ctx := t.Context()
	const n = 10000
	for b := 0; b < n; b += concord.MaxBatchItems {
		items := make([]concord.Item, concord.MaxBatchItems)
		for i := range items {
			items[i] = concord.Item{Key: fmt.Sprintf("list:%05d", b+i), Value: []byte("v")}
		}
		if _, err := cl.PutMany(ctx, items); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			// New keys between the existing ones, and deletes of them.
			k := fmt.Sprintf("list:%05d-new%d", (i*7919)%n, i)
			if _, err := cl.Put(ctx, k, []byte("n")); err != nil {
				t.Error(err)
				return
			}
		}
	})
	seen := map[string]bool{}
	last := ""
	for kv, err := range cl.List(ctx, "list:", concord.WithPageSize(250), concord.KeysOnly()) {
		if err != nil {
			t.Fatal(err)
		}
		if kv.Key <= last {
			t.Fatalf("key %q after %q: out of order or duplicate", kv.Key, last)
		}
		last = kv.Key
		seen[kv.Key] = true
	}
	close(stop)
	wg.Wait()
	for i := range n {
		if k := fmt.Sprintf("list:%05d", i); !seen[k] {
			t.Fatalf("List skipped %s", k)
		}
	}
}
