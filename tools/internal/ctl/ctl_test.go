package ctl_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

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
