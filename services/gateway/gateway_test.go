package gateway_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	concordv1 "github.com/concord-kv/concord/proto/gen/go/concord/v1"
	"github.com/concord-kv/concord/proto/gen/go/concord/v1/concordv1connect"
	"github.com/concord-kv/concord/services/gateway"
	"github.com/concord-kv/concord/services/replica/replicatest"
)

const leaderTimeout = 20 * time.Second

// start runs a 3-replica cluster and a gateway in front of it.
func start(t *testing.T) (*replicatest.Cluster, string) {
	t.Helper()
	c := replicatest.Start(t, 3)
	c.WaitLeader(leaderTimeout)
	return c, startGateway(t, gateway.Config{Replicas: c.Addrs()})
}

func startGateway(t *testing.T, cfg gateway.Config) string {
	t.Helper()
	return startServer(t, cfg).Addr()
}

// startServer starts a gateway on a free port, logging to the test unless
// cfg has a logger, and closes it when the test ends.
func startServer(t testing.TB, cfg gateway.Config) *gateway.Server {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	gw, err := gateway.Start(t.Context(), cfg)
	if err != nil {
		t.Fatalf("start gateway: %v", err)
	}
	t.Cleanup(func() {
		if err := gw.Close(); err != nil {
			t.Errorf("close gateway: %v", err)
		}
	})
	return gw
}

// result is one HTTP exchange.
type result struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request; hdr is alternating header names and values.
func do(t *testing.T, method, url, body string, hdr ...string) result {
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
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	b, err := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return result{res.StatusCode, res.Header, b}
}

// ok checks a 200 and decodes the body into v.
func (r result) ok(t *testing.T, v any) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d, want 200; body %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	if v != nil {
		if err := json.Unmarshal(r.body, v); err != nil {
			t.Fatalf("decode %s: %v", r.body, err)
		}
	}
}

// fails checks an error response: status, error code and a message part.
func (r result) fails(t *testing.T, status int, code, msgPart string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("decode error body %s: %v", r.body, err)
	}
	if e.Error.Code != code {
		t.Errorf("error code %q, want %q (message %q)", e.Error.Code, code, e.Error.Message)
	}
	if !strings.Contains(e.Error.Message, msgPart) {
		t.Errorf("error message %q does not contain %q", e.Error.Message, msgPart)
	}
}

type putResult struct {
	Key      string `json:"key"`
	Revision uint64 `json:"revision"`
}

type getResult struct {
	Key            string          `json:"key"`
	Value          json.RawMessage `json:"value"`
	Encoding       string          `json:"encoding"`
	ContentType    string          `json:"content_type"`
	Revision       uint64          `json:"revision"`
	CreateRevision uint64          `json:"create_revision"`
	ModRevision    uint64          `json:"mod_revision"`
	Version        uint64          `json:"version"`
	TTL            *int64          `json:"ttl"`
}

func put(t *testing.T, base, key, body string) putResult {
	t.Helper()
	var p putResult
	do(t, http.MethodPut, base+"/api/v1/kv/"+key, body, "Content-Type", "application/json").ok(t, &p)
	if p.Revision == 0 {
		t.Fatalf("PUT %s: revision 0", key)
	}
	return p
}

func get(t *testing.T, base, pathKey string) getResult {
	t.Helper()
	var g getResult
	do(t, http.MethodGet, base+"/api/v1/kv/"+pathKey, "").ok(t, &g)
	return g
}

func compact(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		t.Fatalf("compact %s: %v", s, err)
	}
	return b.String()
}

