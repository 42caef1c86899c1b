package discovery

import (
	"context"
	"errors"
	"slices"
	"time"
)

// Replica is what the discovery loop needs from the local replica.
type Replica interface {
	// InCluster reports whether this replica has a Raft configuration or
	// knows a leader: it bootstrapped, was added, or recovered its state.
	InCluster() bool
	// PeerStatus asks the replica serving apiURL about its cluster.
	PeerStatus(ctx context.Context, apiURL string) (PeerStatus, error)
	// Bootstrap starts the cluster with these members, this replica included.
	Bootstrap(members []Instance) error
	// Join asks the cluster to add this replica through the given API URLs
	// (retried until it succeeds or ctx ends).
	Join(ctx context.Context, apiURLs []string)
	// IsLeader reports whether this replica leads.
	IsLeader() bool
	// Members is the latest Raft configuration.
	Members() ([]Member, error)
	// UpdateAddress moves member m to a new Raft address, keeping its
	// suffrage. Leader only.
	UpdateAddress(ctx context.Context, m Member, raftAddr string) error
}

// PeerStatus is another replica's view of its cluster.
type PeerStatus struct {
	// LeaderAPI is the leader's API URL ("" when it knows none).
	LeaderAPI string
	// Members are the node ids of its Raft configuration (none before it
	// bootstrapped or was added).
	Members []string
}

// Member is one server of the Raft configuration.
type Member struct {
	ID, RaftAddr string
	Voter        bool
}

// Run registers this replica and follows the service until ctx ends: it
// forms or joins a cluster when the replica has none and, while the replica
// leads, keeps the members' Raft addresses on what they registered. It does
// not deregister; call Deregister after it returned.
func (a *Agent) Run(ctx context.Context, r Replica) {
	backoff := 100 * time.Millisecond
	wait := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	registered := false
	var index uint64
	for ctx.Err() == nil {
		if !registered {
			if err := a.Register(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				a.log.Warn("consul registration failed; retrying", "error", err, "retry_in", backoff)
				wait(backoff)
				backoff = min(2*backoff, maxBackoff)
				continue
			}
			a.log.Info("registered in consul", "service", a.cfg.Service, "id", a.ServiceID())
			registered, index = true, 0
		}
		formed := r.InCluster()
		w := steadyWait
		if !formed {
			w = formingWait
		}
		instances, next, err := a.Instances(ctx, index, w)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			a.log.Warn("consul query failed; retrying", "error", err, "retry_in", backoff)
			wait(backoff)
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		backoff = 100 * time.Millisecond
		index = next
		self := slices.IndexFunc(instances, func(in Instance) bool { return in.NodeID == a.cfg.NodeID })
		if self < 0 || instances[self].APIURL != a.cfg.APIURL || instances[self].RaftAddr != a.cfg.RaftAddr {
			registered = false // deregistered by someone, or registered by an older run: register again
			continue
		}
		if !formed {
			a.form(ctx, r, instances)
			continue
		}
		if r.IsLeader() {
			a.reconcile(ctx, r, instances)
		}
	}
}

// form joins the running cluster if an instance knows its leader, or
// bootstraps when BootstrapExpect instances are registered, all answer and
// none is in a cluster yet. Otherwise it waits for the next round.
func (a *Agent) form(ctx context.Context, r Replica, instances []Instance) {
	forming := false
	var answered []Instance
	for _, in := range instances {
		if in.NodeID == a.cfg.NodeID {
			answered = append(answered, in)
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, statusTimeout)
		st, err := r.PeerStatus(sctx, in.APIURL)
		cancel()
		if err != nil {
			a.log.Debug("registered replica does not answer", "peer", in.NodeID, "api", in.APIURL, "error", err)
			continue
		}
		answered = append(answered, in)
		if st.LeaderAPI != "" {
			a.log.Info("joining the running cluster", "through", st.LeaderAPI)
			r.Join(ctx, []string{st.LeaderAPI, in.APIURL})
			return
		}
		if len(st.Members) > 0 {
			// Bootstrapped, no leader yet: its election needs no help from
			// us (a replica without a configuration grants its vote), and
			// once it has a leader we join or are already in.
			forming = true
		}
	}
	if forming || r.InCluster() {
		return
	}
	expect := a.cfg.BootstrapExpect
	if expect == 0 {
		a.log.Debug("no running cluster to join yet (bootstrap expect 0: never bootstraps)")
		return
	}
	if len(instances) < expect {
		a.log.Info("waiting for replicas to register before bootstrapping", "registered", len(instances), "expect", expect)
		return
	}
	for _, in := range instances {
		if in.BootstrapExpect != expect {
			a.log.Warn("not bootstrapping: a replica registered another bootstrap expect", "peer", in.NodeID, "its_expect", in.BootstrapExpect, "expect", expect)
			return
		}
	}
	if len(answered) < len(instances) {
		a.log.Info("not bootstrapping yet: some registered replicas do not answer", "answered", len(answered), "registered", len(instances))
		return
	}
	if err := r.Bootstrap(instances); err != nil {
		a.log.Error("bootstrap failed", "error", err)
		return
	}
	ids := make([]string, len(instances))
	for i, in := range instances {
		ids[i] = in.NodeID
	}
	a.log.Info("bootstrapped the cluster from consul", "members", ids)
}

// reconcile updates the Raft address of every member that registered a new
// one. Leader only.
func (a *Agent) reconcile(ctx context.Context, r Replica, instances []Instance) {
	members, err := r.Members()
	if err != nil {
		a.log.Warn("reading the configuration", "error", err)
		return
	}
	for _, in := range instances {
		i := slices.IndexFunc(members, func(m Member) bool { return m.ID == in.NodeID })
		if i < 0 || members[i].RaftAddr == in.RaftAddr {
			continue
		}
		if slices.ContainsFunc(members, func(m Member) bool { return m.RaftAddr == in.RaftAddr }) {
			a.log.Warn("not moving a member to a raft address another member has", "member", in.NodeID, "raft", in.RaftAddr)
			continue
		}
		if err := r.UpdateAddress(ctx, members[i], in.RaftAddr); err != nil {
			if !errors.Is(err, context.Canceled) {
				a.log.Warn("updating a member's raft address", "member", in.NodeID, "from", members[i].RaftAddr, "to", in.RaftAddr, "error", err)
			}
			continue
		}
		a.log.Info("member moved to a new raft address", "member", in.NodeID, "from", members[i].RaftAddr, "to", in.RaftAddr)
		members[i].RaftAddr = in.RaftAddr
	}
}
