package server

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/concord-kv/concord/services/gateway/internal/httperror"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3gen"
)

// param is a path, query or header parameter of a route. Handlers read
// parameters through these values (queryParams), so a name is written once.
type param struct {
	in, name, doc string
	schema        func() *openapi3.Schema
}

func stringSchema() *openapi3.Schema { return openapi3.NewStringSchema() }
func boolSchema() *openapi3.Schema   { return openapi3.NewBoolSchema() }
func revisionSchema() *openapi3.Schema {
	return openapi3.NewInt64Schema().WithMin(0)
}

var (
	paramKey = param{in: openapi3.ParameterInPath, name: "key",
		doc: "the key: 1 to 512 bytes of UTF-8 without control characters, percent-encoded (a%2Fb is the key a/b)",
		schema: func() *openapi3.Schema {
			return openapi3.NewStringSchema().WithMinLength(1)
		}}
	paramConsistency = param{in: openapi3.ParameterInQuery, name: "consistency",
		doc: "eventual (any healthy replica), leader (the leader's state) or strong (linearizable); default from the gateway's configuration (leader)",
		schema: func() *openapi3.Schema {
			return openapi3.NewStringSchema().WithEnum("eventual", "leader", "strong", "EVENTUAL", "LEADER", "STRONG")
		}}
	headerConsistency = param{in: openapi3.ParameterInHeader, name: HeaderConsistency,
		doc:    "the read consistency, as the consistency query parameter (which wins when both are given)",
		schema: paramConsistency.schema}
	paramWithTTL = param{in: openapi3.ParameterInQuery, name: "with_ttl",
		doc: "also return the remaining TTL (null for keys that do not expire)", schema: boolSchema}
	paramMinRevision = param{in: openapi3.ParameterInQuery, name: "min_revision",
		doc: "wait until the serving replica has applied this revision (read your writes)", schema: revisionSchema}
	paramIfModRevision = param{in: openapi3.ParameterInQuery, name: "if_mod_revision",
		doc: "delete only if the key's mod_revision is this (else 409)", schema: revisionSchema}
	paramPrefix = param{in: openapi3.ParameterInQuery, name: "prefix",
		doc: "list only keys starting with this", schema: stringSchema}
	paramLimit = param{in: openapi3.ParameterInQuery, name: "limit",
		doc: "page size, 1 to 1000 (0 or absent: 100)",
		schema: func() *openapi3.Schema {
			return openapi3.NewIntegerSchema().WithMin(0).WithMax(1000)
		}}
	paramCursor = param{in: openapi3.ParameterInQuery, name: "cursor",
		doc: "the next_cursor of the previous page; absent for the first page", schema: stringSchema}
	paramMemberID = param{in: openapi3.ParameterInPath, name: "id",
		doc: "the member's node id", schema: func() *openapi3.Schema {
			return openapi3.NewStringSchema().WithMinLength(1)
		}}
	paramIfUnreachableFor = param{in: openapi3.ParameterInQuery, name: "if_unreachable_for",
		doc: "seconds: remove only if the leader has failed to reach the member for at least this long (else 409); 0 or absent: unconditionally",
		schema: func() *openapi3.Schema {
			return openapi3.NewIntegerSchema().WithMin(0).WithMax(1<<31 - 1)
		}}
	paramKeysOnly = param{in: openapi3.ParameterInQuery, name: "keys_only",
		doc: "return keys and metadata without values", schema: boolSchema}
)

// typeNames renames types whose Go name does not suit the document; the
// empty name inlines a type instead of making it a component.
var typeNames = map[reflect.Type]string{
	reflect.TypeFor[httperror.Body]():   "Error",
	reflect.TypeFor[httperror.Detail](): "ErrorDetail",
	reflect.TypeFor[TTL]():              "",
}

func typeName(t reflect.Type) string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return t.Name()
}

