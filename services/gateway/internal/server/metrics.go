package server

import (
	"context"
	"net/http"
	"strings"
	"time"
	"unicode"

	"connectrpc.com/connect"
	concordv1 "github.com/concord-kv/concord/proto/gen/go/concord/v1"
	"github.com/concord-kv/concord/services/gateway/internal/httperror"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// metrics is the gateway's Prometheus instrumentation, in a registry of its
// own: one histogram per concord.v1 method,
// concord_api_<method>_duration_seconds{result, consistency}, for REST and
// Connect calls alike, plus the Go runtime and process collectors.
//
// result is "ok" or the error code of the REST error vocabulary (not_found,
// conflict, no_leader...); consistency is the read level (eventual, leader,
// strong) or "none" for calls that are not reads.
type metrics struct {
	registry           *prometheus.Registry
	ops                map[string]*prometheus.HistogramVec // by procedure
	defaultConsistency string
}

// latencyBuckets span 0.5 ms to about 8 s.
var latencyBuckets = prometheus.ExponentialBuckets(0.0005, 2, 15)

func newMetrics(defaultConsistency string) *metrics {
	if defaultConsistency == "" {
		defaultConsistency = "leader"
	}
	m := &metrics{
		registry: prometheus.NewRegistry(), ops: map[string]*prometheus.HistogramVec{},
		defaultConsistency: strings.ToLower(defaultConsistency),
	}
	m.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, svc := range []protoreflect.ServiceDescriptor{
		concordv1.File_concord_v1_kv_proto.Services().ByName("KVService"),
		concordv1.File_concord_v1_cluster_proto.Services().ByName("ClusterService"),
	} {
		methods := svc.Methods()
		for i := range methods.Len() {
			method := methods.Get(i)
			op := snakeCase(string(method.Name()))
			h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
				Name:    "concord_api_" + op + "_duration_seconds",
				Help:    "Duration of " + string(svc.FullName()) + "/" + string(method.Name()) + " calls (REST and Connect) through the gateway.",
				Buckets: latencyBuckets,
			}, []string{"result", "consistency"})
			m.registry.MustRegister(h)
			m.ops["/"+string(svc.FullName())+"/"+string(method.Name())] = h
		}
	}
	return m
}

// snakeCase turns a method name into a metric name part: GetTTL → get_ttl.
func snakeCase(s string) string {
	var b strings.Builder
	r := []rune(s)
	for i, c := range r {
		if unicode.IsUpper(c) && i > 0 && (unicode.IsLower(r[i-1]) || i+1 < len(r) && unicode.IsLower(r[i+1])) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToLower(c))
	}
	return b.String()
}

// interceptor observes every unary call.
func (m *metrics) interceptor() connect.Interceptor {
	return connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			start := time.Now()
			res, err := next(ctx, req)
			if h := m.ops[procedureOf(ctx, req)]; h != nil {
				result := "ok"
				if err != nil {
					result = httperror.Map(err).Code
				}
				h.WithLabelValues(result, m.consistency(req.Any())).Observe(time.Since(start).Seconds())
			}
			return res, err
		}
	})
}

// consistency is the label of a request: its read level, or none.
func (m *metrics) consistency(msg any) string {
	read, ok := msg.(interface{ GetConsistency() concordv1.Consistency })
	if !ok {
		return "none"
	}
	switch read.GetConsistency() {
	case concordv1.Consistency_CONSISTENCY_EVENTUAL:
		return "eventual"
	case concordv1.Consistency_CONSISTENCY_LEADER:
		return "leader"
	case concordv1.Consistency_CONSISTENCY_STRONG:
		return "strong"
	}
	return m.defaultConsistency
}

// handler serves the registry in the Prometheus text format.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// procedureKey carries the procedure of a REST call, whose connect.Request
// (made with connect.NewRequest) has no Spec.
type procedureKey struct{}

// procedureOf names the concord.v1 method a call is for.
func procedureOf(ctx context.Context, req connect.AnyRequest) string {
	if p := req.Spec().Procedure; p != "" {
		return p
	}
	p, _ := ctx.Value(procedureKey{}).(string)
	return p
}