func TestREST(t *testing.T) {
	c, base := start(t)
	kv := concordv1connect.NewKVServiceClient(http.DefaultClient, base)

	t.Run("value round trip keeps JSON types", func(t *testing.T) {
		for i, v := range []string{
			`{"name": "Alice", "roles": ["admin"], "age": 30}`,
			`"Hello, World!"`, `42`, `-1.5e3`, `[1, "two", {"three": 3}, null]`,
			`null`, `true`, `{}`, `""`,
		} {
			key := fmt.Sprintf("types:%d", i)
			p := put(t, base, key, `{"value": `+v+`}`)
			if p.Key != key {
				t.Errorf("PUT key %q, want %q", p.Key, key)
			}
			g := get(t, base, key)
			if got, want := string(g.Value), compact(t, v); got != want {
				t.Errorf("GET %s value %s, want %s", key, got, want)
			}
			if g.Key != key || g.Revision != p.Revision || g.ModRevision != p.Revision || g.CreateRevision != p.Revision || g.Version != 1 {
				t.Errorf("GET %s = %+v, want key %q and revisions %d, version 1", key, g, key, p.Revision)
			}
			if g.Encoding != "" || g.ContentType != "" {
				t.Errorf("GET %s: JSON value came back with encoding %q content type %q", key, g.Encoding, g.ContentType)
			}
		}
	})

	t.Run("revision and node headers", func(t *testing.T) {
		r := do(t, http.MethodPut, base+"/api/v1/kv/headers", `{"value": 1}`)
		var p putResult
		r.ok(t, &p)
		if got := r.header.Get("X-Concord-Revision"); got != strconv.FormatUint(p.Revision, 10) {
			t.Errorf("PUT X-Concord-Revision %q, want %d", got, p.Revision)
		}
		if r.header.Get("X-Concord-Node") == "" {
			t.Error("PUT: no X-Concord-Node")
		}
		g := do(t, http.MethodGet, base+"/api/v1/kv/headers?consistency=strong", "")
		g.ok(t, nil)
		if rev, err := strconv.ParseUint(g.header.Get("X-Concord-Revision"), 10, 64); err != nil || rev < p.Revision {
			t.Errorf("GET X-Concord-Revision %q, want ≥ %d", g.header.Get("X-Concord-Revision"), p.Revision)
		}
		if g.header.Get("X-Concord-Node") == "" {
			t.Error("GET: no X-Concord-Node")
		}
	})

	t.Run("keys with colons and percent-encoding", func(t *testing.T) {
		p := put(t, base, "user:1001", `{"value": {"name": "Alice"}}`)
		if g := get(t, base, "user%3A1001"); g.Key != "user:1001" || g.Revision != p.Revision {
			t.Errorf("GET user%%3A1001 = %+v, want user:1001 at %d", g, p.Revision)
		}
		put(t, base, "user%3A1002", `{"value": 2}`)
		if g := get(t, base, "user:1002"); string(g.Value) != "2" {
			t.Errorf("GET user:1002 value %s, want 2", g.Value)
		}
		put(t, base, "a%2Fb", `{"value": "slash"}`)
		if g := get(t, base, "a%2Fb"); g.Key != "a/b" || string(g.Value) != `"slash"` {
			t.Errorf("GET a%%2Fb = %+v, want key a/b", g)
		}
		// The key really is "a/b": read it over Connect.
		res, err := kv.Get(t.Context(), connect.NewRequest(&concordv1.GetRequest{Key: "a/b"}))
		if err != nil {
			t.Fatalf("Connect Get a/b: %v", err)
		}
		if got := string(res.Msg.GetKv().GetValue()); got != `"slash"` {
			t.Errorf("Connect Get a/b = %s", got)
		}
		put(t, base, "sp%20ace%3F%23", `{"value": 3}`)
		if g := get(t, base, "sp%20ace%3F%23"); g.Key != "sp ace?#" {
			t.Errorf("GET key %q, want %q", g.Key, "sp ace?#")
		}
	})

	t.Run("PUT content types", func(t *testing.T) {
		do(t, http.MethodPut, base+"/api/v1/kv/ct:none", `{"value": "a"}`).ok(t, nil)
		do(t, http.MethodPut, base+"/api/v1/kv/ct:form", `{"value": "b"}`, "Content-Type", "application/x-www-form-urlencoded").ok(t, nil)
		do(t, http.MethodPut, base+"/api/v1/kv/ct:charset", `{"value": "c"}`, "Content-Type", "application/json; charset=utf-8").ok(t, nil)
		do(t, http.MethodPut, base+"/api/v1/kv/ct:text", `{"value": "d"}`, "Content-Type", "text/plain").
			fails(t, http.StatusUnsupportedMediaType, "invalid_argument", "text/plain")
		if g := get(t, base, "ct:form"); string(g.Value) != `"b"` {
			t.Errorf("form-typed PUT stored %s", g.Value)
		}
	})

	t.Run("PUT options", func(t *testing.T) {
		p := put(t, base, "opt:cas", `{"value": 1}`)
		do(t, http.MethodPut, base+"/api/v1/kv/opt:cas", `{"value": 2, "if_absent": true}`).
			fails(t, http.StatusConflict, "conflict", "")
		do(t, http.MethodPut, base+"/api/v1/kv/opt:cas", fmt.Sprintf(`{"value": 3, "if_mod_revision": %d}`, p.Revision+1000)).
			fails(t, http.StatusConflict, "conflict", "")
		p2 := put(t, base, "opt:cas", fmt.Sprintf(`{"value": 4, "if_mod_revision": %d}`, p.Revision))
		if g := get(t, base, "opt:cas"); string(g.Value) != "4" || g.Version != 2 || g.CreateRevision != p.Revision || g.ModRevision != p2.Revision {
			t.Errorf("after CAS: %+v", g)
		}
		put(t, base, "opt:new", `{"value": 1, "if_absent": true}`)
		big := `{"value": "` + strings.Repeat("x", 4096) + `", "compress": true}`
		put(t, base, "opt:compressed", big)
		if g := get(t, base, "opt:compressed"); len(g.Value) != 4096+2 {
			t.Errorf("compressed value came back %d bytes", len(g.Value))
		}
	})

	t.Run("PUT and GET errors", func(t *testing.T) {
		tests := []struct {
			name, method, path, body string
			hdr                      []string
			status                   int
			code, msg                string
		}{
			{"control character in key", "PUT", "/api/v1/kv/bad%01key", `{"value": 1}`, nil, 400, "invalid_argument", "key"},
			{"control character in key on GET", "GET", "/api/v1/kv/bad%7Fkey", "", nil, 400, "invalid_argument", "key"},
			{"key too long", "PUT", "/api/v1/kv/" + strings.Repeat("k", 513), `{"value": 1}`, nil, 400, "invalid_argument", "key"},
			{"unknown field", "PUT", "/api/v1/kv/k", `{"value": 1, "bogus": true}`, nil, 400, "invalid_argument", `"bogus"`},
			{"malformed JSON", "PUT", "/api/v1/kv/k", `{"value": `, nil, 400, "invalid_argument", "malformed JSON"},
			{"syntax error", "PUT", "/api/v1/kv/k", `{"value" 1}`, nil, 400, "invalid_argument", "malformed JSON at byte"},
			{"trailing data", "PUT", "/api/v1/kv/k", `{"value": 1} {}`, nil, 400, "invalid_argument", "unexpected data"},
			{"wrong type", "PUT", "/api/v1/kv/k", `{"value": 1, "ttl": "soon"}`, nil, 400, "invalid_argument", `"ttl"`},
			{"not an object", "PUT", "/api/v1/kv/k", `[1]`, nil, 400, "invalid_argument", "JSON object"},
			{"missing value", "PUT", "/api/v1/kv/k", `{"ttl": 5}`, nil, 400, "invalid_argument", `"value"`},
			{"empty body", "PUT", "/api/v1/kv/k", ``, nil, 400, "invalid_argument", "empty"},
			{"negative ttl", "PUT", "/api/v1/kv/k", `{"value": 1, "ttl": -1}`, nil, 400, "invalid_argument", "ttl"},
			{"value too large", "PUT", "/api/v1/kv/k", `{"value": "` + strings.Repeat("v", 1<<20) + `"}`, nil, 400, "invalid_argument", "value"},
			{"body too large", "PUT", "/api/v1/kv/k", `{"value": "` + strings.Repeat("v", 3<<20) + `"}`, nil, 413, "invalid_argument", "larger than"},
			{"missing key", "GET", "/api/v1/kv/no-such-key", "", nil, 404, "not_found", "no-such-key"},
			{"missing key ttl", "GET", "/api/v1/kv/no-such-key/ttl", "", nil, 404, "not_found", "no-such-key"},
			{"touch missing key", "POST", "/api/v1/kv/no-such-key/touch", `{"ttl": 5}`, nil, 404, "not_found", ""},
			{"bad consistency", "GET", "/api/v1/kv/user:1001?consistency=sometimes", "", nil, 400, "invalid_argument", "sometimes"},
			{"bad consistency header", "GET", "/api/v1/kv/user:1001", "", []string{"X-Concord-Consistency", "maybe"}, 400, "invalid_argument", "maybe"},
			{"bad with_ttl", "GET", "/api/v1/kv/user:1001?with_ttl=perhaps", "", nil, 400, "invalid_argument", "with_ttl"},
			{"bad if_mod_revision", "DELETE", "/api/v1/kv/user:1001?if_mod_revision=-1", "", nil, 400, "invalid_argument", "if_mod_revision"},
			{"touch without ttl", "POST", "/api/v1/kv/user:1001/touch", `{}`, nil, 400, "invalid_argument", `"ttl"`},
			{"list limit too large", "GET", "/api/v1/kv?limit=5000", "", nil, 400, "invalid_argument", "limit"},
			{"list bad cursor", "GET", "/api/v1/kv?cursor=%21%21", "", nil, 400, "invalid_argument", "cursor"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				do(t, tt.method, base+tt.path, tt.body, tt.hdr...).fails(t, tt.status, tt.code, tt.msg)
			})
		}
		// Nothing was written by the failed PUTs.
		do(t, http.MethodGet, base+"/api/v1/kv/k", "").fails(t, 404, "not_found", "")
	})

	t.Run("consistency levels", func(t *testing.T) {
		p := put(t, base, "cons", `{"value": "x"}`)
		for _, q := range []string{"?consistency=eventual&min_revision=" + strconv.FormatUint(p.Revision, 10), "?consistency=leader", "?consistency=strong", "?consistency=STRONG"} {
			var g getResult
			do(t, http.MethodGet, base+"/api/v1/kv/cons"+q, "").ok(t, &g)
			if string(g.Value) != `"x"` {
				t.Errorf("GET %s value %s", q, g.Value)
			}
		}
		var g getResult
		do(t, http.MethodGet, base+"/api/v1/kv/cons", "", "X-Concord-Consistency", "strong").ok(t, &g)
		if string(g.Value) != `"x"` {
			t.Errorf("GET with header value %s", g.Value)
		}
	})

	t.Run("DELETE", func(t *testing.T) {
		put(t, base, "del:me", `{"value": 1}`)
		var d struct {
			Key      string `json:"key"`
			Deleted  bool   `json:"deleted"`
			Revision uint64 `json:"revision"`
		}
		do(t, http.MethodDelete, base+"/api/v1/kv/del:me", "").ok(t, &d)
		if d.Key != "del:me" || !d.Deleted || d.Revision == 0 {
			t.Errorf("DELETE = %+v", d)
		}
		do(t, http.MethodGet, base+"/api/v1/kv/del:me", "").fails(t, 404, "not_found", "del:me")
		do(t, http.MethodDelete, base+"/api/v1/kv/del:me", "").ok(t, &d)
		if d.Deleted {
			t.Errorf("second DELETE = %+v, want deleted false", d)
		}
		p := put(t, base, "del:cas", `{"value": 1}`)
		do(t, http.MethodDelete, base+"/api/v1/kv/del:cas?if_mod_revision="+strconv.FormatUint(p.Revision+1000, 10), "").
			fails(t, 409, "conflict", "")
		do(t, http.MethodDelete, base+"/api/v1/kv/del:cas?if_mod_revision="+strconv.FormatUint(p.Revision, 10), "").ok(t, &d)
		if !d.Deleted {
			t.Errorf("CAS DELETE = %+v", d)
		}
	})

	t.Run("TTL, touch and with_ttl", func(t *testing.T) {
		put(t, base, "ttl:a", `{"value": 1, "ttl": 100}`)
		var tr struct {
			Key string `json:"key"`
			TTL *int64 `json:"ttl"`
		}
		do(t, http.MethodGet, base+"/api/v1/kv/ttl:a/ttl", "").ok(t, &tr)
		if tr.Key != "ttl:a" || tr.TTL == nil || *tr.TTL <= 0 || *tr.TTL > 100 {
			t.Errorf("GET ttl = %+v, want 1..100", tr)
		}
		g := do(t, http.MethodGet, base+"/api/v1/kv/ttl:a?with_ttl=true", "")
		var gr getResult
		g.ok(t, &gr)
		if gr.TTL == nil || *gr.TTL <= 0 || *gr.TTL > 100 {
			t.Errorf("GET with_ttl = %s", g.body)
		}
		if plain := do(t, http.MethodGet, base+"/api/v1/kv/ttl:a", ""); bytes.Contains(plain.body, []byte(`"ttl"`)) {
			t.Errorf("GET without with_ttl has a ttl: %s", plain.body)
		}

		var touched struct {
			Key      string `json:"key"`
			TTL      int64  `json:"ttl"`
			Revision uint64 `json:"revision"`
		}
		do(t, http.MethodPost, base+"/api/v1/kv/ttl:a/touch", `{"ttl": 5000}`).ok(t, &touched)
		if touched.Key != "ttl:a" || touched.TTL != 5000 || touched.Revision == 0 {
			t.Errorf("touch = %+v", touched)
		}
		do(t, http.MethodGet, base+"/api/v1/kv/ttl:a/ttl", "").ok(t, &tr)
		if tr.TTL == nil || *tr.TTL <= 100 || *tr.TTL > 5000 {
			t.Errorf("after touch ttl = %v, want 101..5000", tr.TTL)
		}
		// No expiry: ttl is null, in /ttl and with_ttl alike.
		do(t, http.MethodPost, base+"/api/v1/kv/ttl:a/touch", `{"ttl": 0}`).ok(t, nil)
		r := do(t, http.MethodGet, base+"/api/v1/kv/ttl:a/ttl", "")
		r.ok(t, nil)
		if got := compact(t, string(r.body)); got != `{"key":"ttl:a","ttl":null}` {
			t.Errorf("GET ttl of a key without expiry = %s", got)
		}
		r = do(t, http.MethodGet, base+"/api/v1/kv/ttl:a?with_ttl=1", "")
		r.ok(t, nil)
		if !bytes.Contains(r.body, []byte(`"ttl":null`)) {
			t.Errorf("GET with_ttl of a key without expiry = %s", r.body)
		}
	})

	t.Run("bulk", func(t *testing.T) {
		var bp struct {
			Count    int    `json:"count"`
			Revision uint64 `json:"revision"`
		}
		do(t, http.MethodPost, base+"/api/v1/kv/bulk",
			`{"items": [{"key": "bulk:1", "value": 1}, {"key": "bulk:2", "value": "two", "ttl": 60}, {"key": "bulk/3", "value": [3]}]}`).ok(t, &bp)
		if bp.Count != 3 || bp.Revision == 0 {
			t.Errorf("bulk put = %+v", bp)
		}

		var bg struct {
			Items   []getResult `json:"items"`
			Missing []string    `json:"missing"`
		}
		do(t, http.MethodPost, base+"/api/v1/kv/bulk/get?with_ttl=true&consistency=strong",
			`{"keys": ["bulk:1", "bulk:none", "bulk:2", "bulk/3"]}`).ok(t, &bg)
		var got []string
		for _, it := range bg.Items {
			got = append(got, it.Key+"="+string(it.Value))
			if it.Revision != bp.Revision {
				t.Errorf("bulk get %s revision %d, want %d", it.Key, it.Revision, bp.Revision)
			}
		}
		if want := []string{"bulk:1=1", `bulk:2="two"`, "bulk/3=[3]"}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("bulk get items %v, want %v", got, want)
		}
		if fmt.Sprint(bg.Missing) != "[bulk:none]" {
			t.Errorf("bulk get missing %v", bg.Missing)
		}
		if bg.Items[0].TTL != nil || bg.Items[1].TTL == nil || *bg.Items[1].TTL > 60 {
			t.Errorf("bulk get ttls: %v %v", bg.Items[0].TTL, bg.Items[1].TTL)
		}

		var bt struct {
			Missing  []string `json:"missing"`
			Revision uint64   `json:"revision"`
		}
		do(t, http.MethodPost, base+"/api/v1/kv/bulk/touch", `{"items": [{"key": "bulk:1", "ttl": 30}, {"key": "bulk:none", "ttl": 30}]}`).ok(t, &bt)
		if fmt.Sprint(bt.Missing) != "[bulk:none]" || bt.Revision == 0 {
			t.Errorf("bulk touch = %+v", bt)
		}
		if g := do(t, http.MethodGet, base+"/api/v1/kv/bulk:1/ttl", ""); !bytes.Contains(g.body, []byte(`"ttl":30`)) && !bytes.Contains(g.body, []byte(`"ttl":29`)) {
			t.Errorf("after bulk touch: %s", g.body)
		}

		var bd struct {
			Deleted  uint64 `json:"deleted"`
			Revision uint64 `json:"revision"`
		}
		do(t, http.MethodPost, base+"/api/v1/kv/bulk/delete", `{"keys": ["bulk:1", "bulk:2", "bulk:none"]}`).ok(t, &bd)
		if bd.Deleted != 2 || bd.Revision == 0 {
			t.Errorf("bulk delete = %+v", bd)
		}
		do(t, http.MethodGet, base+"/api/v1/kv/bulk:2", "").fails(t, 404, "not_found", "")
		get(t, base, "bulk%2F3")
	})

	t.Run("bulk errors", func(t *testing.T) {
		items := make([]string, 501)
		keys := make([]string, 501)
		touches := make([]string, 501)
		for i := range items {
			items[i] = fmt.Sprintf(`{"key": "many:%d", "value": %d}`, i, i)
			keys[i] = fmt.Sprintf(`"many:%d"`, i)
			touches[i] = fmt.Sprintf(`{"key": "many:%d", "ttl": 1}`, i)
		}
		tests := []struct {
			name, path, body string
			status           int
			msg              string
		}{
			{"put 501 items", "/api/v1/kv/bulk", `{"items": [` + strings.Join(items, ",") + `]}`, 400, "items"},
			{"get 501 keys", "/api/v1/kv/bulk/get", `{"keys": [` + strings.Join(keys, ",") + `]}`, 400, "keys"},
			{"delete 501 keys", "/api/v1/kv/bulk/delete", `{"keys": [` + strings.Join(keys, ",") + `]}`, 400, "keys"},
			{"touch 501 items", "/api/v1/kv/bulk/touch", `{"items": [` + strings.Join(touches, ",") + `]}`, 400, "items"},
			{"put no items", "/api/v1/kv/bulk", `{"items": []}`, 400, "items"},
			{"put item without value", "/api/v1/kv/bulk", `{"items": [{"key": "x"}]}`, 400, `items[0]: field "value"`},
			{"put item with bad key", "/api/v1/kv/bulk", `{"items": [{"key": "ok", "value": 1}, {"key": "", "value": 1}]}`, 400, "key"},
			{"put unknown item field", "/api/v1/kv/bulk", `{"items": [{"key": "x", "value": 1, "tll": 5}]}`, 400, `"tll"`},
			{"touch item without ttl", "/api/v1/kv/bulk/touch", `{"items": [{"key": "x"}]}`, 400, `items[0]: field "ttl"`},
			{"get bad key", "/api/v1/kv/bulk/get", `{"keys": ["a\u0001"]}`, 400, "keys"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				do(t, http.MethodPost, base+tt.path, tt.body).fails(t, tt.status, "invalid_argument", tt.msg)
			})
		}
		// The rejected 501-item batch wrote nothing.
		do(t, http.MethodGet, base+"/api/v1/kv/many:0", "").fails(t, 404, "not_found", "")
	})

	t.Run("list with pagination", func(t *testing.T) {
		var want []string
		for i := range 7 {
			key := fmt.Sprintf("list/%02d", i)
			want = append(want, key)
			put(t, base, strings.ReplaceAll(key, "/", "%2F"), fmt.Sprintf(`{"value": %d}`, i))
		}
		var got []string
		cursor, pages := "", 0
		for {
			var page struct {
				Items      []getResult `json:"items"`
				NextCursor *string     `json:"next_cursor"`
			}
			do(t, http.MethodGet, base+"/api/v1/kv?prefix=list%2F&limit=3&cursor="+cursor, "").ok(t, &page)
			if page.NextCursor == nil {
				t.Fatal("no next_cursor field")
			}
			for _, it := range page.Items {
				got = append(got, it.Key)
				if want := strconv.Itoa(len(got) - 1); string(it.Value) != want {
					t.Errorf("list %s value %s, want %s", it.Key, it.Value, want)
				}
			}
			pages++
			if *page.NextCursor == "" || pages > 10 {
				break
			}
			cursor = *page.NextCursor
		}
		if fmt.Sprint(got) != fmt.Sprint(want) || pages != 3 {
			t.Errorf("listed %v in %d pages, want %v in 3", got, pages, want)
		}
		r := do(t, http.MethodGet, base+"/api/v1/kv?prefix=list/&keys_only=true&limit=2", "")
		var page struct {
			Items []map[string]any `json:"items"`
		}
		r.ok(t, &page)
		if len(page.Items) != 2 || page.Items[0]["key"] != "list/00" {
			t.Fatalf("keys_only page %s", r.body)
		}
		if _, ok := page.Items[0]["value"]; ok {
			t.Errorf("keys_only returned a value: %s", r.body)
		}
		var empty struct {
			Items      []getResult `json:"items"`
			NextCursor string      `json:"next_cursor"`
		}
		do(t, http.MethodGet, base+"/api/v1/kv?prefix=nothing-here", "").ok(t, &empty)
		if empty.Items == nil || len(empty.Items) != 0 || empty.NextCursor != "" {
			t.Errorf("empty list = %+v", empty)
		}
	})

	t.Run("status", func(t *testing.T) {
		var st struct {
			NodeID   string `json:"node_id"`
			State    string `json:"state"`
			LeaderID string `json:"leader_id"`
			Members  []struct {
				ID     string `json:"id"`
				Leader bool   `json:"leader"`
			} `json:"members"`
		}
		do(t, http.MethodGet, base+"/api/v1/status", "").ok(t, &st)
		leader := c.Node(c.Leader()).ID()
		if st.LeaderID != leader || st.NodeID == "" || st.State == "" || len(st.Members) != 3 {
			t.Errorf("status = %+v, want leader %s and 3 members", st, leader)
		}
	})

	t.Run("probes", func(t *testing.T) {
		for _, path := range []string{"/health", "/api/v1/health"} {
			r := do(t, http.MethodGet, base+path, "")
			r.ok(t, nil)
			if got := compact(t, string(r.body)); got != `{"status":"ok"}` {
				t.Errorf("%s = %s", path, got)
			}
		}
		var ready struct{ Status, Leader string }
		do(t, http.MethodGet, base+"/ready", "").ok(t, &ready)
		if ready.Status != "ready" || ready.Leader == "" {
			t.Errorf("/ready = %+v", ready)
		}
	})

	t.Run("raw bytes come back as base64", func(t *testing.T) {
		raw := []byte{0, 1, 2, 0xff, 'h', 'i'}
		if _, err := kv.Put(t.Context(), connect.NewRequest(&concordv1.PutRequest{Key: "raw:1", Value: raw, ContentType: "application/octet-stream"})); err != nil {
			t.Fatal(err)
		}
		g := get(t, base, "raw:1")
		if g.Encoding != "base64" || g.ContentType != "application/octet-stream" || string(g.Value) != `"`+base64.StdEncoding.EncodeToString(raw)+`"` {
			t.Errorf("GET raw = %+v", g)
		}
		if _, err := kv.Put(t.Context(), connect.NewRequest(&concordv1.PutRequest{Key: "raw:text", Value: []byte("plain"), ContentType: "text/plain"})); err != nil {
			t.Fatal(err)
		}
		if g := get(t, base, "raw:text"); g.Encoding != "base64" || g.ContentType != "text/plain" || string(g.Value) != `"cGxhaW4="` {
			t.Errorf("GET text = %+v", g)
		}
	})
}

