// Package server is the gateway's HTTP front door: Connect, gRPC and gRPC-web
// for concord.v1 KVService and ClusterService, the REST API under /api/v1,
// and the /health and /ready probes, all on one http.Handler.
//
// REST handlers call the same KVServiceHandler and ClusterServiceHandler as
// the Connect handlers, through the same interceptors (so a REST request is
// validated exactly as the equivalent Connect request), and report failures
// through httperror, the one error-to-status mapping.
package server

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"connectrpc.com/connect"
	concordv1 "github.com/concord-kv/concord/proto/gen/go/concord/v1"
	"github.com/concord-kv/concord/proto/gen/go/concord/v1/concordv1connect"
	"github.com/concord-kv/concord/services/gateway/internal/httperror"
)

// Headers set on every REST response that carries a concord.v1 ResponseHeader.
const (
	HeaderRevision    = "X-Concord-Revision"
	HeaderNode        = "X-Concord-Node"
	HeaderConsistency = "X-Concord-Consistency"
)

// Options configure New.
type Options struct {
	// KV and Cluster serve both the Connect services and the REST routes.
	KV      concordv1connect.KVServiceHandler
	Cluster concordv1connect.ClusterServiceHandler
	// Interceptors run, first outermost, around every call, Connect or REST.
	Interceptors []connect.Interceptor
	// MaxBodyBytes limits request bodies (REST: 413; Connect: resource_exhausted).
	MaxBodyBytes int64
	// CORSOrigins lists the origins browsers may call from ("*" for any);
	// empty disables CORS.
	CORSOrigins []string
	// Logger receives failed requests with a 5xx status.
	Logger *slog.Logger
}

// Server routes requests to the KV and cluster handlers. It is safe for
// concurrent use.
type Server struct {
	kv           concordv1connect.KVServiceHandler
	cluster      concordv1connect.ClusterServiceHandler
	interceptors []connect.Interceptor
	maxBody      int64
	logger       *slog.Logger
	handler      http.Handler
}

// New returns the gateway's handler.
func New(o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	s := &Server{
		kv: o.KV, cluster: o.Cluster, interceptors: o.Interceptors,
		maxBody: o.MaxBodyBytes, logger: o.Logger,
	}
	mux := http.NewServeMux()
	s.routes(mux)
	s.handler = cors(o.CORSOrigins, mux)
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// reply is what a REST handler produces on success: always 200 with body as
// JSON; header, when set, fills X-Concord-Revision and X-Concord-Node.
type reply struct {
	header *concordv1.ResponseHeader
	body   any
}

// restFunc is a REST handler. It returns an error instead of writing one, so
// the status always comes from httperror.
type restFunc func(r *http.Request) (reply, error)

func (s *Server) rest(h restFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, s.maxBody)
		out, err := h(r)
		if err != nil {
			if status := httperror.Write(w, err); status >= http.StatusInternalServerError {
				s.logger.LogAttrs(r.Context(), slog.LevelError, "request failed",
					slog.String("method", r.Method), slog.String("path", r.URL.Path),
					slog.Int("status", status), slog.String("error", err.Error()))
			}
			return
		}
		if hdr := out.header; hdr != nil {
			w.Header().Set(HeaderRevision, strconv.FormatUint(hdr.GetRevision(), 10))
			w.Header().Set(HeaderNode, hdr.GetNodeId())
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if err := json.NewEncoder(w).Encode(out.body); err != nil {
			s.logger.LogAttrs(r.Context(), slog.LevelWarn, "write response",
				slog.String("path", r.URL.Path), slog.String("error", err.Error()))
		}
	})
}

// invoke calls method as the Connect handler would: through the interceptor
// chain (validation included), with a fresh request around msg.
func invoke[Req, Res any](ctx context.Context, s *Server,
	method func(context.Context, *connect.Request[Req]) (*connect.Response[Res], error), msg *Req,
) (*Res, error) {
	next := connect.UnaryFunc(func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		typed, ok := req.(*connect.Request[Req])
		if !ok {
			return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("interceptor replaced %T", msg))
		}
		return method(ctx, typed)
	})
	for i := len(s.interceptors) - 1; i >= 0; i-- {
		next = s.interceptors[i].WrapUnary(next)
	}
	res, err := next(ctx, connect.NewRequest(msg))
	if err != nil {
		return nil, err
	}
	typed, ok := res.Any().(*Res)
	if !ok {
		return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("unexpected response %T", res.Any()))
	}
	return typed, nil
}

// corsExposed lists the response headers browsers may read: gRPC-web status
// trailers-in-headers and the revision headers.
var corsExposed = strings.Join([]string{
	"Grpc-Status", "Grpc-Message", "Grpc-Status-Details-Bin", HeaderRevision, HeaderNode,
}, ", ")

// cors lets browsers on the listed origins call Connect and REST. Preflight
// requests are answered here with the request's own method and headers.
func cors(origins []string, next http.Handler) http.Handler {
	if len(origins) == 0 {
		return next
	}
	anyOrigin := slices.Contains(origins, "*")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" || !anyOrigin && !slices.Contains(origins, origin) {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		if anyOrigin {
			h.Set("Access-Control-Allow-Origin", "*")
		} else {
			h.Set("Access-Control-Allow-Origin", origin)
			h.Add("Vary", "Origin")
		}
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE")
			if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
				h.Set("Access-Control-Allow-Headers", req)
				h.Add("Vary", "Access-Control-Request-Headers")
			}
			h.Set("Access-Control-Max-Age", "7200")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h.Set("Access-Control-Expose-Headers", corsExposed)
		next.ServeHTTP(w, r)
	})
}
