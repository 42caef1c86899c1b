package consul_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	concord "github.com/concord-kv/concord/sdk/go"
	"github.com/concord-kv/concord/sdk/go/consul"
)

func TestNewWatcherNeedsAnAddress(t *testing.T) {
	if _, err := consul.NewWatcher(consul.Config{}); err == nil {
		t.Fatal("NewWatcher without an address: no error")
	}
}

// Follow replaces the client's seeds whenever the passing instances change;
// without discovery the client's endpoints are its seeds, so they show it.
func TestFollowReplacesSeeds(t *testing.T) {
	t.Cleanup(func() { registry.set(replicas) })
	registry.set(replicas[:1])
	w, err := consul.NewWatcher(consul.Config{Address: consulAddr})
	if err != nil {
		t.Fatal(err)
	}
	seeds, err := w.Endpoints(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(seeds, replicas[:1]) {
		t.Fatalf("Endpoints = %v, want %v", seeds, replicas[:1])
	}
	c, err := concord.New(t.Context(), seeds, concord.WithDiscovery(false))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	followed := make(chan error, 1)
	go func() { followed <- w.Follow(ctx, c) }()

	for _, want := range [][]string{replicas[1:], replicas[2:], {}, replicas} {
		registry.set(want)
		if len(want) == 0 { // an empty list keeps the last seeds
			want = replicas[2:]
		}
		want = slices.Sorted(slices.Values(want)) // the watcher sorts them
		waitFor(t, func() bool { return slices.Equal(c.Endpoints(), want) }, func() string {
			return fmt.Sprintf("endpoints %v, want %v", c.Endpoints(), want)
		})
		if _, err := c.Put(t.Context(), "consul:follow", []byte("x")); err != nil {
			t.Fatalf("Put through %v: %v", want, err)
		}
	}
	cancel()
	if err := <-followed; !errors.Is(err, context.Canceled) {
		t.Fatalf("Follow returned %v, want context.Canceled", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestSetSeedsValidates(t *testing.T) {
	c, err := concord.New(t.Context(), replicas)
	if err != nil {
		t.Fatal(err)
	}
	for name, urls := range map[string][]string{"empty": nil, "not a URL": {"ftp://x"}} {
		if err := c.SetSeeds(t.Context(), urls); !errors.Is(err, concord.ErrInvalidArgument) {
			t.Errorf("%s: SetSeeds = %v, want ErrInvalidArgument", name, err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.SetSeeds(t.Context(), replicas); !errors.Is(err, concord.ErrClosed) {
		t.Fatalf("SetSeeds after Close = %v, want ErrClosed", err)
	}
}

// waitFor polls cond until it holds, failing the test after a generous
// bound (a hang guard, not a timing assertion).
func waitFor(t *testing.T, cond func() bool, msg func() string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(msg())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