// customize completes the generated schemas from the Go types' conventions
// (see api.go) and tags: doc (description), min and max (bounds of numbers
// and lengths of arrays) and enum (comma-separated values). The generator
// passes a slice field's tags on to its elements too, hence the kind checks.
func customize(_ string, t reflect.Type, tag reflect.StructTag, s *openapi3.Schema) error {
	switch {
	case t == reflect.TypeFor[json.RawMessage]():
		s.Nullable = true // any JSON value, null included
		s.Description = tag.Get("doc")
		return nil
	case t == reflect.TypeFor[TTL]():
		s.Type, s.Format, s.Nullable = &openapi3.Types{openapi3.TypeInteger}, "int64", true
		s.Description = tag.Get("doc")
		return nil
	case t.Kind() == reflect.Struct:
		s.AdditionalProperties = openapi3.AdditionalProperties{Has: new(false)}
		s.Required = nil
		for f := range t.Fields() {
			name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" || !f.IsExported() {
				continue
			}
			if !slices.Contains(strings.Split(opts, ","), "omitempty") && !slices.Contains(strings.Split(opts, ","), "omitzero") {
				s.Required = append(s.Required, name)
			}
		}
		return nil // a component: field tags describe the field, not the type
	}
	if _, opts, _ := strings.Cut(tag.Get("json"), ","); s.Nullable && tag.Get("json") != "" &&
		!strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
		s.Nullable = false // a required pointer: present and not null
	}
	s.Description = tag.Get("doc")
	if v := tag.Get("enum"); v != "" {
		for e := range strings.SplitSeq(v, ",") {
			s.Enum = append(s.Enum, e)
		}
	}
	for _, b := range []struct {
		key string
		set func(n uint64)
	}{
		{"min", func(n uint64) {
			switch {
			case t.Kind() == reflect.Slice:
				s.MinItems = n
			case s.Type.Is(openapi3.TypeInteger):
				s.Min = new(float64(n))
			}
		}},
		{"max", func(n uint64) {
			switch {
			case t.Kind() == reflect.Slice:
				s.MaxItems = new(n)
			case s.Type.Is(openapi3.TypeInteger):
				s.Max = new(float64(n))
			}
		}},
	} {
		if v := tag.Get(b.key); v != "" {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return fmt.Errorf("%s tag %q: %w", b.key, v, err)
			}
			b.set(n)
		}
	}
	return nil
}

// statusText describes the error statuses in the document.
var statusText = map[int]string{
	http.StatusBadRequest:            "invalid_argument: a bad key, value, TTL, parameter or body (the message names it), or more than 500 bulk items",
	http.StatusNotFound:              "not_found: the key does not exist or has expired (cluster routes: no such member)",
	http.StatusConflict:              "conflict: if_absent or if_mod_revision did not hold, or a membership change's condition did not (if_unreachable_for, a transfer target that cannot lead); nothing was changed",
	http.StatusRequestEntityTooLarge: "invalid_argument: the request body is over the gateway's limit",
	http.StatusUnsupportedMediaType:  "invalid_argument: the body is not JSON",
	http.StatusServiceUnavailable:    "no_leader: no leader or no replica reachable; nothing was written",
	http.StatusGatewayTimeout:        "timeout: the deadline passed; a write may or may not have been applied",
	http.StatusInternalServerError:   "internal: an unexpected failure",
}

// pathParam matches a ServeMux wildcard: {key}, {rest...}.
var pathParam = regexp.MustCompile(`\{([a-zA-Z_]+)(\.\.\.)?\}`)

