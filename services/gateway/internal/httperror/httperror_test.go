package httperror_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"connectrpc.com/connect"
	"github.com/concord-kv/concord/services/gateway/internal/httperror"
)

func TestMap(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want httperror.Mapping
	}{
		{"invalid argument", connect.NewError(connect.CodeInvalidArgument, errors.New("bad key")), httperror.Mapping{Status: 400, Code: "invalid_argument"}},
		{"out of range", connect.NewError(connect.CodeOutOfRange, errors.New("x")), httperror.Mapping{Status: 400, Code: "invalid_argument"}},
		{"body too large", fmt.Errorf("body: %w", httperror.ErrBodyTooLarge), httperror.Mapping{Status: 413, Code: "invalid_argument"}},
		{"max bytes reader", &http.MaxBytesError{Limit: 10}, httperror.Mapping{Status: 413, Code: "invalid_argument"}},
		{"unsupported media type", fmt.Errorf("text/plain: %w", httperror.ErrUnsupportedMediaType), httperror.Mapping{Status: 415, Code: "invalid_argument"}},
		{"unauthenticated", connect.NewError(connect.CodeUnauthenticated, errors.New("x")), httperror.Mapping{Status: 401, Code: "unauthorized"}},
		{"permission denied", connect.NewError(connect.CodePermissionDenied, errors.New("x")), httperror.Mapping{Status: 403, Code: "forbidden"}},
		{"not found", connect.NewError(connect.CodeNotFound, errors.New("x")), httperror.Mapping{Status: 404, Code: "not_found"}},
		{"failed precondition", connect.NewError(connect.CodeFailedPrecondition, errors.New("x")), httperror.Mapping{Status: 409, Code: "conflict"}},
		{"already exists", connect.NewError(connect.CodeAlreadyExists, errors.New("x")), httperror.Mapping{Status: 409, Code: "conflict"}},
		{"aborted", connect.NewError(connect.CodeAborted, errors.New("x")), httperror.Mapping{Status: 409, Code: "conflict"}},
		{"resource exhausted", connect.NewError(connect.CodeResourceExhausted, errors.New("x")), httperror.Mapping{Status: 429, Code: "rate_limited"}},
		{"unavailable", connect.NewError(connect.CodeUnavailable, errors.New("x")), httperror.Mapping{Status: 503, Code: "no_leader"}},
		{"deadline exceeded", connect.NewError(connect.CodeDeadlineExceeded, errors.New("x")), httperror.Mapping{Status: 504, Code: "timeout"}},
		{"canceled", connect.NewError(connect.CodeCanceled, errors.New("x")), httperror.Mapping{Status: 499, Code: "canceled"}},
		{"unimplemented", connect.NewError(connect.CodeUnimplemented, errors.New("x")), httperror.Mapping{Status: 501, Code: "unimplemented"}},
		{"internal", connect.NewError(connect.CodeInternal, errors.New("x")), httperror.Mapping{Status: 500, Code: "internal"}},
		{"data loss", connect.NewError(connect.CodeDataLoss, errors.New("x")), httperror.Mapping{Status: 500, Code: "internal"}},
		{"unknown", connect.NewError(connect.CodeUnknown, errors.New("x")), httperror.Mapping{Status: 500, Code: "internal"}},
		{"plain error", errors.New("boom"), httperror.Mapping{Status: 500, Code: "internal"}},
		{"wrapped connect error", fmt.Errorf("ctx: %w", connect.NewError(connect.CodeNotFound, errors.New("x"))), httperror.Mapping{Status: 404, Code: "not_found"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := httperror.Map(tt.err); got != tt.want {
				t.Errorf("Map(%v) = %+v, want %+v", tt.err, got, tt.want)
			}
		})
	}
}

func TestWrite(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantBody   httperror.Body
	}{
		{
			"connect error message without code prefix",
			connect.NewError(connect.CodeNotFound, errors.New(`key "a" not found`)),
			404, httperror.Body{Error: httperror.Detail{Code: "not_found", Message: `key "a" not found`}},
		},
		{
			"sentinel",
			fmt.Errorf("request body is larger than 10 bytes: %w", httperror.ErrBodyTooLarge),
			413, httperror.Body{Error: httperror.Detail{Code: "invalid_argument", Message: "request body is larger than 10 bytes: request body too large"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			if got := httperror.Write(rec, tt.err); got != tt.wantStatus {
				t.Errorf("Write returned %d, want %d", got, tt.wantStatus)
			}
			if rec.Code != tt.wantStatus {
				t.Errorf("status %d, want %d", rec.Code, tt.wantStatus)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			var got httperror.Body
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatalf("body %q: %v", rec.Body, err)
			}
			if got != tt.wantBody {
				t.Errorf("body %+v, want %+v", got, tt.wantBody)
			}
		})
	}
}
