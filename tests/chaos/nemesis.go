package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"
)

// Fault is one injected fault and how to undo it.
type Fault struct {
	Desc string
	Heal func() error
}

// Inject starts one fault on c.
type Inject func(ctx context.Context, c *Cluster, rng *rand.Rand) (Fault, error)

// Nemesis injects faults one after another: a quiet spell, a fault held
// for a while, healed, and again, until its context ends.
type Nemesis struct {
	Inject Inject // nil: no faults
	// Quiet and Hold bound the random spells (uniform in [min, max]).
	QuietMin, QuietMax time.Duration
	HoldMin, HoldMax   time.Duration
}

// Event is one fault on the run's clock.
type Event struct {
	Start, End int64
	Desc       string
}

// Timeline records the faults of a run.
type Timeline struct {
	mu     sync.Mutex
	events []Event
}

func (t *Timeline) add(e Event) {
	t.mu.Lock()
	t.events = append(t.events, e)
	t.mu.Unlock()
}

// Events returns the faults recorded.
func (t *Timeline) Events() []Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.events)
}

func between(rng *rand.Rand, lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(rng.Int64N(int64(hi-lo)))
}

// Run injects faults until ctx ends, then heals the last one. Errors are
// harness failures (a node that will not restart), not findings.
func (n Nemesis) Run(ctx context.Context, c *Cluster, rng *rand.Rand, clock Clock, tl *Timeline) error {
	if n.Inject == nil {
		<-ctx.Done()
		return nil
	}
	for {
		if !sleepUntil(ctx, between(rng, n.QuietMin, n.QuietMax)) {
			return nil // the load is over
		}
		start := clock.Now()
		f, err := n.Inject(ctx, c, rng)
		if err != nil {
			return fmt.Errorf("inject: %w", err)
		}
		c.logf("%s nemesis: %s", time.Duration(start), f.Desc)
		sleepCtx(ctx, between(rng, n.HoldMin, n.HoldMax))
		err = f.Heal()
		tl.add(Event{Start: start, End: clock.Now(), Desc: f.Desc})
		c.logf("%s nemesis: healed %s", time.Duration(clock.Now()), f.Desc)
		if err != nil {
			return fmt.Errorf("heal %s: %w", f.Desc, err)
		}
	}
}

// leaderOrAny returns the leader, or a random running node if none is
// found soon.
func leaderOrAny(ctx context.Context, c *Cluster, rng *rand.Rand) (*Node, bool) {
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if l := c.Leader(lctx); l != nil {
		return l, true
	}
	var up []*Node
	for _, n := range c.Nodes {
		if n.Running() {
			up = append(up, n)
		}
	}
	if len(up) == 0 {
		return c.Nodes[rng.IntN(len(c.Nodes))], false
	}
	return up[rng.IntN(len(up))], false
}

func describe(n *Node, isLeader bool) string {
	if isLeader {
		return n.ID + " (leader)"
	}
	return n.ID
}

// KillLeader kills the leader with SIGKILL; healing restarts it.
func KillLeader(ctx context.Context, c *Cluster, rng *rand.Rand) (Fault, error) {
	n, leads := leaderOrAny(ctx, c, rng)
	c.Kill(n)
	return Fault{Desc: "kill -9 " + describe(n, leads), Heal: func() error { return c.Restart(n) }}, nil
}

// KillFollower kills a random follower with SIGKILL; healing restarts it.
func KillFollower(ctx context.Context, c *Cluster, rng *rand.Rand) (Fault, error) {
	l, _ := leaderOrAny(ctx, c, rng)
	var others []*Node
	for _, n := range c.Nodes {
		if n != l {
			others = append(others, n)
		}
	}
	n := others[rng.IntN(len(others))]
	c.Kill(n)
	return Fault{Desc: "kill -9 follower " + n.ID, Heal: func() error { return c.Restart(n) }}, nil
}

