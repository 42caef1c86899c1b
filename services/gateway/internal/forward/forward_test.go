package forward

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	concordv1 "github.com/concord-kv/concord/proto/gen/go/concord/v1"
	"github.com/concord-kv/concord/proto/gen/go/concord/v1/concordv1connect"
)

// stubKV answers Put and Get with fixed results and counts calls.
type stubKV struct {
	concordv1connect.UnimplementedKVServiceHandler
	node  string
	err   error // returned by every call when set
	calls atomic.Int32
	seen  atomic.Int32 // last consistency seen by Get
}

func (s *stubKV) Put(context.Context, *connect.Request[concordv1.PutRequest]) (*connect.Response[concordv1.PutResponse], error) {
	s.calls.Add(1)
	if s.err != nil {
		return nil, s.err
	}
	return connect.NewResponse(&concordv1.PutResponse{Header: &concordv1.ResponseHeader{Revision: 7, NodeId: s.node}}), nil
}

func (s *stubKV) Get(_ context.Context, req *connect.Request[concordv1.GetRequest]) (*connect.Response[concordv1.GetResponse], error) {
	s.calls.Add(1)
	s.seen.Store(int32(req.Msg.GetConsistency()))
	if s.err != nil {
		return nil, s.err
	}
	return connect.NewResponse(&concordv1.GetResponse{Header: &concordv1.ResponseHeader{Revision: 7, NodeId: s.node}}), nil
}

// serve runs h on a cleartext HTTP/2 server, as replicas do.
func serve(t *testing.T, h concordv1connect.KVServiceHandler) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(concordv1connect.NewKVServiceHandler(h))
	srv := httptest.NewUnstartedServer(mux)
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv.Config.Protocols = &p
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL
}

// deadAddr is a URL nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return "http://" + addr
}

func newForwarder(t *testing.T, opts Options, replicas ...string) *Forwarder {
	t.Helper()
	f, err := New(replicas, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

func TestRetriesWhatCertainlyDidNotApply(t *testing.T) {
	unavailable := &stubKV{node: "down", err: connect.NewError(connect.CodeUnavailable, errors.New("no leader"))}
	good := &stubKV{node: "good"}
	f := newForwarder(t, Options{}, deadAddr(t), serve(t, unavailable), serve(t, good))
	for i := range 6 { // every starting point of the round robin
		res, err := f.Put(t.Context(), connect.NewRequest(&concordv1.PutRequest{Key: "k"}))
		if err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
		if res.Msg.GetHeader().GetNodeId() != "good" {
			t.Errorf("put %d served by %q", i, res.Msg.GetHeader().GetNodeId())
		}
	}
	if good.calls.Load() != 6 {
		t.Errorf("good replica saw %d calls, want 6", good.calls.Load())
	}
}

func TestPassesOtherErrorsThrough(t *testing.T) {
	tests := []struct {
		code connect.Code
		kind string
	}{
		{connect.CodeFailedPrecondition, "put"},
		{connect.CodeInvalidArgument, "put"},
		{connect.CodeNotFound, "get"},
		{connect.CodeDeadlineExceeded, "put"},
		{connect.CodeInternal, "get"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s %v", tt.kind, tt.code), func(t *testing.T) {
			stub := &stubKV{err: connect.NewError(tt.code, errors.New("replica says no"))}
			other := &stubKV{node: "other"}
			f := newForwarder(t, Options{}, serve(t, stub), serve(t, other))
			f.next.Store(^uint64(0)) // the next call starts at replica 0
			var err error
			if tt.kind == "put" {
				_, err = f.Put(t.Context(), connect.NewRequest(&concordv1.PutRequest{Key: "k"}))
			} else {
				_, err = f.Get(t.Context(), connect.NewRequest(&concordv1.GetRequest{Key: "k"}))
			}
			var ce *connect.Error
			if !errors.As(err, &ce) || ce.Code() != tt.code || ce.Message() != "replica says no" {
				t.Fatalf("error %v, want %v: replica says no", err, tt.code)
			}
			if stub.calls.Load() != 1 || other.calls.Load() != 0 {
				t.Errorf("calls: %d on the failing replica, %d on the other; want 1 and 0", stub.calls.Load(), other.calls.Load())
			}
		})
	}
}

func TestGivesUpAtTheDeadline(t *testing.T) {
	f := newForwarder(t, Options{Timeout: 200 * time.Millisecond}, deadAddr(t))
	_, err := f.Put(t.Context(), connect.NewRequest(&concordv1.PutRequest{Key: "k"}))
	if code := connect.CodeOf(err); code != connect.CodeUnavailable && code != connect.CodeDeadlineExceeded {
		t.Fatalf("error %v, want unavailable or deadline_exceeded", err)
	}
}

func TestDefaultConsistency(t *testing.T) {
	stub := &stubKV{node: "n"}
	f := newForwarder(t, Options{DefaultConsistency: concordv1.Consistency_CONSISTENCY_STRONG}, serve(t, stub))
	for _, tt := range []struct{ ask, want concordv1.Consistency }{
		{concordv1.Consistency_CONSISTENCY_UNSPECIFIED, concordv1.Consistency_CONSISTENCY_STRONG},
		{concordv1.Consistency_CONSISTENCY_EVENTUAL, concordv1.Consistency_CONSISTENCY_EVENTUAL},
	} {
		if _, err := f.Get(t.Context(), connect.NewRequest(&concordv1.GetRequest{Key: "k", Consistency: tt.ask})); err != nil {
			t.Fatal(err)
		}
		if got := concordv1.Consistency(stub.seen.Load()); got != tt.want {
			t.Errorf("asked %v: replica saw %v, want %v", tt.ask, got, tt.want)
		}
	}
}

func TestRetryable(t *testing.T) {
	dial := connect.NewError(connect.CodeUnavailable, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")})
	reset := connect.NewError(connect.CodeUnavailable, &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset")})
	tests := []struct {
		name        string
		err         error
		write, read bool
	}{
		{"dial error", dial, true, true},
		{"wire unavailable", connect.NewWireError(connect.CodeUnavailable, errors.New("no leader")), true, true},
		{"wire conflict", connect.NewWireError(connect.CodeFailedPrecondition, errors.New("x")), false, false},
		{"wire deadline", connect.NewWireError(connect.CodeDeadlineExceeded, errors.New("x")), false, false},
		{"reset after sending", reset, false, true},
		{"canceled", connect.NewError(connect.CodeCanceled, context.Canceled), false, false},
		{"deadline", connect.NewError(connect.CodeDeadlineExceeded, context.DeadlineExceeded), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := retryable(tt.err, write); got != tt.write {
				t.Errorf("write: retryable = %v, want %v", got, tt.write)
			}
			if got := retryable(tt.err, read); got != tt.read {
				t.Errorf("read: retryable = %v, want %v", got, tt.read)
			}
		})
	}
}
