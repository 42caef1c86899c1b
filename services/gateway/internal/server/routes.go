package server

import (
	"net/http"

	"connectrpc.com/connect"
	"github.com/concord-kv/concord/proto/gen/go/concord/v1/concordv1connect"
	"github.com/concord-kv/concord/services/gateway/internal/console"
	"github.com/swaggest/swgui/v5emb"
)

// Paths of the documentation and the console.
const (
	OpenAPIPath = "/api/v1/openapi.json"
	DocsPath    = "/api/docs"
	ConsolePath = "/ui/"
	MetricsPath = "/metrics"
)

// compressMinBytes is the smallest Connect response the gateway compresses
// (when the client accepts it).
const compressMinBytes = 64 << 10

// route is one REST operation. Its request and response are Go types (zero
// values here) from which the OpenAPI document is generated, with the query
// and header parameters it reads and the error statuses it answers with
// (besides 400 and 500, which every route may answer). A query parameter a
// route does not declare is rejected (400), so the table, the document and
// the handlers cannot drift apart silently.
type route struct {
	method, path string // path in ServeMux syntax, e.g. /api/v1/kv/{key}
	id           string // OpenAPI operationId
	tag          string
	summary      string
	params       []param
	request      any   // the JSON body, nil for none
	optionalBody bool  // the body may be left out
	response     any   // the JSON answer (200)
	errors       []int // error statuses besides 400 and 500
	handle       restFunc
}

// Error statuses shared by groups of routes.
var (
	kvErrors   = []int{http.StatusServiceUnavailable, http.StatusGatewayTimeout}
	bodyErrors = []int{http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType}
)

