package concord_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	concord "github.com/concord-kv/concord/sdk/go"
)

func TestRegistryDropsInstanceWhoseHeartbeatStopped(t *testing.T) {
	t.Parallel()
	urls := cluster(t).URLs()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	dying, alive, reader := newClient(t, urls), newClient(t, urls), newClient(t, urls)

	a := concord.ServiceInstance{Address: "10.0.1.100", Port: 8080, Meta: map[string]string{"zone": "a"}}
	b := concord.ServiceInstance{Address: "10.0.1.101", Port: 8080}
	if _, err := dying.Register(ctx, "checkout", "a", a, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	regB, err := alive.Register(ctx, "checkout", "b", b, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	a.ID, b.ID = "a", "b"
	got, err := reader.Discover(ctx, "checkout", concord.Consistency(concord.Strong))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]concord.ServiceInstance{a, b}, got); diff != "" {
		t.Fatalf("Discover (-want +got):\n%s", diff)
	}

	// a's process dies: its heartbeat stops and its key expires; b's
	// heartbeat keeps b registered past its TTL.
	if err := dying.Close(); err != nil {
		t.Fatal(err)
	}
	waitInstances(ctx, t, reader, "checkout", []concord.ServiceInstance{b})

	// If b's key vanishes (an operator removed it, or it expired during a
	// partition), the heartbeat registers it again.
	if _, err := reader.Delete(ctx, regB.Key()); err != nil {
		t.Fatal(err)
	}
	waitInstances(ctx, t, reader, "checkout", []concord.ServiceInstance{b})

	if err := regB.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	got, err = reader.Discover(ctx, "checkout", concord.Consistency(concord.Strong))
	if err != nil || len(got) != 0 {
		t.Fatalf("Discover after Deregister: %v %v, want none", got, err)
	}
}

// waitInstances polls Discover until it returns want or ctx ends.
func waitInstances(ctx context.Context, t *testing.T, cl *concord.Client, service string, want []concord.ServiceInstance) {
	t.Helper()
	var diff string
	for ctx.Err() == nil {
		got, err := cl.Discover(ctx, service, concord.Consistency(concord.Strong))
		if err == nil {
			if diff = cmp.Diff(want, got); diff == "" {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("Discover(%q) never returned the instances wanted (-want +got):\n%s", service, diff)
}
