package consul_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/concord-kv/concord/sdk/go/concordtest"
	"go.uber.org/goleak"
)

// replicas are the API URLs of one 3-replica cluster that TestMain starts
// for the tests and the example; registry stands in for the Consul agent
// they are registered with, and consulAddr is its address.
var (
	replicas   []string
	registry   *fakeConsul
	consulAddr string
)

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	tb := concordtest.NewMainTB("concord-consul-test")
	replicas = concordtest.Start(tb, 3).URLs()
	registry = newFakeConsul(replicas)
	consulAddr = registry.srv.Listener.Addr().String()
	code := m.Run()
	registry.close()
	tb.Close()
	if err := goleak.Find(); err != nil && code == 0 {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return code
}

// fakeConsul serves the one Consul endpoint a Watcher reads,
// GET /v1/health/service/concord-replica?passing, with blocking queries.
// The real Consul API double lives in the tests module (tests/consuldouble),
// which this module cannot import.
type fakeConsul struct {
	srv *httptest.Server

	mu      sync.Mutex
	index   uint64
	urls    []string
	changed chan struct{}
	stop    chan struct{}
}

func newFakeConsul(urls []string) *fakeConsul {
	f := &fakeConsul{index: 1, urls: urls, changed: make(chan struct{}), stop: make(chan struct{})}
	f.srv = httptest.NewServer(http.HandlerFunc(f.health))
	return f
}

// set replaces the passing instances.
func (f *fakeConsul) set(urls []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.urls, f.index = urls, f.index+1
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeConsul) close() {
	close(f.stop)
	f.srv.Close()
}

func (f *fakeConsul) health(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/health/service/concord-replica" || !r.URL.Query().Has("passing") {
		http.NotFound(w, r)
		return
	}
	after, _ := strconv.ParseUint(r.URL.Query().Get("index"), 10, 64)
	wait, _ := time.ParseDuration(r.URL.Query().Get("wait"))
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		f.mu.Lock()
		index, urls, changed := f.index, f.urls, f.changed
		f.mu.Unlock()
		if after == 0 || index > after {
			type service struct {
				ID, Service string
				Meta        map[string]string
			}
			type check struct{ Status string }
			type entry struct {
				Service service
				Checks  []check
			}
			out := []entry{}
			for i, u := range urls {
				out = append(out, entry{Service: service{ID: "concord-replica-n" + strconv.Itoa(i+1), Service: "concord-replica",
					Meta: map[string]string{"api_addr": u}}, Checks: []check{{Status: "passing"}}})
			}
			w.Header().Set("X-Consul-Index", strconv.FormatUint(index, 10))
			_ = json.NewEncoder(w).Encode(out)
			return
		}
		select {
		case <-changed:
		case <-timer.C:
			after = 0
		case <-r.Context().Done():
			return
		case <-f.stop:
			return
		}
	}
}
