package chaos

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"
)

// LeaderMonitor polls every running node's Status and records which nodes
// led which term. A node counts as leader of term T only when two Status
// answers in a row say "leader" at term T: the term was T throughout the
// second answer, so the node led during term T (one answer alone could pair
// the state before a step-down with the term after it).
type LeaderMonitor struct {
	mu      sync.Mutex
	leaders map[uint64][]string // term -> node ids that led it
	polls   int
}

// NewLeaderMonitor returns a monitor that has seen nothing yet.
func NewLeaderMonitor() *LeaderMonitor {
	return &LeaderMonitor{leaders: map[uint64][]string{}}
}

// Run polls until ctx ends; call it in its own goroutine.
func (m *LeaderMonitor) Run(ctx context.Context, c *Cluster, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		var wg sync.WaitGroup
		for _, n := range c.Nodes {
			if !n.Running() || n.Paused() {
				continue
			}
			wg.Go(func() { m.poll(ctx, c, n) })
		}
		wg.Wait()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (m *LeaderMonitor) poll(ctx context.Context, c *Cluster, n *Node) {
	ask := func() (string, uint64, bool) {
		sctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		st, err := c.Status(sctx, n)
		if err != nil {
			return "", 0, false
		}
		return st.GetState(), st.GetTerm(), true
	}
	state, term, ok := ask()
	if !ok || state != "leader" {
		return
	}
	state2, term2, ok := ask()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.polls++
	if !ok || state2 != "leader" || term2 != term {
		return
	}
	if !slices.Contains(m.leaders[term], n.ID) {
		m.leaders[term] = append(m.leaders[term], n.ID)
	}
}

// Terms returns the number of terms seen with a leader.
func (m *LeaderMonitor) Terms() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.leaders)
}

// Violations lists the terms that had more than one leader.
func (m *LeaderMonitor) Violations() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var terms []uint64
	for t, ids := range m.leaders {
		if len(ids) > 1 {
			terms = append(terms, t)
		}
	}
	sort.Slice(terms, func(i, j int) bool { return terms[i] < terms[j] })
	var out []string
	for _, t := range terms {
		out = append(out, fmt.Sprintf("term %d had %d leaders: %v", t, len(m.leaders[t]), m.leaders[t]))
	}
	return out
}

// Leaders returns term -> leader ids.
func (m *LeaderMonitor) Leaders() map[uint64][]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[uint64][]string, len(m.leaders))
	for t, ids := range m.leaders {
		out[t] = slices.Clone(ids)
	}
	return out
}
