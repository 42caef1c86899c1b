package gateway_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	concordv1 "github.com/concord-kv/concord/proto/gen/go/concord/v1"
	"github.com/concord-kv/concord/proto/gen/go/concord/v1/concordv1connect"
	"github.com/concord-kv/concord/services/gateway"
	"github.com/concord-kv/concord/services/replica/replicatest"
)

// deadReplica is a replica URL nothing answers on.
const deadReplica = "http://127.0.0.1:1"

// TestEventualReadsSpreadOverReplicas: the gateway's SDK client balances
// eventual reads over the healthy replicas, as its per-replica counters and
// the serving node of each response both show.
func TestEventualReadsSpreadOverReplicas(t *testing.T) {
	c := replicatest.Start(t, 3)
	c.WaitLeader(leaderTimeout)
	// Followers publish their API address a moment after the cluster forms;
	// once all have, the gateway's client learns the three from any of them.
	c.WaitRegistered(10 * time.Second)
	gw := startServer(t, gateway.Config{Replicas: c.Addrs()})
	base := gw.Addr()
	p := put(t, base, "spread", `{"value": "x"}`)

	before := gw.Served()
	nodes := map[string]int{}
	for range 300 {
		r := do(t, http.MethodGet, fmt.Sprintf("%s/api/v1/kv/spread?consistency=eventual&min_revision=%d", base, p.Revision), "")
		r.ok(t, nil)
		nodes[r.header.Get("X-Concord-Node")]++
	}
	after := gw.Served()
	used := 0
	for u, n := range after {
		if n > before[u] {
			used++
		}
	}
	if len(after) != 3 || used < 2 {
		t.Errorf("eventual reads were served by %d of the replicas %v (before %v)", used, after, before)
	}
	if len(nodes) < 2 {
		t.Errorf("eventual reads came back from nodes %v, want at least 2", nodes)
	}
}

// syncBuffer is a bytes.Buffer a logger and the test can share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRequestID(t *testing.T) {
	var logs syncBuffer
	base := startGateway(t, gateway.Config{
		Replicas: []string{deadReplica}, RequestTimeout: 200 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})

	r := do(t, http.MethodGet, base+"/health", "", "X-Request-Id", "req-42:abc")
	if got := r.header.Get("X-Request-Id"); got != "req-42:abc" {
		t.Errorf("X-Request-Id %q, want the client's req-42:abc", got)
	}
	a := do(t, http.MethodGet, base+"/health", "").header.Get("X-Request-Id")
	b := do(t, http.MethodGet, base+"/health", "").header.Get("X-Request-Id")
	if len(a) < 16 || a == b {
		t.Errorf("generated ids %q and %q: want distinct random ids", a, b)
	}
	for _, bad := range []string{"has space", strings.Repeat("x", 129), "tab\there"} {
		if got := do(t, http.MethodGet, base+"/health", "", "X-Request-Id", bad).header.Get("X-Request-Id"); got == bad || got == "" {
			t.Errorf("X-Request-Id %q was kept as %q, want a fresh id", bad, got)
		}
	}
	// A call that fails on the server's side is logged with its id, over
	// REST and Connect alike.
	do(t, http.MethodGet, base+"/api/v1/kv/k", "", "X-Request-Id", "rest-failure").fails(t, 503, "no_leader", "")
	kv := concordv1connect.NewKVServiceClient(http.DefaultClient, base)
	req := connect.NewRequest(&concordv1.GetRequest{Key: "k"})
	req.Header().Set("X-Request-Id", "connect-failure")
	if _, err := kv.Get(t.Context(), req); connect.CodeOf(err) != connect.CodeUnavailable {
		t.Errorf("Connect Get with no replica: %v, want unavailable", err)
	}
	out := logs.String()
	for _, want := range []string{
		`msg=request request_id=req-42:abc method=GET path=/health status=200`,
		`msg="call failed" request_id=rest-failure procedure=/concord.v1.KVService/Get code=unavailable`,
		`msg="call failed" request_id=connect-failure procedure=/concord.v1.KVService/Get code=unavailable`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %q:\n%s", want, out)
		}
	}
}

