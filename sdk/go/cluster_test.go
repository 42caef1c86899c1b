package concord_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	concord "github.com/concord-kv/concord/sdk/go"
	"github.com/concord-kv/concord/sdk/go/concordtest"
)

func TestMembershipCalls(t *testing.T) {
	c := concordtest.Start(t, 3)
	cl := newClient(t, c.URLs(), concord.WithTimeout(30*time.Second), concord.WithRefreshInterval(200*time.Millisecond))
	ctx := t.Context()

	byID := func() map[string]concord.Member {
		t.Helper()
		ms, err := cl.Members(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]concord.Member{}
		for _, m := range ms {
			out[m.ID] = m
		}
		return out
	}
	waitMembers := func(what string, ok func(map[string]concord.Member) error) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			err := ok(byID())
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %v", what, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	st, err := cl.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	leader := st.LeaderID
	var followers []int
	for i, r := range c.Replicas {
		if r.ID != leader {
			followers = append(followers, i)
		}
	}
	waitMembers("the leader's view", func(ms map[string]concord.Member) error {
		for id, m := range ms {
			want := "follower"
			if id == leader {
				want = "leader"
			}
			if m.State != want || m.LastContact < 0 || m.Unreachable != 0 || !m.Voter {
				return fmt.Errorf("%s: %+v, want %s", id, m, want)
			}
		}
		return nil
	})

	t.Run("add an existing member changes nothing", func(t *testing.T) {
		r := c.Replicas[followers[0]]
		m, err := cl.AddMember(ctx, concord.NewMember{ID: r.ID, RaftAddress: r.RaftAddr})
		if err != nil || m.ID != r.ID || !m.Voter {
			t.Fatalf("%+v %v", m, err)
		}
		if _, err := cl.AddMember(ctx, concord.NewMember{ID: r.ID}); !errors.Is(err, concord.ErrInvalidArgument) {
			t.Fatalf("without a raft address: %v", err)
		}
		if _, err := cl.AddMember(ctx, concord.NewMember{ID: "x", RaftAddress: r.RaftAddr}); !errors.Is(err, concord.ErrConflict) {
			t.Fatalf("another member's address: %v", err)
		}
	})

	t.Run("transfer leadership to a named voter", func(t *testing.T) {
		target := c.Replicas[followers[0]].ID
		got, err := cl.TransferLeadership(ctx, target)
		if err != nil {
			t.Fatal(err)
		}
		if got != "" && got != target {
			t.Fatalf("new leader %s, want %s", got, target)
		}
		waitMembers("the new leader", func(ms map[string]concord.Member) error {
			if !ms[target].Leader {
				return fmt.Errorf("%s does not lead: %+v", target, ms)
			}
			return nil
		})
		if _, err := cl.TransferLeadership(ctx, "nobody"); !errors.Is(err, concord.ErrNotFound) {
			t.Fatalf("to a stranger: %v", err)
		}
	})

	t.Run("remove", func(t *testing.T) {
		if err := cl.RemoveMember(ctx, "nobody"); !errors.Is(err, concord.ErrNotFound) {
			t.Fatalf("a stranger: %v", err)
		}
		if err := cl.RemoveMember(ctx, ""); !errors.Is(err, concord.ErrInvalidArgument) {
			t.Fatalf("no id: %v", err)
		}
		st, err := cl.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		dead := -1
		for i, r := range c.Replicas {
			if r.ID != st.LeaderID {
				dead = i
			}
		}
		id := c.Replicas[dead].ID
		if err := cl.RemoveMember(ctx, id, concord.IfUnreachableFor(time.Second)); !errors.Is(err, concord.ErrConflict) {
			t.Fatalf("a live member if unreachable: %v", err)
		}
		c.Kill(dead)
		waitMembers("the dead member is unreachable for 1s", func(ms map[string]concord.Member) error {
			if m := ms[id]; m.State != "unknown" || m.Unreachable < time.Second {
				return fmt.Errorf("%+v", m)
			}
			return nil
		})
		if err := cl.RemoveMember(ctx, id, concord.IfUnreachableFor(time.Second)); err != nil {
			t.Fatal(err)
		}
		if ms := byID(); len(ms) != 2 {
			t.Fatalf("members after removal: %+v", ms)
		}
	})
}