// openAPIDocument builds the OpenAPI 3 document of the REST routes from their
// Go types, loads it back (resolving every $ref) and validates it.
func openAPIDocument(ctx context.Context, routes []route) (*openapi3.T, []byte, error) {
	schemas := openapi3.Schemas{}
	gen := openapi3gen.NewGenerator(
		openapi3gen.SchemaCustomizer(customize),
		openapi3gen.CreateTypeNameGenerator(typeName),
		openapi3gen.CreateComponentSchemas(openapi3gen.ExportComponentSchemasOptions{
			ExportComponentSchemas: true, ExportTopLevelSchema: true,
		}),
	)
	schemaOf := func(v any) (*openapi3.SchemaRef, error) { return gen.NewSchemaRefForValue(v, schemas) }
	errorSchema, err := schemaOf(httperror.Body{})
	if err != nil {
		return nil, nil, fmt.Errorf("error schema: %w", err)
	}
	doc := &openapi3.T{
		OpenAPI: "3.0.3",
		Info: &openapi3.Info{
			Title:   "Concord API",
			Version: "v1",
			Description: "The REST API of Concord, a strongly consistent key-value store. " +
				"Every error is {\"error\": {\"code\", \"message\"}}. Responses that read or write " +
				"carry X-Concord-Revision and X-Concord-Node. The same operations are served as " +
				"Connect, gRPC and gRPC-web (concord.v1.KVService, concord.v1.ClusterService) on the same port.",
		},
		Tags: openapi3.Tags{
			{Name: "kv", Description: "Keys and values"},
			{Name: "cluster", Description: "The Raft cluster"},
			{Name: "probes", Description: "Liveness and readiness"},
			{Name: "docs", Description: "This document"},
		},
		Paths:      openapi3.NewPaths(),
		Components: &openapi3.Components{Schemas: schemas, Responses: openapi3.ResponseBodies{}},
	}
	for _, status := range slices.Sorted(maps.Keys(statusText)) {
		doc.Components.Responses[strconv.Itoa(status)] = &openapi3.ResponseRef{Value: openapi3.NewResponse().
			WithDescription(statusText[status]).WithJSONSchemaRef(errorSchema)}
	}
	revisionHeaders := openapi3.Headers{
		HeaderRevision: {Value: &openapi3.Header{Parameter: openapi3.Parameter{
			Description: "the revision the call was served at", Required: true, Schema: revisionSchema().NewRef(),
		}}},
		HeaderNode: {Value: &openapi3.Header{Parameter: openapi3.Parameter{
			Description: "the replica that served the call", Required: true,
			Schema: openapi3.NewStringSchema().WithMinLength(1).NewRef(),
		}}},
	}
	for _, rt := range routes {
		op := openapi3.NewOperation()
		op.OperationID, op.Summary, op.Tags = rt.id, rt.summary, []string{rt.tag}
		for _, m := range pathParam.FindAllStringSubmatch(rt.path, -1) {
			if i := slices.IndexFunc(rt.params, func(p param) bool { return p.in == openapi3.ParameterInPath && p.name == m[1] }); i < 0 {
				return nil, nil, fmt.Errorf("%s %s: path parameter %s is not declared", rt.method, rt.path, m[1])
			}
		}
		for _, p := range rt.params {
			var prm *openapi3.Parameter
			switch p.in {
			case openapi3.ParameterInPath:
				prm = openapi3.NewPathParameter(p.name)
			case openapi3.ParameterInQuery:
				prm = openapi3.NewQueryParameter(p.name)
			case openapi3.ParameterInHeader:
				prm = openapi3.NewHeaderParameter(p.name)
			}
			op.AddParameter(prm.WithDescription(p.doc).WithSchema(p.schema()))
		}
		if rt.request != nil {
			ref, err := schemaOf(rt.request)
			if err != nil {
				return nil, nil, fmt.Errorf("%s %s request: %w", rt.method, rt.path, err)
			}
			op.RequestBody = &openapi3.RequestBodyRef{Value: openapi3.NewRequestBody().WithRequired(!rt.optionalBody).WithJSONSchemaRef(ref)}
		}
		ref, err := schemaOf(rt.response)
		if err != nil {
			return nil, nil, fmt.Errorf("%s %s response: %w", rt.method, rt.path, err)
		}
		ok := openapi3.NewResponse().WithDescription("OK").WithJSONSchemaRef(ref)
		if strings.HasPrefix(rt.path, "/api/v1/kv") || rt.path == "/api/v1/status" || rt.path == "/api/v1/cluster/status" {
			ok.Headers = revisionHeaders
		}
		op.AddResponse(http.StatusOK, ok)
		statuses := append([]int{http.StatusBadRequest, http.StatusInternalServerError}, rt.errors...)
		slices.Sort(statuses)
		for _, status := range slices.Compact(statuses) {
			if _, known := statusText[status]; !known {
				return nil, nil, fmt.Errorf("%s %s: no description of status %d", rt.method, rt.path, status)
			}
			op.Responses.Set(strconv.Itoa(status), &openapi3.ResponseRef{Ref: "#/components/responses/" + strconv.Itoa(status)})
		}
		doc.AddOperation(pathParam.ReplaceAllString(rt.path, "{$1}"), rt.method, op)
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		return nil, nil, err
	}
	loaded, err := openapi3.NewLoader().LoadFromData(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("load generated document: %w", err)
	}
	if err := loaded.Validate(ctx); err != nil {
		return nil, nil, fmt.Errorf("generated document is invalid: %w", err)
	}
	return loaded, raw, nil
}