func TestUnknownQueryParameter(t *testing.T) {
	base := startGateway(t, gateway.Config{Replicas: []string{deadReplica}})
	do(t, http.MethodGet, base+"/api/v1/kv/k?level=strong", "").fails(t, 400, "invalid_argument", `"level"`)
	do(t, http.MethodGet, base+"/health?verbose=1", "").fails(t, 400, "invalid_argument", `"verbose"`)
}

func TestMetrics(t *testing.T) {
	c := replicatest.Start(t, 3)
	c.WaitLeader(leaderTimeout)
	base := startGateway(t, gateway.Config{Replicas: c.Addrs()})
	written := put(t, base, "metrics:a", `{"value": 1}`)
	do(t, http.MethodGet, base+"/api/v1/kv/metrics:a?consistency=strong", "").ok(t, nil)
	do(t, http.MethodGet, base+"/api/v1/kv/metrics:a", "").ok(t, nil)
	do(t, http.MethodGet, base+"/api/v1/kv/metrics:none", "").fails(t, 404, "not_found", "")
	kv := concordv1connect.NewKVServiceClient(http.DefaultClient, base)
	// An eventual read may reach a follower that has not applied the put
	// yet: MinRevision makes it wait for it.
	if _, err := kv.Get(t.Context(), connect.NewRequest(&concordv1.GetRequest{
		Key: "metrics:a", Consistency: concordv1.Consistency_CONSISTENCY_EVENTUAL, MinRevision: written.Revision,
	})); err != nil {
		t.Fatal(err)
	}

	do(t, http.MethodGet, base+"/api/v1/kv/metrics:a/ttl", "").ok(t, nil)
	do(t, http.MethodGet, base+"/api/v1/status", "").ok(t, nil)
	do(t, http.MethodPost, base+"/api/v1/kv/bulk/get?consistency=eventual", `{"keys": []}`).fails(t, 400, "invalid_argument", "keys")

	r := do(t, http.MethodGet, base+"/metrics", "")
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
		t.Fatalf("/metrics: %d %s", r.status, r.header.Get("Content-Type"))
	}
	for _, want := range []string{
		`concord_api_put_duration_seconds_count{consistency="none",result="ok"} 1`,
		`concord_api_get_duration_seconds_count{consistency="strong",result="ok"} 1`,
		`concord_api_get_duration_seconds_count{consistency="leader",result="ok"} 1`,
		`concord_api_get_duration_seconds_count{consistency="leader",result="not_found"} 1`,
		`concord_api_get_duration_seconds_count{consistency="eventual",result="ok"} 1`,
		`concord_api_get_duration_seconds_bucket{consistency="strong",result="ok",le="+Inf"} 1`,
		`concord_api_get_ttl_duration_seconds_count{consistency="leader",result="ok"} 1`,
		`concord_api_status_duration_seconds_count{consistency="none",result="ok"} 1`,
		`concord_api_batch_get_duration_seconds_count{consistency="eventual",result="invalid_argument"} 1`,
		`go_goroutines `,
		`process_cpu_seconds_total `,
	} {
		if !bytes.Contains(r.body, []byte(want)) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestSwaggerUI(t *testing.T) {
	base := startGateway(t, gateway.Config{Replicas: []string{deadReplica}})
	for _, path := range []string{"/api/docs", "/api/docs/"} {
		r := do(t, http.MethodGet, base+path, "")
		if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
			t.Fatalf("GET %s: %d %s", path, r.status, r.header.Get("Content-Type"))
		}
		if !bytes.Contains(r.body, []byte(`"/api/v1/openapi.json"`)) {
			t.Errorf("GET %s does not point Swagger UI at the spec:\n%s", path, r.body)
		}
	}
	// Every asset the page loads is served by the gateway itself (offline).
	page := do(t, http.MethodGet, base+"/api/docs", "").body
	assets := regexp.MustCompile(`(?:href|src)="([^"]+)"`).FindAllSubmatch(page, -1)
	var scripts int
	for _, m := range assets {
		u := string(m[1])
		if strings.HasPrefix(u, "http") || strings.HasPrefix(u, "//") {
			t.Errorf("Swagger UI loads %s from elsewhere", u)
			continue
		}
		r := do(t, http.MethodGet, base+u, "")
		if r.status != http.StatusOK || len(r.body) == 0 {
			t.Errorf("asset %s: %d, %d bytes", u, r.status, len(r.body))
		}
		if strings.HasSuffix(u, ".js") {
			scripts++
		}
	}
	if scripts < 2 {
		t.Errorf("found %d scripts in the Swagger UI page, want the bundle and the preset:\n%s", scripts, page)
	}
}

