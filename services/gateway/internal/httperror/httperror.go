// Package httperror is the gateway's one mapping from errors to HTTP: a table
// from connect.Code to an HTTP status and the error code named in the JSON
// body {"error":{"code":"not_found","message":"..."}}.
//
// Handlers never choose a status themselves: they return an error (a
// *connect.Error, or one of the sentinels below) and call Write.
package httperror

import (
	"encoding/json"
	"errors"
	"net/http"

	"connectrpc.com/connect"
)

// ErrBodyTooLarge marks a request body over the configured limit (413). It is
// an invalid_argument error in the vocabulary of ARCHITECTURE.md.
var ErrBodyTooLarge = errors.New("request body too large")

// ErrUnsupportedMediaType marks a request body in a content type the REST API
// does not read (415). It is an invalid_argument error.
var ErrUnsupportedMediaType = errors.New("unsupported content type")

// Mapping is one row of the table: the HTTP status and the error code.
type Mapping struct {
	Status int
	Code   string
}

// table maps every Connect code (ARCHITECTURE.md, "Errors").
var table = map[connect.Code]Mapping{
	connect.CodeInvalidArgument:    {http.StatusBadRequest, "invalid_argument"},
	connect.CodeOutOfRange:         {http.StatusBadRequest, "invalid_argument"},
	connect.CodeUnauthenticated:    {http.StatusUnauthorized, "unauthorized"},
	connect.CodePermissionDenied:   {http.StatusForbidden, "forbidden"},
	connect.CodeNotFound:           {http.StatusNotFound, "not_found"},
	connect.CodeFailedPrecondition: {http.StatusConflict, "conflict"},
	connect.CodeAlreadyExists:      {http.StatusConflict, "conflict"},
	connect.CodeAborted:            {http.StatusConflict, "conflict"},
	connect.CodeResourceExhausted:  {http.StatusTooManyRequests, "rate_limited"},
	connect.CodeUnavailable:        {http.StatusServiceUnavailable, "no_leader"},
	connect.CodeDeadlineExceeded:   {http.StatusGatewayTimeout, "timeout"},
	connect.CodeCanceled:           {499, "canceled"}, // the client went away (nginx's 499)
	connect.CodeUnimplemented:      {http.StatusNotImplemented, "unimplemented"},
	connect.CodeUnknown:            {http.StatusInternalServerError, "internal"},
	connect.CodeInternal:           {http.StatusInternalServerError, "internal"},
	connect.CodeDataLoss:           {http.StatusInternalServerError, "internal"},
}

var (
	bodyTooLarge     = Mapping{http.StatusRequestEntityTooLarge, "invalid_argument"}
	unsupportedMedia = Mapping{http.StatusUnsupportedMediaType, "invalid_argument"}
)

// Map returns the status and error code for err. Errors that are neither
// *connect.Error nor a sentinel of this package map as CodeUnknown (500).
func Map(err error) Mapping {
	var tooLarge *http.MaxBytesError
	switch {
	case errors.Is(err, ErrBodyTooLarge), errors.As(err, &tooLarge):
		return bodyTooLarge
	case errors.Is(err, ErrUnsupportedMediaType):
		return unsupportedMedia
	}
	if m, ok := table[connect.CodeOf(err)]; ok {
		return m
	}
	return table[connect.CodeUnknown]
}

// Body is the JSON error document.
type Body struct {
	Error Detail `json:"error"`
}

// Detail is the inside of Body.
type Detail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Message is the text shown to the client: a *connect.Error's message
// without the code prefix, or the error's text.
func Message(err error) string {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce.Message()
	}
	return err.Error()
}

// Write sends err as a JSON error document with its mapped status and
// returns the status.
func Write(w http.ResponseWriter, err error) int {
	m := Map(err)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(m.Status)
	_ = json.NewEncoder(w).Encode(Body{Error: Detail{Code: m.Code, Message: Message(err)}})
	return m.Status
}
