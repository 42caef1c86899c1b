// Package discovery finds the other replicas through Consul and forms or
// enters a cluster with them.
//
// A replica registers itself as one instance of a Consul service (by default
// concord-replica, instance id concord-replica-<node id>) with its node id,
// API URL, Raft address and bootstrap_expect in the service meta and an HTTP
// check on its API's /health. It then follows the service's instances with
// blocking queries (GET /v1/health/service/<name>?index=...) through the
// official client library, github.com/hashicorp/consul/api, and:
//
//   - with an empty data directory, joins the running cluster if any
//     instance reports a leader, and otherwise bootstraps once
//     bootstrap_expect instances are registered and answer: every replica
//     computes the same configuration (all instances, sorted by node id), as
//     Consul's own servers do with bootstrap_expect;
//   - as the leader, keeps the Raft addresses of the members current: a
//     member that registers again with a new Raft address (restarted
//     elsewhere with the same node id and data) is updated in place, keeping
//     its suffrage;
//   - registers again whenever its instance disappears from the catalog.
//
// Bootstrap counts every registered instance, not only passing ones: a
// replica that is not in a cluster yet is alive but not ready.
package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
)

// DefaultService is the Consul service replicas register as.
const DefaultService = "concord-replica"

// Service meta keys of a registered replica.
const (
	MetaNodeID          = "node_id"
	MetaAPIAddr         = "api_addr"
	MetaRaftAddr        = "raft_addr"
	MetaBootstrapExpect = "bootstrap_expect"
)

// Defaults for Config.
const (
	DefaultCheckInterval = 10 * time.Second
	// formingWait bounds a blocking query while the replica is not in a
	// cluster: the other replicas' Raft state is not a Consul event, so it
	// is polled at this pace.
	formingWait = time.Second
	// steadyWait bounds a blocking query once the replica is in a cluster;
	// a leader also checks the members' addresses this often.
	steadyWait = 5 * time.Second
	// statusTimeout bounds one Status call to another replica.
	statusTimeout = 2 * time.Second
	maxBackoff    = 5 * time.Second
)

// Config configures an Agent.
type Config struct {
	// Address is the Consul agent's HTTP API: host:port or
	// http(s)://host:port. Required.
	Address string
	// Token is the Consul ACL token (optional).
	Token string
	// Service is the service name (default DefaultService).
	Service string
	// NodeID, APIURL (http://host:port) and RaftAddr (host:port) describe
	// this replica as its peers reach it. Required.
	NodeID, APIURL, RaftAddr string
	// BootstrapExpect is how many replicas form the first configuration;
	// 0 never bootstraps, only joins.
	BootstrapExpect int
	// CheckInterval is how often Consul probes /health (default 10s).
	CheckInterval time.Duration
	// Logger (default slog.Default()).
	Logger *slog.Logger
}

// Validate checks the config.
func (c *Config) Validate() error {
	if c.Address == "" {
		return errors.New("consul address is required")
	}
	if c.NodeID == "" || c.RaftAddr == "" {
		return errors.New("consul discovery: node id and raft address are required")
	}
	if _, _, err := hostPort(c.APIURL); err != nil {
		return fmt.Errorf("consul discovery: %w", err)
	}
	if c.BootstrapExpect < 0 {
		return fmt.Errorf("bootstrap expect %d must not be negative", c.BootstrapExpect)
	}
	if c.CheckInterval < 0 {
		return fmt.Errorf("consul check interval %v must not be negative", c.CheckInterval)
	}
	return nil
}

