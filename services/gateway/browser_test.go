package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	concord "github.com/concord-kv/concord/sdk/go"
	"github.com/concord-kv/concord/services/gateway"
	"github.com/concord-kv/concord/services/replica/replicatest"
)

// browserTimeout bounds each step of a browser test (after the start).
const browserTimeout = 30 * time.Second

// chromiumPath finds Debian's chromium (CHROMIUM overrides).
func chromiumPath() string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// browser starts a headless chromium for the test and returns its context.
// Without chromium the test fails in CI (CI=true), which installs it, and is
// skipped elsewhere.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := chromiumPath()
	if path == "" {
		const msg = "chromium not found: apt-get install -y --no-install-recommends chromium (or set CHROMIUM)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU)
	// Not t.Context(): the cleanup below closes the browser gracefully.
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// Start the browser and open the tab. No timeout on this first run: its
	// context would become the browser's and end it.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium %s: %v", path, err)
	}
	return ctx
}

// step runs browser actions with a timeout.
func step(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, browserTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression (awaiting a promise) in the page.
func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, browserTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// waitFor polls a JavaScript predicate until it is true; on timeout it
// fails with the value of show.
func waitFor(t *testing.T, ctx context.Context, what, predicate, show string) {
	t.Helper()
	ctx2, cancel := context.WithTimeout(ctx, browserTimeout)
	defer cancel()
	if _, err := chromedp.Run(ctx2, chromedp.Poll[bool](predicate, chromedp.WithPollingInterval(50*time.Millisecond),
		chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Fatalf("%s: %v; the page shows %s", what, err, eval[string](t, ctx, show))
	}
}

const (
	listedKeys = `[...document.querySelectorAll('#keys tbody tr')].map(r => r.dataset.key).join(',')`
	message    = `document.querySelector('#message').textContent`
)

func sdkClient(t *testing.T, endpoints []string) *concord.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cl, err := concord.New(ctx, endpoints)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// TestConsoleInBrowser drives the web console in chromium: it lists keys
// put through REST, pages through them, edits one (read back through the
// SDK), refuses invalid JSON, deletes one, and shows the cluster's leader.
func TestConsoleInBrowser(t *testing.T) {
	ctx := browser(t)
	c, base := start(t)
	put(t, base, "ui:alpha", `{"value": {"color": "red"}}`)
	put(t, base, "ui:beta", `{"value": "text", "ttl": 3600}`)
	put(t, base, "ui:gamma", `{"value": 3}`)
	put(t, base, "other:x", `{"value": 0}`)
	items := make([]string, 12)
	for i := range items {
		items[i] = fmt.Sprintf(`{"key": "pg:%02d", "value": %d}`, i, i)
	}
	do(t, http.MethodPost, base+"/api/v1/kv/bulk", `{"items": [`+strings.Join(items, ",")+`]}`).ok(t, nil)
	cl := sdkClient(t, c.Addrs())

	step(t, ctx, "open the console", chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#keys")))

	leader := c.Node(c.Leader()).ID()
	waitFor(t, ctx, "cluster status", `document.querySelector('#status-leader').textContent === `+strconv.Quote(leader)+
		` && document.querySelectorAll('#members tbody tr').length === 3`, `document.querySelector('#cluster-summary').textContent`)

	step(t, ctx, "search ui:", chromedp.SetValue(chromedp.CSS("#prefix"), "ui:"), chromedp.Click(chromedp.CSS("#search-button")))
	waitFor(t, ctx, "keys listed", listedKeys+` === 'ui:alpha,ui:beta,ui:gamma'`, listedKeys)

	t.Run("pagination", func(t *testing.T) {
		step(t, ctx, "search pg:", chromedp.SetValue(chromedp.CSS("#prefix"), "pg:"),
			chromedp.SetValue(chromedp.CSS("#limit"), "10"), chromedp.Click(chromedp.CSS("#search-button")))
		waitFor(t, ctx, "first page", listedKeys+` === 'pg:00,pg:01,pg:02,pg:03,pg:04,pg:05,pg:06,pg:07,pg:08,pg:09'`, listedKeys)
		step(t, ctx, "next page", chromedp.Click(chromedp.CSS("#next")))
		waitFor(t, ctx, "second page", listedKeys+` === 'pg:10,pg:11' && document.querySelector('#next').disabled`, listedKeys)
		step(t, ctx, "previous page", chromedp.Click(chromedp.CSS("#prev")))
		waitFor(t, ctx, "first page again", listedKeys+`.startsWith('pg:00,') && document.querySelector('#prev').disabled`, listedKeys)
		step(t, ctx, "back to ui:", chromedp.SetValue(chromedp.CSS("#prefix"), "ui:"), chromedp.Click(chromedp.CSS("#search-button")))
		waitFor(t, ctx, "keys listed", listedKeys+` === 'ui:alpha,ui:beta,ui:gamma'`, listedKeys)
	})

	t.Run("edit reads back through the SDK", func(t *testing.T) {
		step(t, ctx, "open ui:beta", chromedp.Click(chromedp.CSS(`#keys tbody tr[data-key="ui:beta"]`)))
		waitFor(t, ctx, "ui:beta in the editor",
			`document.querySelector('#edit-value').value === '"text"' && +document.querySelector('#edit-ttl').value > 3000`,
			`document.querySelector('#edit-value').value + ' ttl ' + document.querySelector('#edit-ttl').value`)

		step(t, ctx, "type invalid JSON", chromedp.SetValue(chromedp.CSS("#edit-value"), `{not json`), chromedp.Click(chromedp.CSS("#save")))
		waitFor(t, ctx, "invalid JSON refused", message+`.includes('not valid JSON')`, message)

		step(t, ctx, "edit and save", chromedp.SetValue(chromedp.CSS("#edit-value"), `{"edited": true}`), chromedp.Click(chromedp.CSS("#save")))
		waitFor(t, ctx, "saved", message+`.startsWith('Saved ui:beta')`, message)

		kv, err := cl.GetWithTTL(t.Context(), "ui:beta", concord.Consistency(concord.Strong))
		if err != nil {
			t.Fatal(err)
		}
		if string(kv.Value) != `{"edited": true}` || kv.ContentType != "application/json" || kv.Version != 2 || kv.TTL <= 3000*time.Second {
			t.Errorf("SDK read of the edit: value %s, content type %q, version %d, ttl %v", kv.Value, kv.ContentType, kv.Version, kv.TTL)
		}
	})

	t.Run("delete", func(t *testing.T) {
		step(t, ctx, "open ui:gamma", chromedp.Click(chromedp.CSS(`#keys tbody tr[data-key="ui:gamma"]`)))
		waitFor(t, ctx, "ui:gamma in the editor", `document.querySelector('#edit-key').value === 'ui:gamma'`,
			`document.querySelector('#edit-key').value`)
		step(t, ctx, "delete twice", chromedp.Click(chromedp.CSS("#delete")), chromedp.Click(chromedp.CSS("#delete")))
		waitFor(t, ctx, "deleted", message+` === 'Deleted ui:gamma.' && `+listedKeys+` === 'ui:alpha,ui:beta'`, message+` + ' | ' + `+listedKeys)
		if _, err := cl.Get(t.Context(), "ui:gamma", concord.Consistency(concord.Strong)); !errors.Is(err, concord.ErrNotFound) {
			t.Errorf("SDK read of the deleted key: %v, want ErrNotFound", err)
		}
	})
}

// TestCORSInBrowser: a page served from another origin calls the gateway's
// Connect API with fetch() and gets the value; a gateway that does not list
// that origin is refused by the browser.
func TestCORSInBrowser(t *testing.T) {
	ctx := browser(t)
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte(`<!DOCTYPE html><title>elsewhere</title><p>Another origin.</p>`))
	}))
	t.Cleanup(page.Close)

	c := replicatest.Start(t, 3)
	c.WaitLeader(leaderTimeout)
	allowed := startGateway(t, gateway.Config{Replicas: c.Addrs(), CORSOrigins: []string{page.URL}})
	refused := startGateway(t, gateway.Config{Replicas: c.Addrs(), CORSOrigins: []string{"http://console.example"}})
	put(t, allowed, "cors:greeting", `{"value": "hello from another origin"}`)

	step(t, ctx, "open the other origin", chromedp.Navigate(page.URL))
	connectGet := func(gw string) string {
		return `fetch(` + strconv.Quote(gw+"/concord.v1.KVService/Get") + `, {
			method: 'POST',
			headers: {'Content-Type': 'application/json', 'Connect-Protocol-Version': '1'},
			body: JSON.stringify({key: 'cors:greeting', consistency: 'CONSISTENCY_STRONG'}),
		}).then(r => r.json()).then(m => atob(m.kv.value), e => 'refused: ' + e.name)`
	}
	if got := eval[string](t, ctx, connectGet(allowed)); got != `"hello from another origin"` {
		t.Errorf("Connect Get from %s = %q", page.URL, got)
	}
	if got := eval[string](t, ctx, connectGet(refused)); got != "refused: TypeError" {
		t.Errorf("Connect Get through a gateway that does not allow %s = %q, want refused", page.URL, got)
	}
	// REST too, with the revision header exposed to the page.
	rev := eval[string](t, ctx, `fetch(`+strconv.Quote(allowed+"/api/v1/kv/cors:greeting")+`).then(r => r.headers.get('X-Concord-Revision'))`)
	if n, err := strconv.ParseUint(rev, 10, 64); err != nil || n == 0 {
		t.Errorf("REST GET from another origin: X-Concord-Revision %q", rev)
	}
}
