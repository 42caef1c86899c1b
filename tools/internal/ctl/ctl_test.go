package ctl_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	concord "github.com/concord-kv/concord/sdk/go"
	"github.com/concord-kv/concord/services/replica"
	"github.com/concord-kv/concord/services/replica/replicatest"
	"github.com/concord-kv/concord/tools/internal/ctl"
)

type runner struct {
	t        *testing.T
	endpoint string
}

func (r runner) run(args ...string) (string, error) {
	r.t.Helper()
	var out, errOut bytes.Buffer
	env := map[string]string{"CONCORD_ENDPOINT": r.endpoint}
	err := ctl.Run(r.t.Context(), args, func(k string) string { return env[k] }, &out, &errOut)
	return out.String(), err
}

func (r runner) must(args ...string) string {
	r.t.Helper()
	out, err := r.run(args...)
	if err != nil {
		r.t.Fatalf("concordctl %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// startCluster starts 3 replicas and waits until each is ready (knows the
// leader's API address), as a user would before pointing concordctl at it.
func startCluster(t *testing.T) *replicatest.Cluster {
	t.Helper()
	c := replicatest.Start(t, 3)
	c.WaitLeader(10 * time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for _, u := range c.Addrs() {
		for {
			resp, err := http.Get(u + "/ready")
			if err == nil {
				_ = resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not ready", u)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return c
}

func TestKVCommands(t *testing.T) {
	c := startCluster(t)
	r := runner{t, c.Addr(1)}

	if out := r.must("kv", "put", "greeting", "Hello, World!"); !strings.HasPrefix(out, "OK (revision ") {
		t.Fatalf("put: %q", out)
	}
	r.must("kv", "put", "user:1001", `{"name":"Alice"}`)
	r.must("kv", "put", "blob", "raw bytes", "--raw")
	if out := r.must("kv", "get", "greeting"); out != "Hello, World!\n" {
		t.Fatalf("get: %q", out)
	}
	var got struct {
		Key   string          `json:"key"`
		Value json.RawMessage `json:"value"`
	}
	var compact bytes.Buffer
	if err := json.Unmarshal([]byte(r.must("kv", "get", "user:1001", "-o", "json", "--consistency", "strong")), &got); err != nil ||
		json.Compact(&compact, got.Value) != nil || compact.String() != `{"name":"Alice"}` {
		t.Fatalf("get json: %+v %v", got, err)
	}
	if out := r.must("kv", "get", "blob", "-o", "json"); !strings.Contains(out, `"encoding": "base64"`) {
		t.Fatalf("raw value not base64 in json: %s", out)
	}
	if _, err := r.run("kv", "put", "greeting", "again", "--if-absent"); err == nil || !strings.Contains(err.Error(), "conflict") {
		t.Fatalf("if-absent on existing key: %v", err)
	}
	if out := r.must("kv", "list", "--keys-only"); out != "blob\ngreeting\nuser:1001\n" {
		t.Fatalf("list: %q", out)
	}
	if out := r.must("kv", "list", "user:"); out != "user:1001\t{\"name\":\"Alice\"}\n" {
		t.Fatalf("list prefix: %q", out)
	}
	if out := r.must("kv", "delete", "greeting"); !strings.HasPrefix(out, "deleted") {
		t.Fatalf("delete: %q", out)
	}
	if _, err := r.run("kv", "get", "greeting"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("get deleted: %v", err)
	}
}

func TestClusterCommands(t *testing.T) {
	c := startCluster(t)
	r := runner{t, c.Addr(0)}
	out := r.must("cluster", "status")
	for _, want := range []string{"Cluster Status:", "Cluster Overview:", "state: leader", "members: [n1, n2, n3]", "Storage Stats:"} {
		if !strings.Contains(out, want) {
			t.Fatalf("status lacks %q:\n%s", want, out)
		}
	}
	out = r.must("cluster", "members")
	if strings.Count(out, "\n") != 4 || !strings.Contains(out, "leader") {
		t.Fatalf("members:\n%s", out)
	}
}

func TestBadInput(t *testing.T) {
	r := runner{t, "http://127.0.0.1:1"}
	for _, args := range [][]string{
		{"kv", "get"},
		{"kv", "put", "k"},
		{"kv", "get", "k", "-o", "yaml"},
		{"kv", "get", "k", "--consistency", "linear"},
		{"nope"},
	} {
		if _, err := r.run(args...); err == nil {
			t.Errorf("concordctl %v succeeded", args)
		}
	}
	if out := r.must("--help"); !strings.Contains(out, "CONCORD_ENDPOINT") {
		t.Fatalf("help: %s", out)
	}
	if out := r.must("completion", "bash"); !strings.Contains(out, "concordctl") {
		t.Fatal("no bash completion")
	}
}

func TestClusterMembershipCommands(t *testing.T) {
	c := startCluster(t)
	r := runner{t, c.Addr(0)}
	// A replica that waits to be added: empty data dir, no bootstrap, no join.
	idle := replicatest.WithConfig(func(_ int, cfg *replica.Config) { cfg.Join = nil })
	n4 := c.Add(idle)
	c.Exclude(n4)
	if out := r.must("cluster", "add", c.ID(n4), c.RaftAddr(n4), "--api-addr", c.Addr(n4)); out != "added n4 as a voter (raft "+c.RaftAddr(n4)+")\n" {
		t.Fatalf("add: %q", out)
	}
	c.Include(n4)
	members := func() []concord.Member {
		t.Helper()
		var ms []concord.Member
		if err := json.Unmarshal([]byte(r.must("cluster", "members", "-o", "json")), &ms); err != nil {
			t.Fatal(err)
		}
		return ms
	}
	if ms := members(); len(ms) != 4 || ms[3].ID != "n4" || !ms[3].Voter {
		t.Fatalf("members after add: %+v", ms)
	}

	if out := r.must("cluster", "transfer-leader", "n4"); !strings.Contains(out, "leader is now n4") && !strings.Contains(out, "not finished") {
		t.Fatalf("transfer-leader n4: %q", out)
	}
	if l := c.WaitLeader(20 * time.Second); l != n4 {
		t.Fatalf("leader is %s, want n4", c.ID(l))
	}
	r.must("cluster", "transfer-leader")
	if l := c.WaitLeader(20 * time.Second); l == n4 {
		t.Fatal("n4 still leads")
	}
	if out := r.must("cluster", "remove", "n4"); out != "removed n4\n" {
		t.Fatalf("remove: %q", out)
	}
	c.Exclude(n4)
	c.Kill(n4)
	if ms := members(); len(ms) != 3 {
		t.Fatalf("members after remove: %+v", ms)
	}
	if _, err := r.run("cluster", "remove", "n4"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("remove again: %v", err)
	}

	// A non-voter, then dead-member removal once it has died.
	n5 := c.Add(idle)
	c.Exclude(n5)
	if out := r.must("cluster", "add", c.ID(n5), c.RaftAddr(n5), "--nonvoter"); !strings.Contains(out, "as a nonvoter") {
		t.Fatalf("add --nonvoter: %q", out)
	}
	c.Include(n5)
	// The leader reports n5 as a follower once it has reached it: poll.
	nonvoterRow := regexp.MustCompile(`(?m)^n5\s+follower\s+nonvoter\s`)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		out := r.must("cluster", "members")
		if strings.Contains(out, "LAST CONTACT") && nonvoterRow.MatchString(out) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("members table:\n%s", out)
		}
	}
	c.Exclude(n5)
	c.Kill(n5)
	if out := r.must("cluster", "remove-dead", "--after", "1h"); !strings.Contains(out, "no member has been unreachable") {
		t.Fatalf("remove-dead --after 1h: %q", out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		out := r.must("cluster", "remove-dead", "--after", "1s", "--dry-run")
		if out == "would remove n5\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("n5 never reported unreachable for 1s: %q\n%s", out, r.must("cluster", "members"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if out := r.must("cluster", "remove-dead", "--after", "1s"); out != "removed n5\n" {
		t.Fatalf("remove-dead: %q", out)
	}
	if ms := members(); len(ms) != 3 || slices.ContainsFunc(ms, func(m concord.Member) bool { return m.ID == "n5" }) {
		t.Fatalf("members after remove-dead: %+v", ms)
	}
}

func TestClusterCommandsHelpAndBadInput(t *testing.T) {
	r := runner{t, "http://127.0.0.1:1"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"cluster", "add", "--help"}, "--nonvoter"},
		{[]string{"cluster", "add", "--help"}, "--api-addr"},
		{[]string{"cluster", "remove", "--help"}, "--if-unreachable-for"},
		{[]string{"cluster", "remove-dead", "--help"}, "CONCORD_DEAD_AFTER"},
		{[]string{"cluster", "transfer-leader", "--help"}, "most up-to-date voter"},
		{[]string{"cluster", "members", "--help"}, "last heard"},
		{[]string{"cluster", "--help"}, "transfer-leader"},
	} {
		if out := r.must(tc.args...); !strings.Contains(out, tc.want) {
			t.Errorf("concordctl %v lacks %q:\n%s", tc.args, tc.want, out)
		}
	}
	for _, args := range [][]string{
		{"cluster", "add", "n4"},
		{"cluster", "remove"},
		{"cluster", "remove", "a", "b"},
		{"cluster", "remove", "a", "--if-unreachable-for", "-1s"},
		{"cluster", "remove-dead", "--after", "10ms"},
		{"cluster", "transfer-leader", "a", "b"},
	} {
		if _, err := r.run(args...); err == nil {
			t.Errorf("concordctl %v succeeded", args)
		}
	}
}
