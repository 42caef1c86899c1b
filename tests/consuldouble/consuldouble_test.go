package consuldouble_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/concord-kv/concord/tests/consuldouble"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func start(t *testing.T) *consuldouble.Server {
	t.Helper()
	d := consuldouble.New()
	t.Cleanup(d.Close)
	return d
}

func put(t *testing.T, url string, body any) int {
	t.Helper()
	var buf bytes.Buffer
	if body != nil {
		if err := json.NewEncoder(&buf).Encode(body); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, url, &buf)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// get decodes a GET answer into out and returns its X-Consul-Index.
func get(t *testing.T, url string, out any) uint64 {
	t.Helper()
	idx, err := fetch(url, out)
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

// fetch is get for goroutines other than the test's: it returns the error.
func fetch(url string, out any) (uint64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return 0, err
	}
	if resp.Header.Get("X-Consul-Index") == "" { // the agent endpoints
		return 0, nil
	}
	if resp.Header.Get("X-Consul-LastContact") != "0" || resp.Header.Get("X-Consul-KnownLeader") != "true" {
		return 0, fmt.Errorf("query headers: %v", resp.Header)
	}
	idx, err := strconv.ParseUint(resp.Header.Get("X-Consul-Index"), 10, 64)
	if err != nil || idx == 0 {
		return 0, fmt.Errorf("X-Consul-Index %q", resp.Header.Get("X-Consul-Index"))
	}
	return idx, nil
}

// serviceEntry is the part of /v1/health/service's answer the tests read.
type serviceEntry struct {
	Node    struct{ Node, Address string }
	Service struct {
		ID, Service, Address string
		Port                 int
		Tags                 []string
		Meta                 map[string]string
	}
	Checks []struct{ CheckID, Status, ServiceID string }
}

func healthy(t *testing.T, d *consuldouble.Server, query string) ([]serviceEntry, uint64) {
	t.Helper()
	var out []serviceEntry
	idx := get(t, d.URL()+"/v1/health/service/concord-replica?passing=1"+query, &out)
	return out, idx
}

func TestHTTPCheckAndBlockingHealthQuery(t *testing.T) {
	d := start(t)
	var ok atomic.Bool
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if !ok.Load() {
			http.Error(w, "no leader", http.StatusServiceUnavailable)
		}
	}))
	defer target.Close()

	entries, idx := healthy(t, d, "")
	if len(entries) != 0 {
		t.Fatalf("before registration: %+v", entries)
	}
	if code := put(t, d.URL()+"/v1/agent/service/register", map[string]any{
		"ID": "n1", "Name": "concord-replica", "Address": "10.0.0.1", "Port": 7100, "Tags": []string{"voter"},
		"Meta":  map[string]string{"raft_address": "10.0.0.1:7000"},
		"Check": map[string]any{"HTTP": target.URL + "/ready", "Interval": "20ms", "Timeout": "1s"},
	}); code != http.StatusOK {
		t.Fatalf("register: %d", code)
	}
	// Registered but critical (the check fails): not among the passing.
	entries, idx2 := healthy(t, d, "")
	if len(entries) != 0 || idx2 <= idx {
		t.Fatalf("critical instance listed as passing (%+v), or index %d not past %d", entries, idx2, idx)
	}
	var all []serviceEntry
	get(t, d.URL()+"/v1/health/service/concord-replica", &all)
	if len(all) != 1 || len(all[0].Checks) != 2 || all[0].Checks[1].CheckID != "service:n1" || all[0].Checks[1].Status != consuldouble.Critical {
		t.Fatalf("all instances: %+v", all)
	}

	// A blocking query returns when the check turns passing.
	type result struct {
		entries []serviceEntry
		idx     uint64
		err     error
	}
	done := make(chan result, 1)
	blocking := func(after uint64) {
		var e []serviceEntry
		i, err := fetch(fmt.Sprintf("%s/v1/health/service/concord-replica?passing=1&index=%d&wait=30s", d.URL(), after), &e)
		done <- result{e, i, err}
	}
	go blocking(idx2)
	ok.Store(true)
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if len(r.entries) != 1 || r.idx <= idx2 {
		t.Fatalf("after the check passed: %+v at %d", r.entries, r.idx)
	}
	e := r.entries[0]
	if e.Service.ID != "n1" || e.Service.Address != "10.0.0.1" || e.Service.Port != 7100 ||
		e.Service.Meta["raft_address"] != "10.0.0.1:7000" || e.Node.Node != consuldouble.NodeName {
		t.Fatalf("entry: %+v", e)
	}
	if got := d.Instances("concord-replica"); len(got) != 1 || got[0].Status != consuldouble.Passing {
		t.Fatalf("instances: %+v", got)
	}

	// Nothing changes: a blocking query runs out its wait and answers the
	// same index.
	if _, i := healthy(t, d, fmt.Sprintf("&index=%d&wait=200ms", r.idx)); i != r.idx {
		t.Fatalf("idle blocking query answered index %d, want %d", i, r.idx)
	}

	// Deregistration wakes blocked readers and empties the list.
	go blocking(r.idx)
	if code := put(t, d.URL()+"/v1/agent/service/deregister/n1", nil); code != http.StatusOK {
		t.Fatalf("deregister: %d", code)
	}
	if r := <-done; r.err != nil || len(r.entries) != 0 {
		t.Fatalf("after deregistration: %+v %v", r.entries, r.err)
	}
	if code := put(t, d.URL()+"/v1/agent/service/deregister/n1", nil); code != http.StatusNotFound {
		t.Fatalf("deregister twice: %d", code)
	}
}

