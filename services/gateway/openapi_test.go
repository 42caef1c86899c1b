package gateway_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	concordv1 "github.com/concord-kv/concord/proto/gen/go/concord/v1"
	"github.com/concord-kv/concord/proto/gen/go/concord/v1/concordv1connect"
	"github.com/concord-kv/concord/services/gateway"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// notExercised are the statuses the conformance test cannot provoke on
// demand: a replica's internal error and a deadline passing mid-call.
var notExercised = []string{"500", "504"}

// exchange is one request against the spec and the running gateway.
type exchange struct {
	name         string
	base         string // the gateway to call
	method, path string // path with its query
	body         string
	hdr          []string // alternating names and values
	status       int      // the status the gateway must answer
	// valid says whether the request conforms to the spec. Requests the
	// server refuses for a reason the spec can state must fail the spec's
	// validation too; the others (a missing key, a conflict, a body over
	// the size limit) must pass it.
	valid bool
}

// padded makes a JSON body larger than the gateway's body limit with
// trailing whitespace, so that it still conforms to the spec.
func padded(body string) string { return body + strings.Repeat(" ", gateway.DefaultMaxBodyBytes+1) }

// TestOpenAPI loads the generated OpenAPI document, validates it, and runs
// every operation in it against a gateway in front of a real cluster (and
// one with no replica, for 503), checking each request and each response
// against the document with kin-openapi's openapi3filter.
func TestOpenAPI(t *testing.T) {
	_, base := start(t)
	dead := startGateway(t, gateway.Config{Replicas: []string{deadReplica}, RequestTimeout: 200 * time.Millisecond})

	spec := do(t, http.MethodGet, base+"/api/v1/openapi.json", "")
	spec.ok(t, nil)
	doc, err := openapi3.NewLoader().LoadFromData(spec.body)
	if err != nil {
		t.Fatalf("load spec: %v", err)
	}
	if err := doc.Validate(t.Context()); err != nil {
		t.Fatalf("spec is invalid: %v", err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("documents the API", func(t *testing.T) {
		for _, want := range []string{
			"PUT /api/v1/kv/{key}", "GET /api/v1/kv/{key}", "DELETE /api/v1/kv/{key}",
			"POST /api/v1/kv/{key}/touch", "GET /api/v1/kv/{key}/ttl", "POST /api/v1/kv/bulk",
			"POST /api/v1/kv/bulk/get", "POST /api/v1/kv/bulk/delete", "POST /api/v1/kv/bulk/touch",
			"GET /api/v1/kv", "GET /api/v1/status", "GET /api/v1/health", "GET /health", "GET /ready",
			"GET /api/v1/openapi.json", "GET /api/v1/cluster/status", "GET /api/v1/cluster/members",
			"POST /api/v1/cluster/members", "DELETE /api/v1/cluster/members/{id}", "POST /api/v1/cluster/transfer-leadership",
		} {
			method, path, _ := strings.Cut(want, " ")
			if doc.Paths.Value(path) == nil || doc.Paths.Value(path).GetOperation(method) == nil {
				t.Errorf("spec lacks %s", want)
			}
		}
		if doc.Components.Schemas["Error"] == nil {
			t.Error("spec has no Error schema")
		}
		params := map[string]bool{}
		for _, item := range doc.Paths.Map() {
			for _, op := range item.Operations() {
				for _, p := range op.Parameters {
					params[p.Value.In+":"+p.Value.Name] = true
				}
			}
		}
		for _, want := range []string{
			"query:consistency", "query:with_ttl", "query:prefix", "query:limit", "query:cursor", "query:keys_only",
			"query:min_revision", "query:if_mod_revision", "header:X-Concord-Consistency", "path:key",
		} {
			if !params[want] {
				t.Errorf("spec lacks the parameter %s", want)
			}
		}
	})

	// Data for the exchanges.
	kv := concordv1connect.NewKVServiceClient(http.DefaultClient, base)
	if _, err := kv.Put(t.Context(), connect.NewRequest(&concordv1.PutRequest{Key: "oa:raw", Value: []byte{0, 1, 0xff}, ContentType: "application/octet-stream"})); err != nil {
		t.Fatal(err)
	}
	existing := put(t, base, "oa:exists", `{"value": {"n": 1}, "ttl": 600}`)
	put(t, base, "oa:plain", `{"value": null}`)
	for i := range 3 {
		put(t, base, fmt.Sprintf("oa:list:%d", i), fmt.Sprintf(`{"value": %d}`, i))
	}
	var page struct {
		NextCursor string `json:"next_cursor"`
	}
	do(t, http.MethodGet, base+"/api/v1/kv?prefix=oa:list:&limit=2", "").ok(t, &page)
	many := make([]string, 501)
	for i := range many {
		many[i] = fmt.Sprintf(`{"key": "oa:many:%d", "value": %d}`, i, i)
	}
	rev := strconv.FormatUint(existing.Revision, 10)
	jsonCT := []string{"Content-Type", "application/json"}

	exchanges := []exchange{
		// putKey
		{"put", base, "PUT", "/api/v1/kv/oa:new", `{"value": {"a": [1, "b"]}, "ttl": 60, "compress": false}`, jsonCT, 200, true},
		{"put an encoded key", base, "PUT", "/api/v1/kv/oa%2Fslash%3Aed", `{"value": "x", "if_absent": true}`, jsonCT, 200, true},
		{"put an unknown field", base, "PUT", "/api/v1/kv/oa:bad", `{"value": 1, "bogus": true}`, jsonCT, 400, false},
		{"put a bad key", base, "PUT", "/api/v1/kv/oa%01bad", `{"value": 1}`, jsonCT, 400, true},
		{"put if absent over a key", base, "PUT", "/api/v1/kv/oa:exists", `{"value": 2, "if_absent": true}`, jsonCT, 409, true},
		{"put a body over the limit", base, "PUT", "/api/v1/kv/oa:big", padded(`{"value": 1}`), jsonCT, 413, true},
		{"put text", base, "PUT", "/api/v1/kv/oa:text", `{"value": 1}`, []string{"Content-Type", "text/plain"}, 415, false},
		{"put without replicas", dead, "PUT", "/api/v1/kv/oa:x", `{"value": 1}`, jsonCT, 503, true},
		// getKey
		{"get", base, "GET", "/api/v1/kv/oa:exists?with_ttl=true&consistency=strong", "", nil, 200, true},
		{"get raw bytes", base, "GET", "/api/v1/kv/oa:raw", "", []string{"X-Concord-Consistency", "leader"}, 200, true},
		{"get null without expiry", base, "GET", "/api/v1/kv/oa:plain?with_ttl=true&min_revision=" + rev + "&consistency=eventual", "", nil, 200, true},
		{"get an encoded key", base, "GET", "/api/v1/kv/oa%2Fslash%3Aed", "", nil, 200, true},
		{"get with a bad consistency", base, "GET", "/api/v1/kv/oa:exists?consistency=sometimes", "", nil, 400, false},
		{"get a missing key", base, "GET", "/api/v1/kv/oa:missing", "", nil, 404, true},
		{"get without replicas", dead, "GET", "/api/v1/kv/oa:exists", "", nil, 503, true},
		// getKeyTTL
		{"ttl", base, "GET", "/api/v1/kv/oa:exists/ttl?consistency=strong", "", nil, 200, true},
		{"ttl without expiry", base, "GET", "/api/v1/kv/oa:plain/ttl", "", nil, 200, true},
		{"ttl with a bad consistency header", base, "GET", "/api/v1/kv/oa:exists/ttl", "", []string{"X-Concord-Consistency", "maybe"}, 400, false},
		{"ttl of a missing key", base, "GET", "/api/v1/kv/oa:missing/ttl", "", nil, 404, true},
		{"ttl without replicas", dead, "GET", "/api/v1/kv/oa:exists/ttl", "", nil, 503, true},
		// touchKey
		{"touch", base, "POST", "/api/v1/kv/oa:exists/touch", `{"ttl": 900}`, jsonCT, 200, true},
		{"touch without ttl", base, "POST", "/api/v1/kv/oa:exists/touch", `{}`, jsonCT, 400, false},
		{"touch a missing key", base, "POST", "/api/v1/kv/oa:missing/touch", `{"ttl": 5}`, jsonCT, 404, true},
		{"touch with a body over the limit", base, "POST", "/api/v1/kv/oa:exists/touch", padded(`{"ttl": 5}`), jsonCT, 413, true},
		{"touch with text", base, "POST", "/api/v1/kv/oa:exists/touch", `{"ttl": 5}`, []string{"Content-Type", "text/plain"}, 415, false},
		{"touch without replicas", dead, "POST", "/api/v1/kv/oa:exists/touch", `{"ttl": 5}`, jsonCT, 503, true},
		// deleteKey (after the reads of oa:exists above)
		{"delete", base, "DELETE", "/api/v1/kv/oa:new", "", nil, 200, true},
		{"delete with a bad revision", base, "DELETE", "/api/v1/kv/oa:exists?if_mod_revision=-1", "", nil, 400, false},
		{"delete at another revision", base, "DELETE", "/api/v1/kv/oa:exists?if_mod_revision=" + strconv.FormatUint(existing.Revision+1000, 10), "", nil, 409, true},
		{"delete at its revision", base, "DELETE", "/api/v1/kv/oa:exists?if_mod_revision=" + rev, "", nil, 200, true},
		{"delete without replicas", dead, "DELETE", "/api/v1/kv/oa:exists", "", nil, 503, true},
		// bulkPut
		{"bulk put", base, "POST", "/api/v1/kv/bulk", `{"items": [{"key": "oa:b1", "value": 1, "ttl": 60}, {"key": "oa:b2", "value": "two", "compress": true}]}`, jsonCT, 200, true},
		{"bulk put 501 items", base, "POST", "/api/v1/kv/bulk", `{"items": [` + strings.Join(many, ",") + `]}`, jsonCT, 400, false},
		{"bulk put over the limit", base, "POST", "/api/v1/kv/bulk", padded(`{"items": [{"key": "oa:b3", "value": 3}]}`), jsonCT, 413, true},
		{"bulk put text", base, "POST", "/api/v1/kv/bulk", `{"items": [{"key": "oa:b3", "value": 3}]}`, []string{"Content-Type", "text/plain"}, 415, false},
		{"bulk put without replicas", dead, "POST", "/api/v1/kv/bulk", `{"items": [{"key": "oa:b3", "value": 3}]}`, jsonCT, 503, true},
		// bulkGet
		{"bulk get", base, "POST", "/api/v1/kv/bulk/get?with_ttl=true&consistency=strong", `{"keys": ["oa:b1", "oa:b2", "oa:raw", "oa:none"]}`, jsonCT, 200, true},
		{"bulk get no keys", base, "POST", "/api/v1/kv/bulk/get", `{"keys": []}`, jsonCT, 400, false},
		{"bulk get over the limit", base, "POST", "/api/v1/kv/bulk/get", padded(`{"keys": ["oa:b1"]}`), jsonCT, 413, true},
		{"bulk get text", base, "POST", "/api/v1/kv/bulk/get", `{"keys": ["oa:b1"]}`, []string{"Content-Type", "text/plain"}, 415, false},
		{"bulk get without replicas", dead, "POST", "/api/v1/kv/bulk/get", `{"keys": ["oa:b1"]}`, jsonCT, 503, true},
		// bulkTouch
		{"bulk touch", base, "POST", "/api/v1/kv/bulk/touch", `{"items": [{"key": "oa:b1", "ttl": 120}, {"key": "oa:none", "ttl": 1}]}`, jsonCT, 200, true},
		{"bulk touch without ttl", base, "POST", "/api/v1/kv/bulk/touch", `{"items": [{"key": "oa:b1"}]}`, jsonCT, 400, false},
		{"bulk touch over the limit", base, "POST", "/api/v1/kv/bulk/touch", padded(`{"items": [{"key": "oa:b1", "ttl": 1}]}`), jsonCT, 413, true},
		{"bulk touch text", base, "POST", "/api/v1/kv/bulk/touch", `{"items": [{"key": "oa:b1", "ttl": 1}]}`, []string{"Content-Type", "text/plain"}, 415, false},
		{"bulk touch without replicas", dead, "POST", "/api/v1/kv/bulk/touch", `{"items": [{"key": "oa:b1", "ttl": 1}]}`, jsonCT, 503, true},
		// bulkDelete
		{"bulk delete", base, "POST", "/api/v1/kv/bulk/delete", `{"keys": ["oa:b1", "oa:b2", "oa:none"]}`, jsonCT, 200, true},
		{"bulk delete a bad key", base, "POST", "/api/v1/kv/bulk/delete", `{"keys": ["oa\u0001"]}`, jsonCT, 400, true},
		{"bulk delete over the limit", base, "POST", "/api/v1/kv/bulk/delete", padded(`{"keys": ["oa:b1"]}`), jsonCT, 413, true},
		{"bulk delete text", base, "POST", "/api/v1/kv/bulk/delete", `{"keys": ["oa:b1"]}`, []string{"Content-Type", "text/plain"}, 415, false},
		{"bulk delete without replicas", dead, "POST", "/api/v1/kv/bulk/delete", `{"keys": ["oa:b1"]}`, jsonCT, 503, true},
		// listKeys
		{"list", base, "GET", "/api/v1/kv?prefix=oa:list:&limit=2&with_ttl=true&consistency=strong", "", nil, 200, true},
		{"list the next page", base, "GET", "/api/v1/kv?prefix=oa:list:&limit=2&cursor=" + page.NextCursor, "", nil, 200, true},
		{"list keys only", base, "GET", "/api/v1/kv?prefix=oa:&keys_only=true", "", []string{"X-Concord-Consistency", "eventual"}, 200, true},
		{"list too many", base, "GET", "/api/v1/kv?limit=5000", "", nil, 400, false},
		{"list without replicas", dead, "GET", "/api/v1/kv", "", nil, 503, true},
		// clusterStatus
		{"status", base, "GET", "/api/v1/status", "", nil, 200, true},
		{"status with an unknown parameter", base, "GET", "/api/v1/status?verbose=true", "", nil, 400, true},
		{"status without replicas", dead, "GET", "/api/v1/status", "", nil, 503, true},
		// clusterStatusAlias, clusterMembers
		{"cluster status", base, "GET", "/api/v1/cluster/status", "", nil, 200, true},
		{"cluster status with a parameter", base, "GET", "/api/v1/cluster/status?x=1", "", nil, 400, true},
		{"cluster status without replicas", dead, "GET", "/api/v1/cluster/status", "", nil, 503, true},
		{"members", base, "GET", "/api/v1/cluster/members", "", nil, 200, true},
		{"members with a parameter", base, "GET", "/api/v1/cluster/members?x=1", "", nil, 400, true},
		{"members without replicas", dead, "GET", "/api/v1/cluster/members", "", nil, 503, true},
		// addMember: a non-voter nobody runs (it does not count for quorum)
		{"add a non-voter", base, "POST", "/api/v1/cluster/members", `{"id": "oa-nv", "raft_address": "127.0.0.1:1", "nonvoter": true}`, jsonCT, 200, true},
		{"add it again elsewhere", base, "POST", "/api/v1/cluster/members", `{"id": "oa-nv", "raft_address": "127.0.0.1:2", "nonvoter": true}`, jsonCT, 409, true},
		{"add with a bad address", base, "POST", "/api/v1/cluster/members", `{"id": "oa-x", "raft_address": "nowhere"}`, jsonCT, 400, true},
		{"add with an unknown field", base, "POST", "/api/v1/cluster/members", `{"id": "oa-x", "raft_address": "127.0.0.1:3", "voter": true}`, jsonCT, 400, false},
		{"add over the limit", base, "POST", "/api/v1/cluster/members", padded(`{"id": "oa-x", "raft_address": "127.0.0.1:3"}`), jsonCT, 413, true},
		{"add text", base, "POST", "/api/v1/cluster/members", `{"id": "oa-x", "raft_address": "127.0.0.1:3"}`, []string{"Content-Type", "text/plain"}, 415, false},
		{"add without replicas", dead, "POST", "/api/v1/cluster/members", `{"id": "oa-x", "raft_address": "127.0.0.1:3"}`, jsonCT, 503, true},
		// transferLeadership (failures), removeMember
		{"transfer to a non-voter", base, "POST", "/api/v1/cluster/transfer-leadership", `{"id": "oa-nv"}`, jsonCT, 409, true},
		{"transfer to a stranger", base, "POST", "/api/v1/cluster/transfer-leadership", `{"id": "oa-none"}`, jsonCT, 404, true},
		{"transfer with a bad body", base, "POST", "/api/v1/cluster/transfer-leadership", `{"to": "x"}`, jsonCT, 400, false},
		{"transfer over the limit", base, "POST", "/api/v1/cluster/transfer-leadership", padded(`{}`), jsonCT, 413, true},
		{"transfer text", base, "POST", "/api/v1/cluster/transfer-leadership", `{}`, []string{"Content-Type", "text/plain"}, 415, false},
		{"transfer without replicas", dead, "POST", "/api/v1/cluster/transfer-leadership", "", nil, 503, true},
		{"remove a member not unreachable long", base, "DELETE", "/api/v1/cluster/members/oa-nv?if_unreachable_for=86400", "", nil, 409, true},
		{"remove with a bad duration", base, "DELETE", "/api/v1/cluster/members/oa-nv?if_unreachable_for=-1", "", nil, 400, false},
		{"remove a stranger", base, "DELETE", "/api/v1/cluster/members/oa-none", "", nil, 404, true},
		{"remove", base, "DELETE", "/api/v1/cluster/members/oa-nv", "", nil, 200, true},
		{"remove without replicas", dead, "DELETE", "/api/v1/cluster/members/oa-nv", "", nil, 503, true},
		{"transfer", base, "POST", "/api/v1/cluster/transfer-leadership", "", nil, 200, true},
		// probes and the document itself
		{"api health", base, "GET", "/api/v1/health", "", nil, 200, true},
		{"api health with a parameter", base, "GET", "/api/v1/health?x=1", "", nil, 400, true},
		{"health", dead, "GET", "/health", "", nil, 200, true},
		{"health with a parameter", base, "GET", "/health?x=1", "", nil, 400, true},
		{"ready", base, "GET", "/ready", "", nil, 200, true},
		{"ready with a parameter", base, "GET", "/ready?x=1", "", nil, 400, true},
		{"not ready", dead, "GET", "/ready", "", nil, 503, true},
		{"openapi", base, "GET", "/api/v1/openapi.json", "", nil, 200, true},
		{"openapi with a parameter", base, "GET", "/api/v1/openapi.json?format=yaml", "", nil, 400, true},
	}

	exercised := map[string][]string{} // operationId → statuses
	for _, ex := range exchanges {
		t.Run(ex.name, func(t *testing.T) {
			op := checkExchange(t, router, ex)
			exercised[op] = append(exercised[op], strconv.Itoa(ex.status))
		})
	}

	t.Run("every operation and status exercised", func(t *testing.T) {
		for path, item := range doc.Paths.Map() {
			for method, op := range item.Operations() {
				for status := range op.Responses.Map() {
					if !slices.Contains(notExercised, status) && !slices.Contains(exercised[op.OperationID], status) {
						t.Errorf("%s %s (%s): status %s is never exercised", method, path, op.OperationID, status)
					}
				}
			}
		}
	})
}

// checkExchange validates ex's request against the spec, sends it, checks
// the status and validates the response. It returns the operation's id.
func checkExchange(t *testing.T, router routers.Router, ex exchange) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	newRequest := func() *http.Request {
		var body io.Reader
		if ex.body != "" {
			body = strings.NewReader(ex.body)
		}
		req, err := http.NewRequestWithContext(ctx, ex.method, ex.base+ex.path, body)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(ex.hdr); i += 2 {
			req.Header.Set(ex.hdr[i], ex.hdr[i+1])
		}
		return req
	}
	req := newRequest()
	route, params, err := router.FindRoute(req)
	if err != nil {
		t.Fatalf("%s %s is not in the spec: %v", ex.method, ex.path, err)
	}
	input := &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	verr := openapi3filter.ValidateRequest(ctx, input)
	switch {
	case ex.valid && verr != nil:
		t.Errorf("the spec rejects a request the gateway must take: %v", verr)
	case !ex.valid && verr == nil:
		t.Errorf("the spec accepts a request the gateway rejects (%d)", ex.status)
	}

	res, err := http.DefaultClient.Do(newRequest())
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != ex.status {
		t.Errorf("status %d, want %d; body %s", res.StatusCode, ex.status, body)
	}
	if err := openapi3filter.ValidateResponse(ctx, &openapi3filter.ResponseValidationInput{
		RequestValidationInput: input, Status: res.StatusCode, Header: res.Header,
		Body: io.NopCloser(bytes.NewReader(body)), Options: input.Options,
	}); err != nil {
		t.Errorf("response does not match the spec: %v\nbody: %.500s", err, body)
	}
	return route.Operation.OperationID
}
