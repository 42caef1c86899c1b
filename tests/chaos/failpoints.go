package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"time"
)

// FailpointRule is how one store of a failpoint build misbehaves; it is the
// JSON of services/replica/internal/store/failpoint.go.
type FailpointRule struct {
	Mode    string  `json:"mode"` // error, slow or panic
	Prob    float64 `json:"prob,omitempty"`
	DelayMs int64   `json:"delay_ms,omitempty"`
}

// FailpointState is what one replica has armed: a rule per store (log,
// stable, snapshot) and a shift of its clock.
type FailpointState struct {
	Log           *FailpointRule `json:"log,omitempty"`
	Stable        *FailpointRule `json:"stable,omitempty"`
	Snapshot      *FailpointRule `json:"snapshot,omitempty"`
	ClockOffsetMs int64          `json:"clock_offset_ms,omitempty"`
}

// Arm replaces node n's failpoint state (the zero state disarms it).
func (c *Cluster) Arm(ctx context.Context, n *Node, st FailpointState) error {
	if n.FailpointAddr == "" {
		return fmt.Errorf("%s has no failpoint endpoint: the scenario must set Failpoints", n.ID)
	}
	body, err := json.Marshal(st)
	if err != nil {
		return err
	}
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPut, "http://"+n.FailpointAddr+"/failpoints", bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("arm %s: %w", n.ID, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusNoContent {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("arm %s: %s: %s", n.ID, resp.Status, msg)
	}
	return nil
}

// fired asks node n how often its armed rules fired.
func (c *Cluster) fired(ctx context.Context, n *Node) (int64, error) {
	fctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(fctx, http.MethodGet, "http://"+n.FailpointAddr+"/failpoints", nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	var body struct {
		Fired map[string]int64 `json:"fired"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return 0, err
	}
	var total int64
	for _, v := range body.Fired {
		total += v
	}
	return total, nil
}

// armRunning arms node n, retrying for a while (a replica starved of CPU
// may answer late). It gives up without an error if n stops running.
func (c *Cluster) armRunning(ctx context.Context, n *Node, st FailpointState) error {
	deadline := time.Now().Add(20 * time.Second)
	for n.Running() {
		err := c.Arm(ctx, n, st)
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		sleepCtx(ctx, 100*time.Millisecond)
	}
	return nil
}

// disarmOrRestart heals a node after a disk fault: a running node is
// disarmed, one that died of the fault (or dies while we disarm it) is
// restarted with its data directory as the fault left it.
func (c *Cluster) disarmOrRestart(ctx context.Context, n *Node) error {
	deadline := time.Now().Add(20 * time.Second)
	for n.Running() {
		fired, _ := c.fired(ctx, n)
		err := c.Arm(ctx, n, FailpointState{})
		if err == nil {
			c.logf("%s: the fault fired %d times; disarmed", n.ID, fired)
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		sleepCtx(ctx, 100*time.Millisecond)
	}
	return c.Restart(n)
}

// diskFault arms rule on one store of the leader (half of the time) or of
// a random node; healing disarms it, or restarts the node if the fault
// made it exit.
func diskFault(ctx context.Context, c *Cluster, rng *rand.Rand, rule FailpointRule) (Fault, error) {
	n, leads := leaderOrAny(ctx, c, rng)
	if rng.IntN(2) == 0 {
		n, leads = c.Nodes[rng.IntN(len(c.Nodes))], false
	}
	which := "snapshot"
	switch p := rng.IntN(10); {
	case p < 6:
		which = "log"
	case p < 8:
		which = "stable"
	}
	return armStore(ctx, c, n, leads, which, rule)
}

// armStore arms rule on store which (log, stable or snapshot) of n.
func armStore(ctx context.Context, c *Cluster, n *Node, leads bool, which string, rule FailpointRule) (Fault, error) {
	var st FailpointState
	switch which {
	case "log":
		st.Log = &rule
	case "stable":
		st.Stable = &rule
	default:
		st.Snapshot = &rule
	}
	desc := fmt.Sprintf("disk %s on %s's %s store (prob %.2f", rule.Mode, describe(n, leads), which, rule.Prob)
	if rule.DelayMs > 0 {
		desc += fmt.Sprintf(", %dms", rule.DelayMs)
	}
	desc += ")"
	heal := func() error { return c.disarmOrRestart(context.WithoutCancel(ctx), n) }
	if !n.Running() {
		return Fault{Desc: desc + ": node down, not armed", Heal: heal}, nil
	}
	if err := c.armRunning(context.WithoutCancel(ctx), n, st); err != nil {
		return Fault{}, err
	}
	return Fault{Desc: desc, Heal: heal}, nil
}

// LeaderLogError makes the leader's log store fail 30–50% of its calls: a
// batch it failed to store leaves it (and the followers that got part of
// it) with an uncommitted suffix, and failed reads make it walk its
// followers' next index far back. That is how bug B2 showed. Since the fix
// of B3 a failed append is fatal, so the leader now dies and restarts with
// its unreplicated suffix instead of carrying on: the scenario still makes
// divergent suffixes, but B2's exact sequence is replayed only by
// TestFollowerDoesNotCommitADivergentSuffix (services/replica/internal/store).
func LeaderLogError(ctx context.Context, c *Cluster, rng *rand.Rand) (Fault, error) {
	n, leads := leaderOrAny(ctx, c, rng)
	return armStore(ctx, c, n, leads, "log", FailpointRule{Mode: "error", Prob: 0.3 + 0.2*rng.Float64()})
}

// DiskError makes one store of one node fail a fraction (5–50%) of its
// calls with an I/O error.
func DiskError(ctx context.Context, c *Cluster, rng *rand.Rand) (Fault, error) {
	return diskFault(ctx, c, rng, FailpointRule{Mode: "error", Prob: 0.05 + 0.45*rng.Float64()})
}

// DiskSlow makes one store of one node sleep 20–400 ms in a fraction
// (20–100%) of its calls.
func DiskSlow(ctx context.Context, c *Cluster, rng *rand.Rand) (Fault, error) {
	return diskFault(ctx, c, rng, FailpointRule{Mode: "slow", Prob: 0.2 + 0.8*rng.Float64(), DelayMs: 20 + rng.Int64N(380)})
}

// DiskPanic makes one store of one node panic in a fraction (2–30%) of its
// calls: the process dies mid-write, as on a fatal disk error.
func DiskPanic(ctx context.Context, c *Cluster, rng *rand.Rand) (Fault, error) {
	return diskFault(ctx, c, rng, FailpointRule{Mode: "panic", Prob: 0.02 + 0.28*rng.Float64()})
}

// MaxClockJump bounds ClockJump; the clock-jump scenario's TTLs are longer
// than this, so no key may expire during a run however the clocks move.
const MaxClockJump = 90 * time.Minute

// ClockJump shifts the clock of the leader (half of the time) or of a
// random node by ±1–90 minutes; healing puts it back. Raft's own timers are
// not affected: only the clock that stamps writes and decides expiry.
func ClockJump(ctx context.Context, c *Cluster, rng *rand.Rand) (Fault, error) {
	n, leads := leaderOrAny(ctx, c, rng)
	if rng.IntN(2) == 0 {
		n, leads = c.Nodes[rng.IntN(len(c.Nodes))], false
	}
	shift := time.Minute + time.Duration(rng.Int64N(int64(MaxClockJump-time.Minute)))
	if rng.IntN(2) == 0 {
		shift = -shift
	}
	if err := c.armRunning(context.WithoutCancel(ctx), n, FailpointState{ClockOffsetMs: shift.Milliseconds()}); err != nil {
		return Fault{}, err
	}
	return Fault{Desc: fmt.Sprintf("clock of %s %+v", describe(n, leads), shift), Heal: func() error {
		return c.armRunning(context.WithoutCancel(ctx), n, FailpointState{})
	}}, nil
}