func TestConsoleFiles(t *testing.T) {
	base := startGateway(t, gateway.Config{Replicas: []string{deadReplica}})
	for path, ct := range map[string]string{
		"/ui/": "text/html", "/ui/app.js": "text/javascript", "/ui/style.css": "text/css",
	} {
		r := do(t, http.MethodGet, base+path, "")
		if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), ct) {
			t.Errorf("GET %s: %d %q, want 200 %s", path, r.status, r.header.Get("Content-Type"), ct)
		}
		if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q", path, csp)
		}
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, path := range []string{"/", "/ui"} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		if res.StatusCode/100 != 3 || res.Header.Get("Location") != "/ui/" {
			t.Errorf("GET %s: %d to %q, want a redirect to /ui/", path, res.StatusCode, res.Header.Get("Location"))
		}
	}
	if r := do(t, http.MethodGet, base+"/ui/missing.js", ""); r.status != http.StatusNotFound {
		t.Errorf("GET /ui/missing.js: %d", r.status)
	}
}

// TestCompressionStatsThroughTheGateway: the Connect-only call documented in
// the README reaches the replicas through the SDK too.
func TestCompressionStatsThroughTheGateway(t *testing.T) {
	_, base := start(t)
	put(t, base, "cs:big", `{"value": "`+strings.Repeat("z", 8192)+`", "compress": true}`)
	kv := concordv1connect.NewKVServiceClient(http.DefaultClient, base)
	st, err := kv.CompressionStats(t.Context(), connect.NewRequest(&concordv1.CompressionStatsRequest{
		Source: &concordv1.CompressionStatsRequest_Key{Key: "cs:big"},
	}))
	if err != nil {
		t.Fatal(err)
	}
	if m := st.Msg; m.GetAlgorithm() == concordv1.CompressionAlgorithm_COMPRESSION_ALGORITHM_NONE || m.GetOriginalSize() != 8194 ||
		m.GetCompressedSize() >= 8194 || m.GetHeader().GetNodeId() == "" {
		t.Errorf("CompressionStats(key) = %v", m)
	}
	est, err := kv.CompressionStats(t.Context(), connect.NewRequest(&concordv1.CompressionStatsRequest{
		Source: &concordv1.CompressionStatsRequest_Value{Value: bytes.Repeat([]byte("y"), 5000)},
	}))
	if err != nil || est.Msg.GetOriginalSize() != 5000 || est.Msg.GetSavingsBytes() <= 0 {
		t.Errorf("CompressionStats(value) = %v, %v", est, err)
	}
	_, err = kv.CompressionStats(t.Context(), connect.NewRequest(&concordv1.CompressionStatsRequest{
		Source: &concordv1.CompressionStatsRequest_Key{Key: "cs:none"},
	}))
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeNotFound {
		t.Errorf("CompressionStats(missing) = %v, want not_found", err)
	}
}

