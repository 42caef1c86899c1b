package server

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"connectrpc.com/connect"
	concordv1 "github.com/concord-kv/concord/proto/gen/go/concord/v1"
	"github.com/concord-kv/concord/services/gateway/internal/httperror"
)

// JSONContentType is the content type of values written as JSON over REST.
const JSONContentType = "application/json"

// invalid is an invalid_argument error (400).
func invalid(format string, args ...any) error {
	return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf(format, args...))
}

// decodeBody reads a JSON request body into dst, rejecting unknown fields,
// trailing data and bodies over the limit (the body is already wrapped in an
// http.MaxBytesReader). A missing Content-Type, application/json and the
// form type that `curl -d` sends are all read as JSON.
func decodeBody(r *http.Request, dst any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != JSONContentType && mt != "application/x-www-form-urlencoded" {
			return fmt.Errorf("%w %q: send JSON (application/json)", httperror.ErrUnsupportedMediaType, ct)
		}
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return jsonError(err)
		}
		return invalid("malformed JSON: unexpected data after the object at byte %d", dec.InputOffset())
	}
	return nil
}

// decodeOptionalBody is decodeBody for a route whose body may be left out:
// an empty body leaves dst as it is.
func decodeOptionalBody(r *http.Request, dst any) error {
	if r.ContentLength == 0 {
		return nil
	}
	err := decodeBody(r, dst)
	if r.ContentLength < 0 && errors.Is(err, errEmptyBody) {
		return nil // chunked, and empty after all
	}
	return err
}

// errEmptyBody is the error of a body with no JSON in it.
var errEmptyBody = invalid("request body is empty: want a JSON object")

// jsonError turns a decoding error into a message that names the problem
// (and the field, when there is one).
func jsonError(err error) error {
	var (
		tooLarge *http.MaxBytesError
		syntax   *json.SyntaxError
		typ      *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &tooLarge):
		return fmt.Errorf("request body is larger than %d bytes: %w", tooLarge.Limit, httperror.ErrBodyTooLarge)
	case errors.Is(err, io.EOF):
		return errEmptyBody
	case errors.Is(err, io.ErrUnexpectedEOF):
		return invalid("malformed JSON: unexpected end of body")
	case errors.As(err, &syntax):
		return invalid("malformed JSON at byte %d: %s", syntax.Offset, strings.TrimPrefix(syntax.Error(), "json: "))
	case errors.As(err, &typ):
		if typ.Field == "" {
			return invalid("request body must be a JSON object, not %s", typ.Value)
		}
		return invalid("field %q: cannot use a JSON %s as %s", typ.Field, typ.Value, typ.Type)
	}
	// Unknown fields and the like: "json: unknown field \"x\"".
	return invalid("%s", strings.TrimPrefix(err.Error(), "json: "))
}

// queryParams reads typed query parameters, keeping the first error.
type queryParams struct {
	r   *http.Request
	err error
}

func (q *queryParams) string(p param) string { return q.r.URL.Query().Get(p.name) }

func (q *queryParams) bool(p param) bool {
	name := p.name
	v := q.r.URL.Query().Get(name)
	if v == "" || q.err != nil {
		return false
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		q.err = invalid("query parameter %s=%q: want true or false", name, v)
	}
	return b
}

func (q *queryParams) uint(p param, bits int) uint64 {
	name := p.name
	v := q.r.URL.Query().Get(name)
	if v == "" || q.err != nil {
		return 0
	}
	n, err := strconv.ParseUint(v, 10, bits)
	if err != nil {
		q.err = invalid("query parameter %s=%q: want a non-negative integer", name, v)
	}
	return n
}

// consistency reads ?consistency= or the X-Concord-Consistency header.
// Absent means the gateway's default.
func (q *queryParams) consistency() concordv1.Consistency {
	v := q.r.URL.Query().Get(paramConsistency.name)
	if v == "" {
		v = q.r.Header.Get(headerConsistency.name)
	}
	switch strings.ToLower(v) {
	case "":
		return concordv1.Consistency_CONSISTENCY_UNSPECIFIED
	case "eventual":
		return concordv1.Consistency_CONSISTENCY_EVENTUAL
	case "leader":
		return concordv1.Consistency_CONSISTENCY_LEADER
	case "strong":
		return concordv1.Consistency_CONSISTENCY_STRONG
	}
	if q.err == nil {
		q.err = invalid("consistency %q: want eventual, leader or strong", v)
	}
	return concordv1.Consistency_CONSISTENCY_UNSPECIFIED
}

// compressMode maps the optional "compress" field: absent = automatic.
func compressMode(c *bool) concordv1.CompressMode {
	switch {
	case c == nil:
		return concordv1.CompressMode_COMPRESS_MODE_UNSPECIFIED
	case *c:
		return concordv1.CompressMode_COMPRESS_MODE_FORCE
	}
	return concordv1.CompressMode_COMPRESS_MODE_OFF
}

// toEntry converts a KeyValue. A value written as JSON is returned as that
// JSON; any other value as base64 with "encoding" and "content_type".
func toEntry(kv *concordv1.KeyValue, withValue, withTTL bool) Entry {
	it := Entry{
		Key: kv.GetKey(), Revision: kv.GetModRevision(), CreateRevision: kv.GetCreateRevision(),
		ModRevision: kv.GetModRevision(), Version: kv.GetVersion(),
	}
	if withTTL {
		it.TTL = ttlOf(kv.TtlSeconds)
	}
	if !withValue {
		return it
	}
	if isJSON(kv.GetContentType()) && json.Valid(kv.GetValue()) {
		it.Value = kv.GetValue()
		return it
	}
	b64, _ := json.Marshal(base64.StdEncoding.EncodeToString(kv.GetValue()))
	it.Value, it.Encoding, it.ContentType = b64, "base64", kv.GetContentType()
	if it.ContentType == "" {
		it.ContentType = "application/octet-stream"
	}
	return it
}

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == JSONContentType
}
