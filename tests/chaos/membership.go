package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"time"

	concord "github.com/concord-kv/concord/sdk/go"
)

// admin is an SDK client of every node but skip, for membership calls.
func (c *Cluster) admin(ctx context.Context, skip *Node) (*concord.Client, error) {
	return concord.New(ctx, c.othersURLs(skip), concord.WithHTTPClient(c.http), concord.WithTimeout(10*time.Second))
}

// untilOK calls f until it succeeds or the minute is up.
func untilOK(ctx context.Context, what string, f func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		err := f(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		sleepCtx(ctx, 200*time.Millisecond)
	}
}

// ReplaceFollower removes a random follower from the configuration with
// the SDK's RemoveMember while the load runs, and leaves it running outside
// the cluster for the fault's spell (it must not disrupt the cluster).
// Healing kills it, wipes its data directory and starts it again with
// --join: it asks to be added back, catches up from nothing and is promoted
// to voter.
func ReplaceFollower(ctx context.Context, c *Cluster, rng *rand.Rand) (Fault, error) {
	return replaceFollower(ctx, c, rng, false)
}

// ReplaceDeadFollower kills a random follower, removes it 2–4 s later (the
// leader has been failing to reach it and backing off), and heals as
// ReplaceFollower does: the fresh replica comes up at the same addresses
// while the leader's replicator for the removed member may still be
// retrying (bug B10).
func ReplaceDeadFollower(ctx context.Context, c *Cluster, rng *rand.Rand) (Fault, error) {
	return replaceFollower(ctx, c, rng, true)
}

func replaceFollower(ctx context.Context, c *Cluster, rng *rand.Rand, dead bool) (Fault, error) {
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	l := c.Leader(lctx)
	cancel()
	if l == nil {
		select {
		case <-ctx.Done(): // the load ended while we looked
			return Fault{Desc: "none (the load ended)", Heal: func() error { return nil }}, nil
		default:
			return Fault{}, errors.New("no leader to remove a member through")
		}
	}
	var followers []*Node
	for _, n := range c.Nodes {
		if n != l {
			followers = append(followers, n)
		}
	}
	n := followers[rng.IntN(len(followers))]
	desc := fmt.Sprintf("remove follower %s (leader %s), keep it running", n.ID, l.ID)
	if dead {
		c.Kill(n)
		sleepCtx(context.WithoutCancel(ctx), time.Duration(2000+rng.IntN(2000))*time.Millisecond)
		desc = fmt.Sprintf("kill follower %s, remove it (leader %s)", n.ID, l.ID)
	}
	cl, err := c.admin(context.WithoutCancel(ctx), n)
	if err != nil {
		return Fault{}, fmt.Errorf("admin client: %w", err)
	}
	err = untilOK(context.WithoutCancel(ctx), "remove "+n.ID, func(ctx context.Context) error {
		err := cl.RemoveMember(ctx, n.ID)
		if errors.Is(err, concord.ErrNotFound) {
			return nil // an earlier attempt whose answer was lost did it
		}
		return err
	})
	if err != nil {
		_ = cl.Close()
		return Fault{}, err
	}
	return Fault{Desc: desc, Heal: func() error {
		defer func() { _ = cl.Close() }()
		return c.rejoin(context.WithoutCancel(ctx), cl, n)
	}}, nil
}

// rejoin replaces the removed node n by a fresh replica with its id and
// addresses and an empty data directory, and waits until it is a voter.
func (c *Cluster) rejoin(ctx context.Context, cl *concord.Client, n *Node) error {
	c.Kill(n)
	if err := os.RemoveAll(n.DataDir); err != nil {
		return err
	}
	n.mu.Lock()
	n.rejoin = true
	n.mu.Unlock()
	if err := c.Restart(n); err != nil {
		return err
	}
	return untilOK(ctx, n.ID+" back as a voter", func(ctx context.Context) error {
		ms, err := cl.Members(ctx)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(ms, func(m concord.Member) bool { return m.ID == n.ID && m.Voter }) {
			return fmt.Errorf("%s is not a voter yet: %v", n.ID, ms)
		}
		return nil
	})
}
