package server

import (
	"net/http"

	"connectrpc.com/connect"
	"github.com/concord-kv/concord/proto/gen/go/concord/v1/concordv1connect"
)

// routes is the one list of everything the gateway serves on its port.
//
// Key routes rely on net/http's ServeMux patterns: {key} matches one path
// segment, decoded (user%3A1001 → "user:1001", a%2Fb → "a/b"), and the
// literal bulk routes win over {key}/touch.
func (s *Server) routes(mux *http.ServeMux) {
	// Connect, gRPC and gRPC-web: /concord.v1.KVService/*, /concord.v1.ClusterService/*.
	opts := []connect.HandlerOption{
		connect.WithInterceptors(s.interceptors...),
		connect.WithReadMaxBytes(int(s.maxBody)),
	}
	mux.Handle(concordv1connect.NewKVServiceHandler(s.kv, opts...))
	mux.Handle(concordv1connect.NewClusterServiceHandler(s.cluster, opts...))

	// REST: the same handlers behind the same interceptors.
	mux.Handle("PUT /api/v1/kv/{key}", s.rest(s.putKey))
	mux.Handle("GET /api/v1/kv/{key}", s.rest(s.getKey))
	mux.Handle("DELETE /api/v1/kv/{key}", s.rest(s.deleteKey))
	mux.Handle("POST /api/v1/kv/{key}/touch", s.rest(s.touchKey))
	mux.Handle("GET /api/v1/kv/{key}/ttl", s.rest(s.getTTL))
	mux.Handle("POST /api/v1/kv/bulk", s.rest(s.bulkPut))
	mux.Handle("POST /api/v1/kv/bulk/get", s.rest(s.bulkGet))
	mux.Handle("POST /api/v1/kv/bulk/delete", s.rest(s.bulkDelete))
	mux.Handle("POST /api/v1/kv/bulk/touch", s.rest(s.bulkTouch))
	mux.Handle("GET /api/v1/kv", s.rest(s.list))
	mux.Handle("GET /api/v1/status", s.rest(s.status))

	// Probes.
	mux.Handle("GET /api/v1/health", s.rest(s.health))
	mux.Handle("GET /health", s.rest(s.health))
	mux.Handle("GET /ready", s.rest(s.ready))
}
