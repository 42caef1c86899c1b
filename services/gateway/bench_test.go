package gateway_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/concord-kv/concord/services/gateway"
	"github.com/concord-kv/concord/services/replica/replicatest"
)

// Benchmarks of the REST API through a gateway in front of an in-process
// 3-replica cluster (real Raft over TCP, fsync on), at 1, 16 and 64
// concurrent clients. Figures: go test -run '^$' -bench REST -benchtime 10s
// in services/gateway; ns/op is per request across all clients, so
// requests per second = 1e9 / ns/op (also reported as req/s).

var benchClients = []int{1, 16, 64}

// benchGateway starts the cluster and the gateway once per benchmark.
func benchGateway(b *testing.B) string {
	b.Helper()
	c := replicatest.Start(b, 3)
	c.WaitLeader(leaderTimeout)
	gw := startServer(b, gateway.Config{
		Replicas: c.Addrs(), Logger: slog.New(slog.NewTextHandler(b.Output(), &slog.HandlerOptions{Level: slog.LevelError})),
	})
	return gw.Addr()
}

// benchClient is a keep-alive HTTP/1.1 pool large enough for every client.
func benchClient(b *testing.B) *http.Client {
	b.Helper()
	t := &http.Transport{MaxIdleConns: 128, MaxIdleConnsPerHost: 128, IdleConnTimeout: time.Minute}
	b.Cleanup(t.CloseIdleConnections)
	return &http.Client{Transport: t, Timeout: 30 * time.Second}
}

// benchClientH2C speaks HTTP/2 without TLS (prior knowledge) to the
// gateway, which serves h2c on the same port: every client's requests share
// one connection.
func benchClientH2C(b *testing.B) *http.Client {
	b.Helper()
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	t := &http.Transport{Protocols: &protocols, IdleConnTimeout: time.Minute}
	b.Cleanup(t.CloseIdleConnections)
	return &http.Client{Transport: t, Timeout: 30 * time.Second}
}

// runClients runs b.N requests spread over n goroutines; req makes the
// i-th request.
func runClients(b *testing.B, n int, client *http.Client, req func(ctx context.Context, i int) *http.Request) {
	b.Helper()
	var next atomic.Int64
	var failed atomic.Pointer[string]
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range n {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				res, err := client.Do(req(b.Context(), int(i)))
				if err != nil {
					failed.CompareAndSwap(nil, new(err.Error()))
					return
				}
				_, _ = io.Copy(io.Discard, res.Body)
				_ = res.Body.Close()
				if res.StatusCode != http.StatusOK {
					failed.CompareAndSwap(nil, new(res.Status))
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if f := failed.Load(); f != nil {
		b.Fatalf("request failed: %s", *f)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
}

func newRequest(ctx context.Context, method, url, body string) *http.Request {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		panic(err) // the URLs are made here
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return req
}

// BenchmarkRESTGet reads 100 keys at the default (leader) consistency
// over HTTP/1.1 keep-alive connections.
func BenchmarkRESTGet(b *testing.B) { benchRESTGet(b, benchClient) }

// BenchmarkRESTGetH2C is BenchmarkRESTGet over HTTP/2 (h2c).
func BenchmarkRESTGetH2C(b *testing.B) { benchRESTGet(b, benchClientH2C) }

func benchRESTGet(b *testing.B, newClient func(*testing.B) *http.Client) {
	base := benchGateway(b)
	client := newClient(b)
	const keys = 100
	for i := range keys {
		res, err := client.Do(newRequest(b.Context(), http.MethodPut, fmt.Sprintf("%s/api/v1/kv/bench:%d", base, i), `{"value": {"n": 1}}`))
		if err != nil {
			b.Fatal(err)
		}
		_ = res.Body.Close()
	}
	for _, n := range benchClients {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) {
			runClients(b, n, client, func(ctx context.Context, i int) *http.Request {
				return newRequest(ctx, http.MethodGet, fmt.Sprintf("%s/api/v1/kv/bench:%d", base, i%keys), "")
			})
		})
	}
}

// BenchmarkRESTPut writes small JSON values to distinct keys.
func BenchmarkRESTPut(b *testing.B) {
	base := benchGateway(b)
	client := benchClient(b)
	for _, n := range benchClients {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) {
			runClients(b, n, client, func(ctx context.Context, i int) *http.Request {
				return newRequest(ctx, http.MethodPut, fmt.Sprintf("%s/api/v1/kv/bench:put:%d:%d", base, n, i), `{"value": {"n": 1}}`)
			})
		})
	}
}