// KillAll kills every node with SIGKILL, in random order; healing restarts
// them all.
func KillAll(_ context.Context, c *Cluster, rng *rand.Rand) (Fault, error) {
	order := rng.Perm(len(c.Nodes))
	for _, i := range order {
		c.Kill(c.Nodes[i])
	}
	return Fault{Desc: "kill -9 all", Heal: func() error {
		var errs []error
		for _, i := range rng.Perm(len(c.Nodes)) {
			errs = append(errs, c.Restart(c.Nodes[i]))
		}
		return errors.Join(errs...)
	}}, nil
}

// KillRandom kills the leader or a follower, or (one time in four) every
// node; for the snapshot scenario, where each restart replays a snapshot.
func KillRandom(ctx context.Context, c *Cluster, rng *rand.Rand) (Fault, error) {
	switch rng.IntN(4) {
	case 0:
		return KillAll(ctx, c, rng)
	case 1:
		return KillLeader(ctx, c, rng)
	}
	return KillFollower(ctx, c, rng)
}

// PauseLeader stops the leader with SIGSTOP; healing sends SIGCONT.
func PauseLeader(ctx context.Context, c *Cluster, rng *rand.Rand) (Fault, error) {
	n, leads := leaderOrAny(ctx, c, rng)
	c.Pause(n)
	return Fault{Desc: "SIGSTOP " + describe(n, leads), Heal: func() error { c.Resume(n); return nil }}, nil
}

func randomCut(rng *rand.Rand) Cut {
	return []Cut{Blackhole, Hold, Reset}[rng.IntN(3)]
}

func ids(c *Cluster, group []int) string {
	var s []string
	for _, i := range group {
		s = append(s, c.Nodes[i].ID)
	}
	return "{" + strings.Join(s, ",") + "}"
}

// cutBetween cuts every link between a and b, both ways.
func cutBetween(c *Cluster, a, b []int, cut Cut) {
	for _, i := range a {
		for _, j := range b {
			c.Net.Set(i, j, Rule{Cut: cut})
			c.Net.Set(j, i, Rule{Cut: cut})
		}
	}
}

func healNet(c *Cluster) func() error { return func() error { c.Net.Heal(); return nil } }

func without(c *Cluster, skip ...int) []int {
	var out []int
	for i := range c.Nodes {
		if !slices.Contains(skip, i) {
			out = append(out, i)
		}
	}
	return out
}

// PartitionLeader cuts the leader off from every other node.
func PartitionLeader(ctx context.Context, c *Cluster, rng *rand.Rand) (Fault, error) {
	n, leads := leaderOrAny(ctx, c, rng)
	cut := randomCut(rng)
	cutBetween(c, []int{n.Index}, without(c, n.Index), cut)
	return Fault{Desc: fmt.Sprintf("isolate %s (%s)", describe(n, leads), cut), Heal: healNet(c)}, nil
}

// PartitionLeaderOneWay drops what the leader sends but lets it hear the
// others: it cannot heartbeat, while the new leader's messages reach it.
func PartitionLeaderOneWay(ctx context.Context, c *Cluster, rng *rand.Rand) (Fault, error) {
	n, leads := leaderOrAny(ctx, c, rng)
	cut := []Cut{Blackhole, Hold}[rng.IntN(2)]
	for _, j := range without(c, n.Index) {
		c.Net.Set(n.Index, j, Rule{Cut: cut})
	}
	return Fault{Desc: fmt.Sprintf("cut %s's outbound (%s)", describe(n, leads), cut), Heal: healNet(c)}, nil
}

// PartitionMinority cuts a random minority off from the majority.
func PartitionMinority(_ context.Context, c *Cluster, rng *rand.Rand) (Fault, error) {
	perm := rng.Perm(len(c.Nodes))
	k := max(1, (len(c.Nodes)-1)/2)
	minority, majority := perm[:k], perm[k:]
	cut := randomCut(rng)
	cutBetween(c, minority, majority, cut)
	return Fault{Desc: fmt.Sprintf("partition minority %s | %s (%s)", ids(c, minority), ids(c, majority), cut), Heal: healNet(c)}, nil
}