// TestConnect calls the gateway's port with Connect and gRPC clients and
// checks that REST and Connect see the same data and the same validation.
func TestConnect(t *testing.T) {
	_, base := start(t)
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	h2c := &http.Client{Transport: &http.Transport{Protocols: &protocols}}
	t.Cleanup(h2c.CloseIdleConnections)

	clients := map[string]concordv1connect.KVServiceClient{
		"connect":      concordv1connect.NewKVServiceClient(http.DefaultClient, base),
		"connect-json": concordv1connect.NewKVServiceClient(http.DefaultClient, base, connect.WithProtoJSON()),
		"grpc":         concordv1connect.NewKVServiceClient(h2c, base, connect.WithGRPC()),
		"grpc-web":     concordv1connect.NewKVServiceClient(http.DefaultClient, base, connect.WithGRPCWeb()),
	}
	for name, kv := range clients {
		t.Run(name, func(t *testing.T) {
			key := "connect:" + name
			res, err := kv.Put(t.Context(), connect.NewRequest(&concordv1.PutRequest{Key: key, Value: []byte(`{"via":"connect"}`), ContentType: "application/json"}))
			if err != nil {
				t.Fatalf("Put: %v", err)
			}
			if res.Msg.GetHeader().GetRevision() == 0 || res.Msg.GetHeader().GetNodeId() == "" {
				t.Errorf("Put header %v", res.Msg.GetHeader())
			}
			g := get(t, base, key)
			if string(g.Value) != `{"via":"connect"}` || g.Revision != res.Msg.GetHeader().GetRevision() {
				t.Errorf("REST GET of a Connect put = %+v", g)
			}

			// The JSON is stored as sent, whitespace included.
			put(t, base, key+":rest", `{"value": {"via": "rest"}}`)
			got, err := kv.Get(t.Context(), connect.NewRequest(&concordv1.GetRequest{Key: key + ":rest", Consistency: concordv1.Consistency_CONSISTENCY_STRONG}))
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if v, ct := string(got.Msg.GetKv().GetValue()), got.Msg.GetKv().GetContentType(); v != `{"via": "rest"}` || ct != "application/json" {
				t.Errorf("Connect Get of a REST put = %s (%s)", v, ct)
			}

			_, err = kv.Get(t.Context(), connect.NewRequest(&concordv1.GetRequest{Key: "missing:" + name}))
			if connect.CodeOf(err) != connect.CodeNotFound {
				t.Errorf("Get missing: %v, want not_found", err)
			}
		})
	}

	t.Run("same validation error over REST and Connect", func(t *testing.T) {
		_, err := clients["connect"].Put(t.Context(), connect.NewRequest(&concordv1.PutRequest{Key: "bad\x01key", Value: []byte("1")}))
		if connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Fatalf("Connect Put bad key: %v, want invalid_argument", err)
		}
		var ce *connect.Error
		if !errors.As(err, &ce) {
			t.Fatalf("not a connect error: %v", err)
		}
		do(t, http.MethodPut, base+"/api/v1/kv/bad%01key", `{"value": 1}`).fails(t, 400, "invalid_argument", ce.Message())
		if len(ce.Details()) == 0 {
			t.Error("Connect validation error has no violation details")
		}
	})

	t.Run("cluster service", func(t *testing.T) {
		cl := concordv1connect.NewClusterServiceClient(http.DefaultClient, base)
		st, err := cl.Status(t.Context(), connect.NewRequest(&concordv1.StatusRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		if st.Msg.GetLeaderId() == "" || len(st.Msg.GetMembers()) != 3 {
			t.Errorf("Status = %v", st.Msg)
		}
		m, err := cl.Members(t.Context(), connect.NewRequest(&concordv1.MembersRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Msg.GetMembers()) != 3 {
			t.Errorf("Members = %v", m.Msg)
		}
	})
}

func TestCORS(t *testing.T) {
	c := replicatest.Start(t, 3)
	c.WaitLeader(leaderTimeout)
	anyOrigin := startGateway(t, gateway.Config{Replicas: c.Addrs(), CORSOrigins: []string{"*"}})
	one := startGateway(t, gateway.Config{Replicas: c.Addrs(), CORSOrigins: []string{"http://console.example"}})
	none := startGateway(t, gateway.Config{Replicas: c.Addrs()})

	pre := do(t, http.MethodOptions, anyOrigin+"/concord.v1.KVService/Get", "",
		"Origin", "http://elsewhere.example", "Access-Control-Request-Method", "POST",
		"Access-Control-Request-Headers", "content-type,connect-protocol-version")
	if pre.status != http.StatusNoContent || pre.header.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(pre.header.Get("Access-Control-Allow-Methods"), "POST") ||
		pre.header.Get("Access-Control-Allow-Headers") != "content-type,connect-protocol-version" {
		t.Errorf("preflight: %d %v", pre.status, pre.header)
	}
	r := do(t, http.MethodGet, anyOrigin+"/health", "", "Origin", "http://elsewhere.example")
	if r.header.Get("Access-Control-Allow-Origin") != "*" || !strings.Contains(r.header.Get("Access-Control-Expose-Headers"), "X-Concord-Revision") {
		t.Errorf("simple request: %v", r.header)
	}
	if got := do(t, http.MethodGet, one+"/health", "", "Origin", "http://console.example").header.Get("Access-Control-Allow-Origin"); got != "http://console.example" {
		t.Errorf("listed origin: Allow-Origin %q", got)
	}
	if got := do(t, http.MethodGet, one+"/health", "", "Origin", "http://evil.example").header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("unlisted origin: Allow-Origin %q", got)
	}
	if got := do(t, http.MethodGet, none+"/health", "", "Origin", "http://console.example").header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("CORS off: Allow-Origin %q", got)
	}
}