// TestGracefulShutdown: Close stops taking requests at once but lets one in
// flight finish.
func TestGracefulShutdown(t *testing.T) {
	c := replicatest.Start(t, 3)
	c.WaitLeader(leaderTimeout)
	gw, err := gateway.Start(t.Context(), gateway.Config{
		Addr: "127.0.0.1:0", Replicas: c.Addrs(),
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatal(err)
	}
	base := gw.Addr()
	p := put(t, base, "graceful", `{"value": 1}`)

	// A read that waits for a revision nobody has written yet.
	inFlight := make(chan result, 1)
	go func() {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet,
			fmt.Sprintf("%s/api/v1/kv/graceful?consistency=eventual&min_revision=%d", base, p.Revision+1), nil)
		if err != nil {
			panic(err)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			inFlight <- result{status: -1, body: []byte(err.Error())}
			return
		}
		defer func() { _ = res.Body.Close() }()
		var b bytes.Buffer
		_, _ = b.ReadFrom(res.Body)
		inFlight <- result{status: res.StatusCode, body: b.Bytes()}
	}()
	time.Sleep(300 * time.Millisecond) // let the read reach the replica

	closed := make(chan error, 1)
	go func() { closed <- gw.Close() }()
	time.Sleep(200 * time.Millisecond)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/health", nil)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := http.DefaultClient.Do(req); err == nil {
		_ = res.Body.Close()
		t.Error("the gateway still takes new requests while shutting down")
	}

	// Write the awaited revision straight to the leader: the read completes.
	kv := concordv1connect.NewKVServiceClient(http.DefaultClient, c.Addr(c.Leader()))
	if _, err := kv.Put(t.Context(), connect.NewRequest(&concordv1.PutRequest{Key: "graceful", Value: []byte("2"), ContentType: "application/json"})); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-inFlight:
		if r.status != http.StatusOK {
			t.Errorf("in-flight read: %d %s", r.status, r.body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the in-flight read did not finish")
	}
	if err := <-closed; err != nil {
		t.Errorf("Close: %v", err)
	}
}

// TestMembershipThroughTheGateway: the cluster service's membership calls
// reach the leader through the gateway.
func TestMembershipThroughTheGateway(t *testing.T) {
	c, base := start(t)
	cl := concordv1connect.NewClusterServiceClient(http.DefaultClient, base)
	old := c.Node(c.Leader()).ID()
	tr, err := cl.TransferLeadership(t.Context(), connect.NewRequest(&concordv1.TransferLeadershipRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if tr.Msg.GetLeaderId() == old {
		t.Errorf("TransferLeadership: leader still %s", old)
	}
	now := c.Node(c.WaitLeader(leaderTimeout)).ID()
	if now == old {
		t.Errorf("leader is still %s after the transfer", old)
	}
	ms, err := cl.Members(t.Context(), connect.NewRequest(&concordv1.MembersRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]concordv1.MemberState{}
	for _, m := range ms.Msg.GetMembers() {
		states[m.GetId()] = m.GetState()
	}
	if len(states) != 3 || states[now] != concordv1.MemberState_MEMBER_STATE_LEADER {
		t.Errorf("members after the transfer to %s: %v", now, states)
	}
	_, err = cl.RemoveMember(t.Context(), connect.NewRequest(&concordv1.RemoveMemberRequest{Id: "no-such-member"}))
	if connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("RemoveMember(no-such-member) = %v, want not_found", err)
	}

	// The same over REST: the leader's view has every member's state and
	// last contact.
	var tr2 struct {
		LeaderID string `json:"leader_id"`
	}
	do(t, http.MethodPost, base+"/api/v1/cluster/transfer-leadership", fmt.Sprintf(`{"id": %q}`, old)).ok(t, &tr2)
	if tr2.LeaderID != old {
		t.Errorf("REST transfer to %s: leader %q", old, tr2.LeaderID)
	}
	type restMember struct {
		ID            string `json:"id"`
		State         string `json:"state"`
		LastContactMs *int64 `json:"last_contact_ms"`
		UnreachableMs int64  `json:"unreachable_ms"`
	}
	// A new leader knows a follower's state once it has reached it: poll.
	var problems []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var got struct {
			Members []restMember `json:"members"`
		}
		do(t, http.MethodGet, base+"/api/v1/cluster/members", "").ok(t, &got)
		problems = nil
		if len(got.Members) != 3 {
			problems = append(problems, fmt.Sprintf("%d members", len(got.Members)))
		}
		for _, m := range got.Members {
			want := "follower"
			if m.ID == old {
				want = "leader"
			}
			if m.State != want || m.LastContactMs == nil || m.UnreachableMs != 0 {
				problems = append(problems, fmt.Sprintf("member %s: state %q last contact %v unreachable %d ms, want %s, a last contact, 0",
					m.ID, m.State, m.LastContactMs, m.UnreachableMs, want))
			}
		}
		if len(problems) == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, p := range problems {
		t.Error("REST members:", p)
	}
	if r := do(t, http.MethodDelete, base+"/api/v1/cluster/members/no-such-member", ""); r.status != http.StatusNotFound {
		t.Errorf("REST remove no-such-member: %d %s", r.status, r.body)
	}
}