// PartitionHalves cuts the cluster into two random halves.
func PartitionHalves(_ context.Context, c *Cluster, rng *rand.Rand) (Fault, error) {
	perm := rng.Perm(len(c.Nodes))
	k := 1 + rng.IntN(len(c.Nodes)-1)
	a, b := perm[:k], perm[k:]
	cut := randomCut(rng)
	cutBetween(c, a, b, cut)
	return Fault{Desc: fmt.Sprintf("partition %s | %s (%s)", ids(c, a), ids(c, b), cut), Heal: healNet(c)}, nil
}

// PartitionBridge splits the nodes in two sides that cannot talk, except
// through one bridge node that sees both.
func PartitionBridge(_ context.Context, c *Cluster, rng *rand.Rand) (Fault, error) {
	perm := rng.Perm(len(c.Nodes))
	bridge, rest := perm[0], perm[1:]
	k := len(rest) / 2
	a, b := rest[:k], rest[k:]
	cut := randomCut(rng)
	cutBetween(c, a, b, cut)
	return Fault{Desc: fmt.Sprintf("bridge %s | %s | %s (%s)", ids(c, a), c.Nodes[bridge].ID, ids(c, b), cut), Heal: healNet(c)}, nil
}

// FlakyLinks gives random links latency, jitter and connection drops.
func FlakyLinks(_ context.Context, c *Cluster, rng *rand.Rand) (Fault, error) {
	var desc []string
	for i := range c.Nodes {
		for j := range c.Nodes {
			if i == j || rng.IntN(3) == 0 {
				continue
			}
			r := Rule{
				Delay:    between(rng, 5*time.Millisecond, 300*time.Millisecond),
				Jitter:   between(rng, 0, 200*time.Millisecond),
				DropProb: float64(rng.IntN(50)) / 1000,
			}
			c.Net.Set(i, j, r)
			desc = append(desc, fmt.Sprintf("%s->%s %s", c.Nodes[i].ID, c.Nodes[j].ID, r))
		}
	}
	return Fault{Desc: "flaky links: " + strings.Join(desc, "; "), Heal: healNet(c)}, nil
}

// Mixed injects one of the other faults, chosen at random each time.
func Mixed(ctx context.Context, c *Cluster, rng *rand.Rand) (Fault, error) {
	all := []Inject{KillLeader, KillFollower, KillAll, PauseLeader, PartitionLeader, PartitionLeaderOneWay,
		PartitionMinority, PartitionHalves, PartitionBridge, FlakyLinks}
	return all[rng.IntN(len(all))](ctx, c, rng)
}

// follower returns a random node that is not the leader (or not the node
// leaderOrAny found).
func follower(ctx context.Context, c *Cluster, rng *rand.Rand) *Node {
	l, _ := leaderOrAny(ctx, c, rng)
	others := without(c, l.Index)
	return c.Nodes[others[rng.IntN(len(others))]]
}

// PartitionFollower cuts a random follower off from every other node.
func PartitionFollower(ctx context.Context, c *Cluster, rng *rand.Rand) (Fault, error) {
	n := follower(ctx, c, rng)
	cut := randomCut(rng)
	cutBetween(c, []int{n.Index}, without(c, n.Index), cut)
	return Fault{Desc: fmt.Sprintf("isolate follower %s (%s)", n.ID, cut), Heal: healNet(c)}, nil
}

// LagFollower kills or isolates a random follower, so that it falls
// behind while writes go on; with tiny snapshots and trailing logs it
// must then catch up by InstallSnapshot.
func LagFollower(ctx context.Context, c *Cluster, rng *rand.Rand) (Fault, error) {
	if rng.IntN(2) == 0 {
		return KillFollower(ctx, c, rng)
	}
	return PartitionFollower(ctx, c, rng)
}

