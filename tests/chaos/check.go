package chaos

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/anishathalye/porcupine"
	concordv1 "github.com/concord-kv/concord/proto/gen/go/concord/v1"
	concord "github.com/concord-kv/concord/sdk/go"
)

// finalReads reads every register key with a strong Get (retrying until
// one succeeds) and records the reads as the last operations of the
// history, by client id reader.
func finalReads(ctx context.Context, c *concord.Client, w Workload, clock Clock, hist *History, reader int) error {
	for i := range w.Keys {
		key := w.RegisterKey(i)
		for {
			call := clock.Now()
			gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			kv, err := c.Get(gctx, key, concord.Consistency(concord.Strong))
			cancel()
			ret := clock.Now()
			var out Output
			switch {
			case err == nil:
				out = Output{Status: StatusOK, Value: string(kv.Value), Rev: kv.ModRevision, Node: kv.Node}
			case errors.Is(err, concord.ErrNotFound):
				out = Output{Status: StatusNotFound}
			default:
				if ctx.Err() != nil {
					return fmt.Errorf("final read of %s: %w", key, err)
				}
				continue
			}
			hist.Add(porcupine.Operation{ClientId: reader, Input: Input{Op: OpGet, Key: key}, Call: call, Output: out, Return: ret})
			break
		}
	}
	return nil
}

// finalSet lists the set's elements with a strong List, retrying until a
// whole listing succeeds.
func finalSet(ctx context.Context, c *concord.Client, prefix string) (map[string]bool, error) {
	for {
		got := map[string]bool{}
		var err error
		for kv, e := range c.List(ctx, prefix, concord.Consistency(concord.Strong), concord.KeysOnly(), concord.WithPageSize(1000)) {
			if e != nil {
				err = e
				break
			}
			got[kv.Key] = true
		}
		if err == nil {
			return got, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("final list of %s: %w", prefix, err)
		}
		sleepCtx(ctx, 200*time.Millisecond)
	}
}

// CheckSet compares the final set with what the clients were told:
// lost lists acknowledged elements that are missing; phantoms lists
// elements whose add certainly failed but that are present.
func CheckSet(set *SetResult, final map[string]bool) (lost, phantoms []string) {
	set.mu.Lock()
	defer set.mu.Unlock()
	for _, k := range set.Acked {
		if !final[k] {
			lost = append(lost, k)
		}
	}
	for _, k := range set.Failed {
		if final[k] {
			phantoms = append(phantoms, k)
		}
	}
	return lost, phantoms
}

// nodeState is one replica's whole key space at an applied index.
type nodeState struct {
	applied uint64
	digest  string
	keys    map[string]string // key -> "value@mod/create/version"
}

// Converge waits until every replica has applied the same index, then
// compares their key spaces read with eventual Lists at that index. It
// returns the differences it found (none when the replicas agree).
func Converge(ctx context.Context, c *Cluster) (applied uint64, diffs []string, err error) {
	var last []string
	for {
		applied, states, err := c.readStates(ctx)
		if err == nil {
			return applied, compareStates(c, states), nil
		}
		last = append(last[:0], err.Error())
		select {
		case <-ctx.Done():
			return 0, nil, fmt.Errorf("replicas did not converge: %s", strings.Join(last, "; "))
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// readStates reads every replica's state, failing unless all of them
// answered at one and the same applied index.
func (c *Cluster) readStates(ctx context.Context) (uint64, []nodeState, error) {
	var target, commit uint64
	for i, n := range c.Nodes {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := c.Status(sctx, n)
		cancel()
		if err != nil {
			return 0, nil, fmt.Errorf("%s status: %w", n.ID, err)
		}
		if i == 0 {
			target, commit = st.GetAppliedIndex(), st.GetCommitIndex()
		} else if st.GetAppliedIndex() != target || st.GetCommitIndex() != commit {
			return 0, nil, fmt.Errorf("%s at applied %d commit %d, %s at applied %d commit %d",
				n.ID, st.GetAppliedIndex(), st.GetCommitIndex(), c.Nodes[0].ID, target, commit)
		}
	}
	states := make([]nodeState, len(c.Nodes))
	for i, n := range c.Nodes {
		s, err := c.readState(ctx, n)
		if err != nil {
			return 0, nil, err
		}
		if s.applied != target {
			return 0, nil, fmt.Errorf("%s listed at %d, not %d", n.ID, s.applied, target)
		}
		states[i] = s
	}
	return target, states, nil
}

func (c *Cluster) readState(ctx context.Context, n *Node) (nodeState, error) {
	s := nodeState{keys: map[string]string{}}
	h := sha256.New()
	req := &concordv1.ListRequest{Limit: 1000, Consistency: concordv1.Consistency_CONSISTENCY_EVENTUAL}
	var rev uint64
	for page := 0; ; page++ {
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := n.kv.List(lctx, connect.NewRequest(req))
		cancel()
		if err != nil {
			return s, fmt.Errorf("%s list: %w", n.ID, err)
		}
		r := resp.Msg.GetHeader().GetRevision()
		if page > 0 && r != rev {
			return s, fmt.Errorf("%s moved from %d to %d while listing", n.ID, rev, r)
		}
		rev = r
		for _, kv := range resp.Msg.GetKvs() {
			v := fmt.Sprintf("%q@%d/%d/%d/%d", kv.GetValue(), kv.GetModRevision(), kv.GetCreateRevision(), kv.GetVersion(), kv.GetExpiresAtUnixMs())
			s.keys[kv.GetKey()] = v
			var l [8]byte
			binary.BigEndian.PutUint64(l[:], uint64(len(kv.GetKey())))
			h.Write(l[:])
			h.Write([]byte(kv.GetKey()))
			binary.BigEndian.PutUint64(l[:], uint64(len(v)))
			h.Write(l[:])
			h.Write([]byte(v))
		}
		if resp.Msg.GetNextCursor() == "" {
			break
		}
		req.Cursor = resp.Msg.GetNextCursor()
	}
	s.applied = rev
	s.digest = hex.EncodeToString(h.Sum(nil))[:16]
	return s, nil
}

func compareStates(c *Cluster, states []nodeState) []string {
	var diffs []string
	ref := states[0]
	for i, s := range states[1:] {
		if s.digest == ref.digest {
			continue
		}
		n := c.Nodes[i+1]
		var keys []string
		for k := range ref.keys {
			keys = append(keys, k)
		}
		for k := range s.keys {
			if _, ok := ref.keys[k]; !ok {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		var d []string
		for _, k := range slices.Compact(keys) {
			if ref.keys[k] != s.keys[k] {
				d = append(d, fmt.Sprintf("%s: %s=%q %s=%q", k, c.Nodes[0].ID, ref.keys[k], n.ID, s.keys[k]))
			}
		}
		if len(d) > 5 {
			d = append(d[:5], fmt.Sprintf("… %d more", len(d)-5))
		}
		diffs = append(diffs, fmt.Sprintf("state of %s (%s) differs from %s (%s) at applied index %d: %s",
			n.ID, s.digest, c.Nodes[0].ID, ref.digest, ref.applied, strings.Join(d, "; ")))
	}
	return diffs
}
