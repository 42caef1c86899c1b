package discovery_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	concordv1 "github.com/concord-kv/concord/proto/gen/go/concord/v1"
	"github.com/concord-kv/concord/proto/gen/go/concord/v1/concordv1connect"
	concord "github.com/concord-kv/concord/sdk/go"
	"github.com/concord-kv/concord/sdk/go/consul"
	"github.com/concord-kv/concord/services/gateway"
	"github.com/concord-kv/concord/services/replica"
	"github.com/concord-kv/concord/tests/consuldouble"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// hangGuard bounds every wait below: reaching it fails the test as hung; it
// asserts nothing about how fast discovery is.
const hangGuard = 60 * time.Second

// fleet is a set of in-process replicas configured only with a Consul
// address and bootstrap_expect.
type fleet struct {
	t      *testing.T
	consul *consuldouble.Server
	dir    string
	expect int
	logger *slog.Logger

	mu    sync.Mutex
	nodes map[string]*replica.Node
}

func newFleet(t *testing.T, expect int) *fleet {
	t.Helper()
	d := consuldouble.New()
	t.Cleanup(d.Close)
	f := &fleet{
		t: t, consul: d, dir: t.TempDir(), expect: expect, nodes: map[string]*replica.Node{},
		logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	t.Cleanup(func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		for id, n := range f.nodes {
			if err := n.Close(); err != nil {
				t.Errorf("close %s: %v", id, err)
			}
		}
	})
	return f
}

// start runs replica id on fresh 127.0.0.1 ports with its data in the
// fleet's directory (kept across restarts).
func (f *fleet) start(id string) *replica.Node {
	f.t.Helper()
	cfg := replica.DefaultConfig()
	cfg.NodeID = id
	cfg.DataDir = filepath.Join(f.dir, id)
	cfg.APIAddr, cfg.RaftAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.ConsulAddr = f.consul.Addr()
	cfg.BootstrapExpect = f.expect
	cfg.ConsulCheckInterval = 200 * time.Millisecond
	cfg.Logger = f.logger
	cfg.RaftLogOutput, cfg.RaftLogLevel = f.t.Output(), "error"
	n, err := replica.Start(context.Background(), cfg)
	if err != nil {
		f.t.Fatalf("start %s: %v", id, err)
	}
	f.mu.Lock()
	f.nodes[id] = n
	f.mu.Unlock()
	return n
}

// stop closes replica id.
func (f *fleet) stop(id string) {
	f.t.Helper()
	f.mu.Lock()
	n := f.nodes[id]
	delete(f.nodes, id)
	f.mu.Unlock()
	if err := n.Close(); err != nil {
		f.t.Fatalf("close %s: %v", id, err)
	}
}

func (f *fleet) node(id string) *replica.Node {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.nodes[id]
}