// TestFailover kills replicas behind the gateway: calls keep succeeding as
// long as a quorum is up, because dial errors and Unavailable answers are
// retried on the next replica.
func TestFailover(t *testing.T) {
	c, base := start(t)
	put(t, base, "fo:before", `{"value": 0}`)

	follower := (c.Leader() + 1) % 3
	c.Kill(follower)
	for i := range 6 { // more than one round over the replicas
		key := fmt.Sprintf("fo:follower-down:%d", i)
		put(t, base, key, fmt.Sprintf(`{"value": %d}`, i))
		get(t, base, key)
	}
	c.Restart(follower)
	c.WaitLeader(leaderTimeout)

	c.Kill(c.Leader())
	for i := range 6 {
		key := fmt.Sprintf("fo:leader-down:%d", i)
		put(t, base, key, fmt.Sprintf(`{"value": %d}`, i))
		if g := get(t, base, key+"?consistency=strong"); string(g.Value) != strconv.Itoa(i) {
			t.Errorf("GET %s = %s", key, g.Value)
		}
	}
	if g := get(t, base, "fo:before"); string(g.Value) != "0" {
		t.Errorf("GET fo:before = %s", g.Value)
	}
}

// TestNotReady: with no replica reachable, /ready answers 503 and /health 200.
func TestNotReady(t *testing.T) {
	base := startGateway(t, gateway.Config{Replicas: []string{"http://127.0.0.1:1"}, RequestTimeout: 300 * time.Millisecond})
	do(t, http.MethodGet, base+"/ready", "").fails(t, http.StatusServiceUnavailable, "no_leader", "not ready")
	do(t, http.MethodGet, base+"/health", "").ok(t, nil)
	r := do(t, http.MethodGet, base+"/api/v1/kv/x", "")
	if r.status != http.StatusServiceUnavailable && r.status != http.StatusGatewayTimeout {
		t.Errorf("GET with no replicas: %d %s, want 503 or 504", r.status, r.body)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  gateway.Config
		ok   bool
	}{
		{"ok", gateway.Config{Addr: ":0", Replicas: []string{"http://r"}}, true},
		{"no address", gateway.Config{Replicas: []string{"http://r"}}, false},
		{"no replicas", gateway.Config{Addr: ":0"}, false},
		{"replica without scheme", gateway.Config{Addr: ":0", Replicas: []string{"r:7001"}}, false},
		{"replica not http", gateway.Config{Addr: ":0", Replicas: []string{"ftp://r:7001"}}, false},
		{"bad consistency", gateway.Config{Addr: ":0", Replicas: []string{"http://r"}, DefaultConsistency: "sometimes"}, false},
		{"negative body limit", gateway.Config{Addr: ":0", Replicas: []string{"http://r"}, MaxBodyBytes: -1}, false},
		{"consul instead of replicas", gateway.Config{Addr: ":0", ConsulAddr: "127.0.0.1:8500"}, true},
		{"consul and replicas", gateway.Config{Addr: ":0", Replicas: []string{"http://r"}, ConsulAddr: "127.0.0.1:8500"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
