package app_test

import (
	"bytes"
	"context"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/concord-kv/concord/services/gateway/internal/app"
)

// syncBuffer is a bytes.Buffer safe for the writer and the test to share.
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

func TestHelp(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := app.Run(t.Context(), []string{"--help"}, env(nil), &out, &errOut); err != nil {
		t.Fatalf("--help: %v", err)
	}
	for _, want := range []string{"-addr", "CONCORD_GATEWAY_ADDR", "-replicas", "CONCORD_REPLICAS", "CONCORD_DEFAULT_CONSISTENCY", "CONCORD_CORS_ORIGINS", "CONCORD_REQUEST_TIMEOUT", "-consul-addr", "CONCORD_CONSUL_ADDR", "CONCORD_CONSUL_SERVICE"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("usage does not mention %s:\n%s", want, errOut.String())
		}
	}
}

func TestBadConfig(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no replicas", nil, nil, "replica"},
		{"bad consistency", []string{"--replicas", "http://r:1"}, map[string]string{"CONCORD_DEFAULT_CONSISTENCY": "sometimes"}, "sometimes"},
		{"bad body limit", []string{"--replicas", "http://r:1", "--max-body-bytes", "lots"}, nil, "lots"},
		{"bad request timeout", []string{"--replicas", "http://r:1"}, map[string]string{"CONCORD_REQUEST_TIMEOUT": "soon"}, "soon"},
		{"bad replica URL", []string{"--replicas", "ftp://r:1"}, nil, "ftp://r:1"},
		{"stray argument", []string{"--replicas", "http://r:1", "extra"}, nil, "extra"},
		{"replicas and consul", []string{"--replicas", "http://r:1"}, map[string]string{"CONCORD_CONSUL_ADDR": "127.0.0.1:8500"}, "exclude each other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := app.Run(t.Context(), tt.args, env(tt.env), &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Run = %v, want an error about %q", err, tt.want)
			}
			if !strings.Contains(errOut.String(), tt.want) {
				t.Errorf("stderr %q does not explain the error", errOut.String())
			}
		})
	}
}

func TestRunServesUntilCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	var out, errOut syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, nil, env(map[string]string{
			"CONCORD_GATEWAY_ADDR": "127.0.0.1:0",
			"CONCORD_REPLICAS":     "http://127.0.0.1:1",
			"CONCORD_CORS_ORIGINS": "*",
		}), &out, &errOut)
	}()
	addr := regexp.MustCompile(`serving (http://\S+)`)
	var base string
	for base == "" {
		select {
		case err := <-done:
			t.Fatalf("Run returned early: %v\n%s", err, errOut.String())
		case <-time.After(10 * time.Millisecond):
		}
		if m := addr.FindStringSubmatch(out.String()); m != nil {
			base = m[1]
		}
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/health", nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("/health: %d", res.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
}