func TestTTLChecksTagsAndCatalog(t *testing.T) {
	d := start(t)
	for i, tags := range [][]string{{"voter"}, {"nonvoter"}} {
		if code := put(t, d.URL()+"/v1/agent/service/register", map[string]any{
			"ID": fmt.Sprintf("n%d", i+1), "Name": "concord-replica", "Address": "127.0.0.1", "Port": 7101 + i, "Tags": tags,
			"Check": map[string]any{"CheckID": fmt.Sprintf("ttl-%d", i+1), "TTL": "300ms", "Status": "passing"},
		}); code != http.StatusOK {
			t.Fatalf("register: %d", code)
		}
	}
	if entries, _ := healthy(t, d, ""); len(entries) != 2 {
		t.Fatalf("passing: %d", len(entries))
	}
	if entries, _ := healthy(t, d, "&tag=nonvoter"); len(entries) != 1 || entries[0].Service.ID != "n2" {
		t.Fatalf("tag filter: %+v", entries)
	}
	var catalog []struct {
		ServiceID, ServiceAddress, Node string
		ServicePort                     int
	}
	get(t, d.URL()+"/v1/catalog/service/concord-replica?tag=voter", &catalog)
	if len(catalog) != 1 || catalog[0].ServiceID != "n1" || catalog[0].ServicePort != 7101 {
		t.Fatalf("catalog: %+v", catalog)
	}
	var services map[string][]string
	get(t, d.URL()+"/v1/catalog/services", &services)
	if len(services["concord-replica"]) != 2 {
		t.Fatalf("services: %v", services)
	}

	if code := put(t, d.URL()+"/v1/agent/check/fail/ttl-1?note=down", nil); code != http.StatusOK {
		t.Fatalf("fail: %d", code)
	}
	if code := put(t, d.URL()+"/v1/agent/check/update/ttl-2", map[string]string{"Status": "warning", "Output": "slow"}); code != http.StatusOK {
		t.Fatalf("update: %d", code)
	}
	if entries, _ := healthy(t, d, ""); len(entries) != 0 {
		t.Fatalf("passing after fail and warn: %+v", entries)
	}
	var checks map[string]struct{ Status, Output, ServiceID string }
	get(t, d.URL()+"/v1/agent/checks", &checks)
	if checks["ttl-1"].Status != "critical" || checks["ttl-2"].Status != "warning" || checks["ttl-2"].Output != "slow" {
		t.Fatalf("checks: %+v", checks)
	}
	if code := put(t, d.URL()+"/v1/agent/check/pass/nope", nil); code != http.StatusNotFound {
		t.Fatalf("pass an unknown check: %d", code)
	}
	// Passing again, then silence: the TTL runs out and the check goes critical.
	put(t, d.URL()+"/v1/agent/check/pass/ttl-1", nil)
	if entries, _ := healthy(t, d, ""); len(entries) != 1 {
		t.Fatalf("after pass: %+v", entries)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if entries, _ := healthy(t, d, ""); len(entries) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("TTL check never expired")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDeregisterCriticalAndOutage(t *testing.T) {
	d := start(t)
	if code := put(t, d.URL()+"/v1/agent/service/register", map[string]any{
		"ID": "n1", "Name": "concord-replica", "Port": 7100,
		"Check": map[string]any{"TTL": "10s", "DeregisterCriticalServiceAfter": "100ms"},
	}); code != http.StatusOK {
		t.Fatalf("register: %d", code)
	}
	// It starts critical and is reaped.
	deadline := time.Now().Add(10 * time.Second)
	for len(d.Instances("concord-replica")) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("critical service never deregistered")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, body := range []map[string]any{
		{"Name": ""},
		{"Name": "x", "Check": map[string]any{"HTTP": "http://127.0.0.1:1/"}},
		{"Name": "x", "Check": map[string]any{"TCP": "127.0.0.1:1", "Interval": "1s"}},
		{"Name": "x", "Check": map[string]any{"TTL": "soon"}},
	} {
		if code := put(t, d.URL()+"/v1/agent/service/register", body); code != http.StatusBadRequest {
			t.Errorf("register %v: %d, want 400", body, code)
		}
	}
	d.SetDown(true)
	resp, err := http.Get(d.URL() + "/v1/health/service/concord-replica")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("while down: %s", resp.Status)
	}
	d.SetDown(false)
	var out []serviceEntry
	get(t, d.URL()+"/v1/health/service/concord-replica", &out)
}
