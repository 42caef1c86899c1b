package chaos

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"connectrpc.com/connect"
	concordv1 "github.com/concord-kv/concord/proto/gen/go/concord/v1"
	"github.com/concord-kv/concord/proto/gen/go/concord/v1/concordv1connect"
	concord "github.com/concord-kv/concord/sdk/go"
)

type connKey struct{}

type statusOnly struct {
	concordv1connect.UnimplementedClusterServiceHandler
	url string
}

func (s *statusOnly) Status(context.Context, *connect.Request[concordv1.StatusRequest]) (*connect.Response[concordv1.StatusResponse], error) {
	return connect.NewResponse(&concordv1.StatusResponse{
		NodeId: "n1", State: "leader", LeaderId: "n1", LeaderApiAddress: s.url,
		Members: []*concordv1.Member{{Id: "n1", ApiAddress: s.url, Leader: true}},
	}), nil
}

// TestRegressSDKAmbiguousWriteError is bug B1 (README.md) in isolation: the
// leader receives a Put and its connection dies before it answers, as when
// the leader is killed with the write in flight. The write may have been
// applied, so the SDK must say ErrOutcomeUnknown, and must not also say
// ErrNoLeader, which promises that it was not applied.
func TestRegressSDKAmbiguousWriteError(t *testing.T) {
	srv := httptest.NewUnstartedServer(nil)
	srv.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		return context.WithValue(ctx, connKey{}, c)
	}
	mux := http.NewServeMux()
	status := &statusOnly{}
	mux.Handle(concordv1connect.NewClusterServiceHandler(status))
	mux.HandleFunc(concordv1connect.KVServicePutProcedure, func(_ http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_ = r.Context().Value(connKey{}).(net.Conn).Close() // the leader dies
	})
	srv.Config.Handler = mux
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv.Config.Protocols = &p
	srv.Start()
	defer srv.Close()
	status.url = srv.URL

	hc := newHTTPClient()
	defer hc.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c, err := concord.New(ctx, []string{srv.URL}, concord.WithHTTPClient(hc), concord.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()

	_, err = c.Put(ctx, "k", []byte("v"))
	if !errors.Is(err, concord.ErrOutcomeUnknown) {
		t.Fatalf("Put whose connection died after sending = %v, want ErrOutcomeUnknown", err)
	}
	if errors.Is(err, concord.ErrNoLeader) {
		t.Errorf("Put whose connection died after sending = %v: it matches ErrNoLeader too, which promises the write was not applied", err)
	}
}
