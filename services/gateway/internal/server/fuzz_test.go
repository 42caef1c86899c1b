package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/concord-kv/concord/services/gateway/internal/httperror"
)

// fuzzMaxBody is the body limit of the fuzzed requests (the server's own
// limit is larger; a small one lets the fuzzer reach the too-large path).
const fuzzMaxBody = 4096

// fuzzBodies are the request bodies decodeBody reads, by route: the fuzzer
// picks one with its first input.
var fuzzBodies = []struct {
	route string
	new   func() any
}{
	{"PUT /api/v1/kv/{key}", func() any { return new(PutRequest) }},
	{"POST /api/v1/kv/bulk", func() any { return new(BulkPutRequest) }},
	{"POST /api/v1/kv/bulk/get", func() any { return new(KeysRequest) }},
	{"POST /api/v1/kv/bulk/touch", func() any { return new(BulkTouchRequest) }},
	{"POST /api/v1/kv/{key}/touch", func() any { return new(TouchRequest) }},
}

// fuzzDecode decodes body as the JSON body of a request with content type
// ct into a fresh value of fuzzBodies[route], through the same
// http.MaxBytesReader the server wraps bodies in.
func fuzzDecode(route int, ct string, body []byte, limit int64) (any, error) {
	r := httptest.NewRequest(http.MethodPost, "/api/v1/kv/bulk", bytes.NewReader(body))
	if ct != "" {
		r.Header.Set("Content-Type", ct)
	}
	r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, limit)
	dst := fuzzBodies[route].new()
	return dst, decodeBody(r, dst)
}

// FuzzDecodeBody feeds arbitrary bodies and content types to the REST
// request decoding of PUT and the bulk routes. It must never panic; a body
// it rejects gets a 4xx status with a message; a body it accepts is valid
// JSON, and re-encoding the decoded request and decoding that again gives
// the same request (the encoding is a fixed point).
func FuzzDecodeBody(f *testing.F) {
	seeds := []struct {
		route int
		ct    string
		body  string
	}{
		{0, "application/json", `{"value": {"name": "Alice", "role": "admin"}}`},
		{0, "", `{"value": "enabled", "ttl": 3600}`},
		{0, "application/x-www-form-urlencoded", `{"value": "worker-1", "ttl": 30, "if_absent": true}`},
		{0, "application/json; charset=utf-8", `{"value": null, "compress": false, "if_mod_revision": 42}`},
		{0, "text/plain", `{"value": 1}`},
		{0, "application/json", `{"value": 1, "ttl": -1}`},
		{0, "application/json", `{"value": 1, "unknown": 2}`},
		{0, "application/json", `{"value": 1} {"value": 2}`},
		{0, "application/json", `[1, 2]`},
		{0, "application/json", `{"value": "\u00e9<&>"`},
		{0, "application/json", ``},
		{1, "application/json", `{"items": [{"key": "a", "value": 1}, {"key": "b", "value": 2, "ttl": 60}]}`},
		{1, "application/json", `{"items": [{"key": "a", "value": {"x": [1, 2.5e3, true]}, "compress": true}]}`},
		{1, "application/json", `{"items": {"key": "a"}}`},
		{1, "application/json", `{"items": [{"key": 7, "value": 1}]}`},
		{2, "application/json", `{"keys": ["a", "b"]}`},
		{2, "application/json", `{"keys": ["a", "\ud800"]}`},
		{3, "application/json", `{"items": [{"key": "a", "ttl": 1800}]}`},
		{4, "application/json", `{"ttl": 1800}`},
		{4, "application/json", `{"ttl": 1e400}`},
	}
	for _, s := range seeds {
		f.Add(uint8(s.route), s.ct, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, route uint8, ct string, body []byte) {
		r := int(route) % len(fuzzBodies)
		dst, err := fuzzDecode(r, ct, body, fuzzMaxBody)
		if err != nil {
			m := httperror.Map(err)
			if m.Status < 400 || m.Status >= 500 {
				t.Fatalf("%s: %q rejected with status %d, want 4xx: %v", fuzzBodies[r].route, body, m.Status, err)
			}
			if httperror.Message(err) == "" {
				t.Fatalf("%s: %q rejected without a message", fuzzBodies[r].route, body)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("%s: accepted a body that is not valid JSON: %q", fuzzBodies[r].route, body)
		}
		enc, err := json.Marshal(dst)
		if err != nil {
			t.Fatalf("%s: re-encode %+v (from %q): %v", fuzzBodies[r].route, dst, body, err)
		}
		again, err := fuzzDecode(r, "application/json", enc, int64(len(enc))+1)
		if err != nil {
			t.Fatalf("%s: the re-encoded %q (from %q) is rejected: %v", fuzzBodies[r].route, enc, body, err)
		}
		enc2, err := json.Marshal(again)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("%s: %q decodes, re-encodes to %q, which re-encodes to %q", fuzzBodies[r].route, body, enc, enc2)
		}
	})
}
