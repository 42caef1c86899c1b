package concord_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	concord "github.com/concord-kv/concord/sdk/go"
	"github.com/concord-kv/concord/sdk/go/concordtest"
)

func TestLeaderKilledDuringWrites(t *testing.T) {
	c := concordtest.Start(t, 3)
	cl := newClient(t, c.URLs(), concord.WithTimeout(15*time.Second), concord.WithRefreshInterval(200*time.Millisecond))
	ctx := t.Context()
	st, err := cl.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	leader := -1
	for i, r := range c.Replicas {
		if r.URL() == st.LeaderAPI {
			leader = i
		}
	}
	if leader < 0 {
		t.Fatalf("leader %q not among %v", st.LeaderAPI, c.URLs())
	}

	type outcome struct {
		value string
		err   error
	}
	var (
		mu       sync.Mutex
		outcomes = map[string]outcome{}
		written  atomic.Int64
		wg       sync.WaitGroup
	)
	const writers, perWriter = 8, 60
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				k, v := fmt.Sprintf("fo:%d:%03d", w, i), fmt.Sprintf("%d-%d", w, i)
				_, err := cl.Put(ctx, k, []byte(v))
				mu.Lock()
				outcomes[k] = outcome{v, err}
				mu.Unlock()
				written.Add(1)
			}
		})
	}
	for written.Load() < writers*perWriter/4 {
		time.Sleep(5 * time.Millisecond)
	}
	c.Kill(leader)
	wg.Wait()
	c.Restart(leader)
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	c.WaitReady(rctx, leader)

	var acked, notApplied, unknown int
	for k, o := range outcomes {
		kv, err := cl.Get(ctx, k, concord.Consistency(concord.Strong))
		switch {
		case o.err == nil:
			acked++
			if err != nil || string(kv.Value) != o.value {
				t.Errorf("acknowledged %s lost: %v %v", k, kv, err)
			}
		case errors.Is(o.err, concord.ErrNoLeader):
			notApplied++
			if err == nil {
				t.Errorf("%s reported not applied (%v) but is present", k, o.err)
			}
		case errors.Is(o.err, concord.ErrOutcomeUnknown):
			unknown++
		default:
			t.Errorf("%s: unexpected error %v", k, o.err)
		}
	}
	t.Logf("acked %d, not applied %d, outcome unknown %d", acked, notApplied, unknown)
	if acked == 0 {
		t.Fatal("no write succeeded")
	}
}