// cutAPI cuts every connection to node i's API (from clients and from
// replicas forwarding to it) with cut, both ways.
func cutAPI(c *Cluster, i int, cut Cut) {
	c.APINet.Set(c.Outside(), i, Rule{Cut: cut})
	c.APINet.Set(i, c.Outside(), Rule{Cut: cut})
}

func healAll(c *Cluster) func() error {
	return func() error {
		c.Net.Heal()
		if c.APINet != nil {
			c.APINet.Heal()
		}
		return nil
	}
}

// CutLeaderAPI makes the leader's API unreachable, for clients and for
// followers forwarding to it; Raft still works, so it stays leader.
func CutLeaderAPI(ctx context.Context, c *Cluster, rng *rand.Rand) (Fault, error) {
	n, leads := leaderOrAny(ctx, c, rng)
	cut := randomCut(rng)
	cutAPI(c, n.Index, cut)
	return Fault{Desc: fmt.Sprintf("cut the API of %s (%s)", describe(n, leads), cut), Heal: healAll(c)}, nil
}

// CutFollowerAPI makes a random follower's API unreachable.
func CutFollowerAPI(ctx context.Context, c *Cluster, rng *rand.Rand) (Fault, error) {
	n := follower(ctx, c, rng)
	cut := randomCut(rng)
	cutAPI(c, n.Index, cut)
	return Fault{Desc: fmt.Sprintf("cut the API of follower %s (%s)", n.ID, cut), Heal: healAll(c)}, nil
}

// IsolateLeaderAll cuts the leader off from every other node over Raft
// and makes its API unreachable.
func IsolateLeaderAll(ctx context.Context, c *Cluster, rng *rand.Rand) (Fault, error) {
	n, leads := leaderOrAny(ctx, c, rng)
	cut := randomCut(rng)
	cutBetween(c, []int{n.Index}, without(c, n.Index), cut)
	cutAPI(c, n.Index, cut)
	return Fault{Desc: fmt.Sprintf("isolate %s over Raft and API (%s)", describe(n, leads), cut), Heal: healAll(c)}, nil
}

// APIPartition cuts the leader's API, a follower's API, or the leader's
// Raft and API, at random. The cluster needs API proxies.
func APIPartition(ctx context.Context, c *Cluster, rng *rand.Rand) (Fault, error) {
	if c.APINet == nil {
		return Fault{}, errors.New("the cluster has no API proxies (ClusterConfig.APIProxies)")
	}
	all := []Inject{CutLeaderAPI, CutFollowerAPI, IsolateLeaderAll}
	return all[rng.IntN(len(all))](ctx, c, rng)
}

// RaftPartitions isolates the leader both ways or one way, or a random
// minority, at random: for the fast-election scenario.
func RaftPartitions(ctx context.Context, c *Cluster, rng *rand.Rand) (Fault, error) {
	all := []Inject{PartitionLeader, PartitionLeaderOneWay, PartitionMinority}
	return all[rng.IntN(len(all))](ctx, c, rng)
}

// sigtermWait bounds a graceful shutdown: a replica still running this
// long after SIGTERM hangs (it is killed and counted as a violation).
const sigtermWait = time.Minute

// TermRandom stops the leader or a random follower with SIGTERM (a graceful
// shutdown) and waits until it has exited; healing restarts it. An exit
// status other than 0, or no exit within sigtermWait, is a violation
// (Cluster.Crashes).
func TermRandom(ctx context.Context, c *Cluster, rng *rand.Rand) (Fault, error) {
	var n *Node
	var leads bool
	if rng.IntN(2) == 0 {
		n, leads = leaderOrAny(ctx, c, rng)
	} else {
		n = follower(ctx, c, rng)
	}
	if err := c.Terminate(n, sigtermWait); err != nil {
		c.logf("%v", err)
	}
	return Fault{Desc: "SIGTERM " + describe(n, leads), Heal: func() error { return c.Restart(n) }}, nil
}
