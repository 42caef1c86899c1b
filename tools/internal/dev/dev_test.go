package dev_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/concord-kv/concord/tools/internal/dev"
)

// syncBuffer is a bytes.Buffer the stack and the test can share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// stack is a running dev stack.
type stack struct {
	base   string
	cancel context.CancelFunc
	done   chan error
	stderr *syncBuffer
}

var restURL = regexp.MustCompile(`REST\s+(http://\S+)/api/v1`)

// runStack runs dev.Run on a free port with dataDir and waits until /ready
// answers 200.
func runStack(t *testing.T, dataDir string) *stack {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	s := &stack{cancel: cancel, done: make(chan error, 1), stderr: &syncBuffer{}}
	stdout := &syncBuffer{}
	go func() {
		s.done <- dev.Run(ctx, []string{"--port", "0"}, env(map[string]string{"CONCORD_DATA_DIR": dataDir}), stdout, s.stderr)
	}()
	t.Cleanup(func() { s.stop(t) })

	deadline := time.Now().Add(60 * time.Second)
	for {
		if m := restURL.FindStringSubmatch(stdout.String()); m != nil && s.base == "" {
			s.base = m[1]
		}
		if s.base != "" {
			if status, _ := call(t, http.MethodGet, s.base+"/ready", ""); status == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("stack not ready within 60s\nstdout:\n%s\nstderr:\n%s", stdout, s.stderr)
		}
		select {
		case err := <-s.done:
			s.done <- err
			t.Fatalf("Run returned early: %v\nstderr:\n%s", err, s.stderr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop cancels the stack's context (what Ctrl-C does) and waits for Run.
func (s *stack) stop(t *testing.T) {
	t.Helper()
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	if err := <-s.done; err != nil {
		t.Errorf("Run after stop: %v\nstderr:\n%s", err, s.stderr)
	}
}

func call(t *testing.T, method, url, body string) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	b, err := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return res.StatusCode, b
}

func TestDataSurvivesRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")

	s := runStack(t, dir)
	status, body := call(t, http.MethodPut, s.base+"/api/v1/kv/user:1001", `{"value": {"name": "Alice"}}`)
	if status != http.StatusOK {
		t.Fatalf("PUT: %d %s", status, body)
	}
	status, body = call(t, http.MethodGet, s.base+"/api/v1/kv/user:1001", "")
	if status != http.StatusOK || !strings.Contains(string(body), `"value":{"name":"Alice"}`) {
		t.Fatalf("GET: %d %s", status, body)
	}
	s.stop(t)

	for _, id := range []string{"n1", "n2", "n3"} {
		if _, err := os.Stat(filepath.Join(dir, id)); err != nil {
			t.Errorf("replica data dir: %v", err)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "cluster.json"))
	if err != nil {
		t.Fatal(err)
	}
	var remembered struct {
		Replicas []struct{ ID, RaftAddr, APIAddr string }
	}
	if err := json.Unmarshal(b, &remembered); err != nil || len(remembered.Replicas) != 3 {
		t.Fatalf("cluster.json %s: %v", b, err)
	}

	s = runStack(t, dir)
	status, body = call(t, http.MethodGet, s.base+"/api/v1/kv/user:1001?consistency=strong", "")
	if status != http.StatusOK || !strings.Contains(string(body), `"value":{"name":"Alice"}`) {
		t.Fatalf("GET after restart: %d %s", status, body)
	}
	s.stop(t)
}

// TestBrowserFacingEndpoints: make run serves the console, the API docs and
// the metrics, and browsers on any origin may call it.
func TestBrowserFacingEndpoints(t *testing.T) {
	s := runStack(t, filepath.Join(t.TempDir(), "dev"))
	for path, want := range map[string]string{
		"/ui/":                 "<title>Concord console</title>",
		"/api/docs":            "/api/v1/openapi.json",
		"/api/v1/openapi.json": `"openapi":"3.0.3"`,
		"/metrics":             "go_goroutines",
	} {
		if status, body := call(t, http.MethodGet, s.base+path, ""); status != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d, body without %q", path, status, want)
		}
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodOptions, s.base+"/concord.v1.KVService/Get", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Origin", "http://localhost:5173")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "content-type")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if got := res.Header.Get("Access-Control-Allow-Origin"); res.StatusCode != http.StatusNoContent || got != "*" {
		t.Errorf("CORS preflight: %d, Access-Control-Allow-Origin %q; want 204 and *", res.StatusCode, got)
	}
}

func TestTwoStacksSideBySide(t *testing.T) {
	a := runStack(t, filepath.Join(t.TempDir(), "a"))
	b := runStack(t, filepath.Join(t.TempDir(), "b"))
	if status, body := call(t, http.MethodPut, a.base+"/api/v1/kv/only-in-a", `{"value": 1}`); status != http.StatusOK {
		t.Fatalf("PUT a: %d %s", status, body)
	}
	if status, _ := call(t, http.MethodGet, b.base+"/api/v1/kv/only-in-a", ""); status != http.StatusNotFound {
		t.Errorf("GET from b: %d, want 404", status)
	}
}

func TestRememberedPortTaken(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	s := runStack(t, dir)
	s.stop(t)

	b, err := os.ReadFile(filepath.Join(dir, "cluster.json"))
	if err != nil {
		t.Fatal(err)
	}
	var remembered struct {
		Replicas []struct {
			RaftAddr string `json:"raft_addr"`
		} `json:"replicas"`
	}
	if err := json.Unmarshal(b, &remembered); err != nil {
		t.Fatal(err)
	}
	taken := remembered.Replicas[1].RaftAddr
	ln, err := net.Listen("tcp", taken)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })

	var stdout, stderr bytes.Buffer
	err = dev.Run(t.Context(), []string{"--port", "0", "--data-dir", dir}, env(nil), &stdout, &stderr)
	if err == nil {
		t.Fatal("Run succeeded with a remembered port taken")
	}
	for _, want := range []string{taken, "cluster.json", "n2", "another concord-dev"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if !strings.Contains(stderr.String(), taken) {
		t.Errorf("stderr %q does not explain the error", stderr.String())
	}
}

func TestHelpAndBadFlags(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := dev.Run(t.Context(), []string{"--help"}, env(nil), &stdout, &stderr); err != nil {
		t.Fatalf("--help: %v", err)
	}
	for _, want := range []string{"-port", "CONCORD_API_PORT", "-data-dir", "CONCORD_DATA_DIR", "-cors-origins", "CONCORD_CORS_ORIGINS"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("usage does not mention %s:\n%s", want, stderr.String())
		}
	}
	for _, args := range [][]string{{"--port", "http"}, {"--port", "70000"}, {"--log-level", "loud"}, {"--default-consistency", "sometimes"}, {"stray"}} {
		if err := dev.Run(t.Context(), args, env(nil), &stdout, &stderr); err == nil {
			t.Errorf("Run %q succeeded", args)
		}
	}
	for _, bad := range []map[string]string{
		{"CONCORD_COMPRESSION_ALGORITHM": "lz4"},
		{"CONCORD_COMPRESSION_LEVEL": "max"},
		{"CONCORD_COMPRESSION_LEVEL": "11"},
		{"CONCORD_COMPRESSION_ENABLED": "sometimes"},
		{"CONCORD_COMPRESSION_THRESHOLD": "-1"},
	} {
		if err := dev.Run(t.Context(), nil, env(bad), &stdout, &stderr); err == nil {
			t.Errorf("Run with %v succeeded", bad)
		}
	}
}
