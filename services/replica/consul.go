package replica

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"connectrpc.com/connect"
	concordv1 "github.com/concord-kv/concord/proto/gen/go/concord/v1"
	"github.com/concord-kv/concord/proto/gen/go/concord/v1/concordv1connect"
	"github.com/concord-kv/concord/services/replica/internal/discovery"
	"github.com/hashicorp/raft"
)

// deregisterTimeout bounds the Consul deregistration in Close.
const deregisterTimeout = 5 * time.Second

// startDiscovery runs the Consul discovery loop (package discovery) until
// Close. On error, nothing was started.
func (n *Node) startDiscovery(ctx context.Context, cfg Config, peers *http.Client) error {
	agent, err := discovery.New(discovery.Config{
		Address: cfg.ConsulAddr, Token: cfg.ConsulToken, Service: cfg.ConsulService,
		NodeID: cfg.NodeID, APIURL: n.apiURL, RaftAddr: n.RaftAddr(),
		BootstrapExpect: cfg.BootstrapExpect, CheckInterval: cfg.ConsulCheckInterval, Logger: cfg.Logger,
	})
	if err != nil {
		close(n.discoveryEnded)
		return err
	}
	n.consul = agent
	dctx, cancel := context.WithCancel(ctx)
	n.stopDiscovery = cancel
	go func() {
		defer close(n.discoveryEnded)
		agent.Run(dctx, &consulReplica{n: n, cfg: cfg, peers: peers})
	}()
	return nil
}

// deregister removes this replica from Consul, if it registered there.
func (n *Node) deregister() {
	if n.consul == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), deregisterTimeout)
	defer cancel()
	_ = n.consul.Deregister(ctx) // logged there; Close goes on regardless
}

// consulReplica is the replica as the discovery loop sees it.
type consulReplica struct {
	n     *Node
	cfg   Config
	peers *http.Client
}

var _ discovery.Replica = (*consulReplica)(nil)

func (r *consulReplica) InCluster() bool {
	if id, _ := r.n.store.Leader(); id != "" {
		return true
	}
	f := r.n.store.Raft().GetConfiguration()
	return f.Error() == nil && len(f.Configuration().Servers) > 0
}

func (r *consulReplica) PeerStatus(ctx context.Context, apiURL string) (discovery.PeerStatus, error) {
	resp, err := concordv1connect.NewClusterServiceClient(r.peers, apiURL).Status(ctx, connect.NewRequest(&concordv1.StatusRequest{}))
	if err != nil {
		return discovery.PeerStatus{}, err
	}
	st := discovery.PeerStatus{LeaderAPI: resp.Msg.GetLeaderApiAddress()}
	for _, m := range resp.Msg.GetMembers() {
		st.Members = append(st.Members, m.GetId())
	}
	return st, nil
}

func (r *consulReplica) Bootstrap(members []discovery.Instance) error {
	servers := make([]raft.Server, len(members))
	for i, m := range members {
		servers[i] = raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(m.NodeID), Address: raft.ServerAddress(m.RaftAddr)}
	}
	if err := r.n.store.Raft().BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	return nil
}

func (r *consulReplica) Join(ctx context.Context, apiURLs []string) {
	cfg := r.cfg
	cfg.Join = apiURLs
	r.n.join(ctx, cfg, r.peers)
}

func (r *consulReplica) IsLeader() bool { return r.n.store.IsLeader() }

func (r *consulReplica) Members() ([]discovery.Member, error) {
	f := r.n.store.Raft().GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, err
	}
	var out []discovery.Member
	for _, s := range f.Configuration().Servers {
		out = append(out, discovery.Member{ID: string(s.ID), RaftAddr: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	return out, nil
}

// UpdateAddress re-adds the member under its new address with its
// suffrage: hashicorp/raft then only changes the address.
func (r *consulReplica) UpdateAddress(ctx context.Context, m discovery.Member, raftAddr string) error {
	ra := r.n.store.Raft()
	id, addr := raft.ServerID(m.ID), raft.ServerAddress(raftAddr)
	var f raft.IndexFuture
	if m.Voter {
		f = ra.AddVoter(id, addr, 0, 10*time.Second)
	} else {
		f = ra.AddNonvoter(id, addr, 0, 10*time.Second)
	}
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