func status(ctx context.Context, apiURL string) (*concordv1.StatusResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := concordv1connect.NewClusterServiceClient(http.DefaultClient, apiURL).
		Status(ctx, connect.NewRequest(&concordv1.StatusRequest{}))
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

// member is one member as the test compares them.
type member struct {
	ID, Raft, API string
	Voter         bool
}

// agreed waits until every running replica reports the same leader and the
// same configuration, with the leader's API address known, and returns
// that configuration sorted by id.
func (f *fleet) agreed(ctx context.Context, want func([]member) bool) []member {
	f.t.Helper()
	deadline := time.Now().Add(hangGuard)
	var last string
	for {
		f.mu.Lock()
		var urls []string
		for _, n := range f.nodes {
			urls = append(urls, n.Addr())
		}
		f.mu.Unlock()
		var (
			leader string
			cfg    []member
			ok     = true
		)
		for i, u := range urls {
			st, err := status(ctx, u)
			if err != nil || st.GetLeaderId() == "" || st.GetLeaderApiAddress() == "" {
				ok, last = false, fmt.Sprintf("%s: %v (leader %q)", u, err, st.GetLeaderId())
				break
			}
			var ms []member
			for _, m := range st.GetMembers() {
				ms = append(ms, member{ID: m.GetId(), Raft: m.GetRaftAddress(), API: m.GetApiAddress(),
					Voter: m.GetSuffrage() == concordv1.Suffrage_SUFFRAGE_VOTER})
			}
			slices.SortFunc(ms, func(a, b member) int { return strings.Compare(a.ID, b.ID) })
			if i == 0 {
				leader, cfg = st.GetLeaderId(), ms
			} else if st.GetLeaderId() != leader || !slices.Equal(ms, cfg) {
				ok, last = false, fmt.Sprintf("%s: leader %s members %v; first: leader %s members %v", u, st.GetLeaderId(), ms, leader, cfg)
				break
			}
		}
		if ok && want(cfg) {
			return cfg
		}
		if ok {
			last = fmt.Sprintf("members %v", cfg)
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("the replicas did not agree on the expected cluster: %s", last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// voters is a want for agreed: exactly these voters.
func voters(ids ...string) func([]member) bool {
	return func(ms []member) bool {
		if len(ms) != len(ids) {
			return false
		}
		for i, m := range ms {
			if m.ID != ids[i] || !m.Voter || m.API == "" {
				return false
			}
		}
		return true
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// followingClient is an SDK client whose seeds follow the passing replicas
// in Consul, as a program would build it with package consul.
func followingClient(t *testing.T, consulAddr string) *concord.Client {
	t.Helper()
	w, err := consul.NewWatcher(consul.Config{Address: consulAddr, WaitTime: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	seeds, err := w.Endpoints(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	c, err := concord.New(t.Context(), seeds, concord.WithRefreshInterval(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	followed := make(chan error, 1)
	go func() { followed <- w.Follow(ctx, c) }()
	t.Cleanup(func() {
		cancel()
		if err := <-followed; !errors.Is(err, context.Canceled) {
			t.Errorf("Follow returned %v, want context.Canceled", err)
		}
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	return c
}

func registered(d *consuldouble.Server) map[string]consuldouble.Instance {
	out := map[string]consuldouble.Instance{}
	for _, in := range d.Instances("concord-replica") {
		out[in.Meta["node_id"]] = in
	}
	return out
}

// One story, in steps that build on each other (each needs the cluster the
// previous one left): three replicas given only a Consul address form one
// cluster, a fourth joins by itself, a replica restarted on new addresses
// is followed by the cluster, the SDK and the gateway, and Close
// deregisters.
func TestConsulDiscovery(t *testing.T) {
	f := newFleet(t, 3)
	ctx := t.Context()

	t.Run("three replicas form one cluster from nothing", func(t *testing.T) {
		var wg sync.WaitGroup
		for _, id := range []string{"n3", "n1", "n2"} {
			wg.Go(func() { f.start(id) })
		}
		wg.Wait()
		f.agreed(ctx, voters("n1", "n2", "n3"))
		for id, in := range registered(f.consul) {
			n := f.node(id)
			want := map[string]string{"node_id": id, "api_addr": n.Addr(), "raft_addr": n.RaftAddr(), "bootstrap_expect": "3"}
			for k, v := range want {
				if in.Meta[k] != v {
					t.Errorf("%s registered meta %s=%q, want %q", id, k, in.Meta[k], v)
				}
			}
			if in.ID != "concord-replica-"+id {
				t.Errorf("%s registered as %q", id, in.ID)
			}
		}
	})

	c := followingClient(t, f.consul.Addr())
	t.Run("a write through the SDK following Consul reads back", func(t *testing.T) {
		if _, err := c.Put(ctx, "discovery:formed", []byte("yes")); err != nil {
			t.Fatal(err)
		}
		kv, err := c.Get(ctx, "discovery:formed", concord.Consistency(concord.Strong))
		if err != nil || string(kv.Value) != "yes" {
			t.Fatalf("Get = %v, %v", kv, err)
		}
	})

	t.Run("a fourth replica joins by itself", func(t *testing.T) {
		f.start("n4")
		f.agreed(ctx, voters("n1", "n2", "n3", "n4"))
		kv, err := c.Get(ctx, "discovery:formed", concord.Consistency(concord.Eventual))
		if err != nil || string(kv.Value) != "yes" {
			t.Fatalf("Get = %v, %v", kv, err)
		}
	})

	gw, err := gateway.Start(ctx, gateway.Config{Addr: "127.0.0.1:0", ConsulAddr: f.consul.Addr(), Logger: f.logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := gw.Close(); err != nil {
			t.Error(err)
		}
	})
	t.Run("the gateway with only a Consul address serves REST", func(t *testing.T) {
		restPut(t, gw.Addr(), "discovery:gateway", `"through consul"`)
		if got := restGet(t, gw.Addr(), "discovery:gateway", "strong"); got != `"through consul"` {
			t.Fatalf("GET = %s", got)
		}
	})

	t.Run("a replica restarted on new addresses is followed", func(t *testing.T) {
		leader := f.node("n1").LeaderID()
		id := "n1"
		if leader == id {
			id = "n2"
		}
		old := f.node(id)
		oldAPI, oldRaft := old.Addr(), old.RaftAddr()
		f.stop(id)
		n := f.start(id) // same id and data dir, new ports
		if n.Addr() == oldAPI || n.RaftAddr() == oldRaft {
			t.Fatalf("restarted on the same addresses %s %s", n.Addr(), n.RaftAddr())
		}
		ms := f.agreed(ctx, func(ms []member) bool {
			i := slices.IndexFunc(ms, func(m member) bool { return m.ID == id })
			return voters("n1", "n2", "n3", "n4")(ms) && ms[i].Raft == n.RaftAddr() && ms[i].API == n.Addr()
		})
		t.Logf("members after the restart: %v", ms)

		wr, err := c.Put(ctx, "discovery:healed", []byte("yes"))
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the SDK to learn the new API address", func() bool {
			eps := c.Endpoints()
			return slices.Contains(eps, n.Addr()) && !slices.Contains(eps, oldAPI)
		})
		waitFor(t, "the restarted replica to pass its check", func() bool {
			return registered(f.consul)[id].Status == consuldouble.Passing
		})
		// Eventual reads spread over the replicas the gateway knows; one
		// served by the new address shows the gateway follows it.
		waitFor(t, "the gateway to use the new API address", func() bool {
			// min_revision: an eventual read may otherwise come from a
			// replica that has not applied the write yet.
			restGet(t, gw.Addr(), "discovery:healed", "eventual&min_revision="+strconv.FormatUint(wr.Revision, 10))
			_, ok := gw.Served()[n.Addr()]
			return ok
		})
	})

	t.Run("Close deregisters", func(t *testing.T) {
		if _, ok := registered(f.consul)["n4"]; !ok {
			t.Fatal("n4 is not registered before Close")
		}
		f.stop("n4")
		if in, ok := registered(f.consul)["n4"]; ok {
			t.Fatalf("n4 still registered after Close: %+v", in)
		}
	})
}

func restPut(t *testing.T, base, key, valueJSON string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, base+"/api/v1/kv/"+key,
		strings.NewReader(`{"value": `+valueJSON+`}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("PUT %s: %s %s", key, resp.Status, body)
	}
}

// restGet returns the value of key, as JSON.
func restGet(t *testing.T, base, key, consistency string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/api/v1/kv/"+key+"?consistency="+consistency, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %s", key, resp.Status, body)
	}
	var out struct{ Value json.RawMessage }
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("GET %s: %v in %s", key, err, body)
	}
	return string(bytes.TrimSpace(out.Value))
}