func errs(groups ...[]int) []int {
	var out []int
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

// restRoutes is the REST API, in the order the OpenAPI document lists it.
func (s *Server) restRoutes() []route {
	const kv, cluster, probes = "kv", "cluster", "probes"
	read := []param{paramConsistency, headerConsistency}
	return []route{
		{
			method: "PUT", path: "/api/v1/kv/{key}", id: "putKey", tag: kv,
			summary:  "Write a key",
			params:   []param{paramKey},
			request:  PutRequest{},
			response: WriteResult{},
			errors:   errs(kvErrors, bodyErrors, []int{http.StatusConflict}),
			handle:   s.putKey,
		},
		{
			method: "GET", path: "/api/v1/kv/{key}", id: "getKey", tag: kv,
			summary:  "Read a key",
			params:   append([]param{paramKey, paramWithTTL, paramMinRevision}, read...),
			response: Entry{},
			errors:   errs(kvErrors, []int{http.StatusNotFound}),
			handle:   s.getKey,
		},
		{
			method: "DELETE", path: "/api/v1/kv/{key}", id: "deleteKey", tag: kv,
			summary:  "Delete a key (a missing key is not an error)",
			params:   []param{paramKey, paramIfModRevision},
			response: DeleteResult{},
			errors:   errs(kvErrors, []int{http.StatusConflict}),
			handle:   s.deleteKey,
		},
		{
			method: "POST", path: "/api/v1/kv/{key}/touch", id: "touchKey", tag: kv,
			summary:  "Set a key's TTL from now",
			params:   []param{paramKey},
			request:  TouchRequest{},
			response: TouchResult{},
			errors:   errs(kvErrors, bodyErrors, []int{http.StatusNotFound}),
			handle:   s.touchKey,
		},
		{
			method: "GET", path: "/api/v1/kv/{key}/ttl", id: "getKeyTTL", tag: kv,
			summary:  "Read a key's remaining TTL",
			params:   append([]param{paramKey}, read...),
			response: TTLResult{},
			errors:   errs(kvErrors, []int{http.StatusNotFound}),
			handle:   s.getTTL,
		},
		{
			method: "POST", path: "/api/v1/kv/bulk", id: "bulkPut", tag: kv,
			summary:  "Write up to 500 keys atomically",
			request:  BulkPutRequest{},
			response: BulkPutResult{},
			errors:   errs(kvErrors, bodyErrors),
			handle:   s.bulkPut,
		},
		{
			method: "POST", path: "/api/v1/kv/bulk/get", id: "bulkGet", tag: kv,
			summary:  "Read up to 500 keys at one revision",
			params:   append([]param{paramWithTTL, paramMinRevision}, read...),
			request:  KeysRequest{},
			response: BulkGetResult{},
			errors:   errs(kvErrors, bodyErrors),
			handle:   s.bulkGet,
		},
		{
			method: "POST", path: "/api/v1/kv/bulk/delete", id: "bulkDelete", tag: kv,
			summary:  "Delete up to 500 keys atomically",
			request:  KeysRequest{},
			response: BulkDeleteResult{},
			errors:   errs(kvErrors, bodyErrors),
			handle:   s.bulkDelete,
		},
		{
			method: "POST", path: "/api/v1/kv/bulk/touch", id: "bulkTouch", tag: kv,
			summary:  "Set the TTL of up to 500 keys atomically",
			request:  BulkTouchRequest{},
			response: BulkTouchResult{},
			errors:   errs(kvErrors, bodyErrors),
			handle:   s.bulkTouch,
		},
		{
			method: "GET", path: "/api/v1/kv", id: "listKeys", tag: kv,
			summary:  "List keys by prefix, a page at a time, in key order",
			params:   append([]param{paramPrefix, paramLimit, paramCursor, paramKeysOnly, paramWithTTL}, read...),
			response: ListResult{},
			errors:   kvErrors,
			handle:   s.list,
		},
		{
			method: "GET", path: "/api/v1/status", id: "clusterStatus", tag: cluster,
			summary:  "The cluster's leader, members and revision",
			response: Status{},
			errors:   []int{http.StatusServiceUnavailable, http.StatusGatewayTimeout},
			handle:   s.status,
		},
		{
			method: "GET", path: "/api/v1/cluster/status", id: "clusterStatusAlias", tag: cluster,
			summary:  "The same as /api/v1/status",
			response: Status{},
			errors:   []int{http.StatusServiceUnavailable, http.StatusGatewayTimeout},
			handle:   s.status,
		},
		{
			method: "GET", path: "/api/v1/cluster/members", id: "clusterMembers", tag: cluster,
			summary:  "The members with their suffrage, state and last contact, as the leader sees them",
			response: MembersResult{},
			errors:   []int{http.StatusServiceUnavailable, http.StatusGatewayTimeout},
			handle:   s.members,
		},
		{
			method: "POST", path: "/api/v1/cluster/members", id: "addMember", tag: cluster,
			summary:  "Add a replica as a voter or non-voter, or change a member's suffrage or address (admin)",
			request:  AddMemberRequest{},
			response: Member{},
			errors:   errs(kvErrors, bodyErrors, []int{http.StatusConflict}),
			handle:   s.addMember,
		},
		{
			method: "DELETE", path: "/api/v1/cluster/members/{id}", id: "removeMember", tag: cluster,
			summary:  "Remove a member, optionally only if it has been unreachable for a while (admin)",
			params:   []param{paramMemberID, paramIfUnreachableFor},
			response: RemoveMemberResult{},
			errors:   errs(kvErrors, []int{http.StatusNotFound, http.StatusConflict}),
			handle:   s.removeMember,
		},
		{
			method: "POST", path: "/api/v1/cluster/transfer-leadership", id: "transferLeadership", tag: cluster,
			summary:      "Hand leadership to another voter (admin)",
			request:      TransferLeadershipRequest{},
			optionalBody: true,
			response:     TransferLeadershipResult{},
			errors:       errs(kvErrors, bodyErrors, []int{http.StatusNotFound, http.StatusConflict}),
			handle:       s.transferLeadership,
		},
		{
			method: "GET", path: "/api/v1/health", id: "apiHealth", tag: probes,
			summary: "The gateway is up", response: Health{}, handle: s.health,
		},
		{
			method: "GET", path: "/health", id: "health", tag: probes,
			summary: "Liveness probe: the gateway is up", response: Health{}, handle: s.health,
		},
		{
			method: "GET", path: "/ready", id: "ready", tag: probes,
			summary:  "Readiness probe: a leader is known",
			response: Ready{},
			errors:   []int{http.StatusServiceUnavailable},
			handle:   s.ready,
		},
		{
			method: "GET", path: OpenAPIPath, id: "openapi", tag: "docs",
			summary:  "This OpenAPI 3 document",
			response: map[string]any{},
			handle:   s.openAPI,
		},
	}
}

// routes registers everything the gateway serves on its port: the one list.
//
// Key routes rely on net/http's ServeMux patterns: {key} matches one path
// segment, decoded (user%3A1001 → "user:1001", a%2Fb → "a/b"), and the
// literal bulk routes win over {key}/touch.
func (s *Server) routes(mux *http.ServeMux) {
	// Connect, gRPC and gRPC-web: /concord.v1.KVService/*, /concord.v1.ClusterService/*.
	// Responses are compressed only when large: gzip of small messages costs
	// CPU on every call and saves nothing on a LAN.
	opts := []connect.HandlerOption{
		connect.WithInterceptors(s.interceptors...),
		connect.WithReadMaxBytes(int(s.maxBody)),
		connect.WithCompressMinBytes(compressMinBytes),
	}
	mux.Handle(concordv1connect.NewKVServiceHandler(s.kv, opts...))
	mux.Handle(concordv1connect.NewClusterServiceHandler(s.cluster, opts...))

	// REST, through the same handlers and interceptors.
	for _, rt := range s.rest {
		mux.Handle(rt.method+" "+rt.path, s.restHandler(rt))
	}

	// Swagger UI (offline: its assets are embedded) and the web console.
	docs := v5emb.New("Concord API", OpenAPIPath, DocsPath+"/")
	mux.Handle("GET "+DocsPath, docs)
	mux.Handle("GET "+DocsPath+"/", docs)
	mux.Handle("GET "+ConsolePath, http.StripPrefix(ConsolePath[:len(ConsolePath)-1], console.Handler()))
	mux.Handle("GET /{$}", http.RedirectHandler(ConsolePath, http.StatusFound))

	mux.Handle("GET "+MetricsPath, s.metrics.handler())
}