// hostPort splits an http(s)://host:port URL.
func hostPort(apiURL string) (string, int, error) {
	u, err := url.Parse(apiURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", 0, fmt.Errorf("api url %q is not http(s)://host:port", apiURL)
	}
	host, p, err := net.SplitHostPort(u.Host)
	if err != nil {
		return "", 0, fmt.Errorf("api url %q: %w", apiURL, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("api url %q: bad port: %w", apiURL, err)
	}
	return host, port, nil
}

// Instance is one registered replica.
type Instance struct {
	NodeID, APIURL, RaftAddr string
	// BootstrapExpect as the replica registered it (-1 if absent or bad).
	BootstrapExpect int
	// Status is the worst of its checks: passing, warning or critical.
	Status string
}

// Agent registers this replica in Consul and reads the other instances.
// Its methods are safe for concurrent use.
type Agent struct {
	cfg    Config
	client *api.Client
	log    *slog.Logger
}

// New returns an Agent; it does not contact Consul yet.
func New(cfg Config) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Service == "" {
		cfg.Service = DefaultService
	}
	if cfg.CheckInterval == 0 {
		cfg.CheckInterval = DefaultCheckInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	// Not pooled: no idle connections outlive a query, so nothing is left
	// running after Close.
	cc := api.DefaultNonPooledConfig()
	cc.Address = cfg.Address
	if cfg.Token != "" {
		cc.Token = cfg.Token
	}
	client, err := api.NewClient(cc)
	if err != nil {
		return nil, fmt.Errorf("consul client: %w", err)
	}
	return &Agent{cfg: cfg, client: client, log: cfg.Logger.With("node", cfg.NodeID, "consul", cfg.Address)}, nil
}

// ServiceID is the id of this replica's instance.
func (a *Agent) ServiceID() string { return a.cfg.Service + "-" + a.cfg.NodeID }

// Register registers (or registers again) this replica with its check.
func (a *Agent) Register(ctx context.Context) error {
	host, port, _ := hostPort(a.cfg.APIURL)
	reg := &api.AgentServiceRegistration{
		ID: a.ServiceID(), Name: a.cfg.Service, Address: host, Port: port,
		Meta: map[string]string{
			MetaNodeID: a.cfg.NodeID, MetaAPIAddr: a.cfg.APIURL, MetaRaftAddr: a.cfg.RaftAddr,
			MetaBootstrapExpect: strconv.Itoa(a.cfg.BootstrapExpect),
		},
		Check: &api.AgentServiceCheck{
			Name:     "concord replica /health",
			HTTP:     strings.TrimRight(a.cfg.APIURL, "/") + "/health",
			Method:   "GET",
			Interval: a.cfg.CheckInterval.String(),
			Timeout:  min(a.cfg.CheckInterval, 5*time.Second).String(),
		},
	}
	opts := api.ServiceRegisterOpts{ReplaceExistingChecks: true}.WithContext(ctx)
	if err := a.client.Agent().ServiceRegisterOpts(reg, opts); err != nil {
		return fmt.Errorf("consul register %s: %w", a.ServiceID(), err)
	}
	return nil
}

// Deregister removes this replica's instance. It logs the outcome too, for
// callers that go on regardless (a clean shutdown).
func (a *Agent) Deregister(ctx context.Context) error {
	if err := a.client.Agent().ServiceDeregisterOpts(a.ServiceID(), (&api.QueryOptions{}).WithContext(ctx)); err != nil {
		err = fmt.Errorf("consul deregister %s: %w", a.ServiceID(), err)
		a.log.Warn("consul deregistration failed", "error", err)
		return err
	}
	a.log.Info("deregistered from consul", "id", a.ServiceID())
	return nil
}

// Instances lists every registered instance of the service, passing or not,
// sorted by node id. With index > 0 it is a blocking query: it returns once
// the service changed after index, or wait passed. It returns the index to
// wait on next.
func (a *Agent) Instances(ctx context.Context, index uint64, wait time.Duration) ([]Instance, uint64, error) {
	q := (&api.QueryOptions{WaitIndex: index, WaitTime: wait}).WithContext(ctx)
	entries, meta, err := a.client.Health().Service(a.cfg.Service, "", false, q)
	if err != nil {
		return nil, index, fmt.Errorf("consul health service %s: %w", a.cfg.Service, err)
	}
	next := meta.LastIndex
	if next < index { // the index went back (Consul restarted): start over
		next = 0
	}
	out := make([]Instance, 0, len(entries))
	for _, e := range entries {
		if e.Service == nil {
			continue
		}
		m := e.Service.Meta
		in := Instance{NodeID: m[MetaNodeID], APIURL: m[MetaAPIAddr], RaftAddr: m[MetaRaftAddr],
			BootstrapExpect: -1, Status: e.Checks.AggregatedStatus()}
		if n, err := strconv.Atoi(m[MetaBootstrapExpect]); err == nil {
			in.BootstrapExpect = n
		}
		if in.NodeID == "" || in.APIURL == "" || in.RaftAddr == "" {
			a.log.Warn("ignoring a registered instance without node_id, api_addr and raft_addr meta", "service_id", e.Service.ID)
			continue
		}
		out = append(out, in)
	}
	slices.SortFunc(out, func(x, y Instance) int { return strings.Compare(x.NodeID, y.NodeID) })
	return out, next, nil
}
