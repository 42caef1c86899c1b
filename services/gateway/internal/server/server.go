// Package server is the gateway's HTTP front door: Connect, gRPC and gRPC-web
// for concord.v1 KVService and ClusterService, the REST API under /api/v1
// with its OpenAPI document and Swagger UI, the web console, /metrics and
// the /health and /ready probes, all on one http.Handler.
//
// REST handlers call the same KVServiceHandler and ClusterServiceHandler as
// the Connect handlers, through the same interceptors (so a REST request is
// validated and measured exactly as the equivalent Connect request), and
// report failures through httperror, the one error-to-status mapping. Every
// request gets an id (X-Request-Id, kept from the request when it has a
// sane one) that its log lines carry.
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

// Headers of the REST API.
const (
	HeaderRevision    = "X-Concord-Revision"
	HeaderNode        = "X-Concord-Node"
	HeaderConsistency = "X-Concord-Consistency"
	HeaderRequestID   = "X-Request-Id"
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
	// DefaultConsistency names the read level of requests that name none
	// (eventual, leader or strong; default leader), for the metrics.
	DefaultConsistency string
	// Logger receives a debug line per request and the failures.
	Logger *slog.Logger
}

// Server routes requests to the KV and cluster handlers. It is safe for
// concurrent use.
type Server struct {
	kv           concordv1connect.KVServiceHandler
	cluster      concordv1connect.ClusterServiceHandler
	interceptors []connect.Interceptor
	maxBody      int64
	metrics      *metrics
	logger       *slog.Logger
	rest         []route
	openapi      []byte // the OpenAPI document, as served
	handler      http.Handler
}

// New returns the gateway's handler. It fails only if the OpenAPI document
// cannot be generated from the routes (a programming error).
func New(ctx context.Context, o Options) (*Server, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	s := &Server{
		kv: o.KV, cluster: o.Cluster, maxBody: o.MaxBodyBytes,
		metrics: newMetrics(o.DefaultConsistency), logger: o.Logger,
	}
	// Measure everything (validation failures included), then log.
	s.interceptors = append([]connect.Interceptor{s.metrics.interceptor(), logErrors(o.Logger)}, o.Interceptors...)
	s.rest = s.restRoutes()
	var err error
	if _, s.openapi, err = openAPIDocument(ctx, s.rest); err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	mux := http.NewServeMux()
	s.routes(mux)
	s.handler = withRequestID(s.logger, cors(o.CORSOrigins, mux))
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// OpenAPI returns the OpenAPI document served at /api/v1/openapi.json.
func (s *Server) OpenAPI() []byte { return s.openapi }

// reply is what a REST handler produces on success: always 200 with body as
// JSON; header, when set, fills X-Concord-Revision and X-Concord-Node.
type reply struct {
	header *concordv1.ResponseHeader
	body   any
}

// restFunc is a REST handler. It returns an error instead of writing one, so
// the status always comes from httperror.
type restFunc func(r *http.Request) (reply, error)

// restHandler serves rt: it limits the body, rejects query parameters rt
// does not declare, and writes the reply or the error.
func (s *Server) restHandler(rt route) http.Handler {
	var query []string
	for _, p := range rt.params {
		if p.in == "query" {
			query = append(query, p.name)
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, s.maxBody)
		out, err := reply{}, error(nil)
		for name := range r.URL.Query() {
			if !slices.Contains(query, name) {
				err = invalid("query parameter %q is not one of %s %s's (%s)", name, rt.method, rt.path, strings.Join(query, ", "))
				break
			}
		}
		if err == nil {
			out, err = rt.handle(r)
		}
		if err != nil {
			httperror.Write(w, err)
			return
		}
		if hdr := out.header; hdr != nil {
			w.Header().Set(HeaderRevision, strconv.FormatUint(hdr.GetRevision(), 10))
			w.Header().Set(HeaderNode, hdr.GetNodeId())
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if raw, ok := out.body.(json.RawMessage); ok {
			_, err = w.Write(raw)
		} else {
			err = json.NewEncoder(w).Encode(out.body)
		}
		if err != nil {
			s.logger.LogAttrs(r.Context(), slog.LevelWarn, "write response",
				slog.String("request_id", RequestID(r.Context())), slog.String("path", r.URL.Path), slog.String("error", err.Error()))
		}
	})
}

// invoke calls method as the Connect handler would: through the interceptor
// chain (validation included), with a fresh request around msg.
func invoke[Req, Res any](ctx context.Context, s *Server, procedure string,
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
	res, err := next(context.WithValue(ctx, procedureKey{}, procedure), connect.NewRequest(msg))
	if err != nil {
		return nil, err
	}
	typed, ok := res.Any().(*Res)
	if !ok {
		return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("unexpected response %T", res.Any()))
	}
	return typed, nil
}

// logErrors is the interceptor that logs calls failing on the server's
// side (internal errors, unavailable replicas, deadlines), with the request
// id. Callers' mistakes (invalid argument, not found, conflict) are not
// logged: the caller is told.
func logErrors(logger *slog.Logger) connect.Interceptor {
	return connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			res, err := next(ctx, req)
			if err != nil {
				switch connect.CodeOf(err) {
				case connect.CodeInternal, connect.CodeUnknown, connect.CodeDataLoss, connect.CodeUnavailable, connect.CodeDeadlineExceeded:
					logger.LogAttrs(ctx, slog.LevelWarn, "call failed",
						slog.String("request_id", RequestID(ctx)), slog.String("procedure", procedureOf(ctx, req)),
						slog.String("code", connect.CodeOf(err).String()), slog.String("error", httperror.Message(err)))
				}
			}
			return res, err
		}
	})
}

// corsExposed lists the response headers browsers may read: gRPC-web status
// trailers-in-headers, the revision headers and the request id.
var corsExposed = strings.Join([]string{
	"Grpc-Status", "Grpc-Message", "Grpc-Status-Details-Bin", HeaderRevision, HeaderNode, HeaderRequestID,
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
