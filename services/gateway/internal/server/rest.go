package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"connectrpc.com/connect"
	concordv1 "github.com/concord-kv/concord/proto/gen/go/concord/v1"
	"github.com/concord-kv/concord/services/gateway/internal/httperror"
)

// readyTimeout bounds the Status call behind GET /ready.
const readyTimeout = 2 * time.Second

type putBody struct {
	Value         json.RawMessage `json:"value"`
	TTL           int64           `json:"ttl"`
	Compress      *bool           `json:"compress"`
	IfAbsent      bool            `json:"if_absent"`
	IfModRevision uint64          `json:"if_mod_revision"`
}

type keyRevision struct {
	Key      string `json:"key"`
	Revision uint64 `json:"revision"`
}

// putKey: PUT /api/v1/kv/{key} {"value": <any JSON>, "ttl", "compress", "if_absent", "if_mod_revision"}.
func (s *Server) putKey(r *http.Request) (reply, error) {
	key := r.PathValue("key")
	var b putBody
	if err := decodeBody(r, &b); err != nil {
		return reply{}, err
	}
	if b.Value == nil {
		return reply{}, invalid(`field "value" is required`)
	}
	res, err := invoke(r.Context(), s, s.kv.Put, &concordv1.PutRequest{
		Key: key, Value: b.Value, TtlSeconds: b.TTL, ContentType: JSONContentType,
		Compress: compressMode(b.Compress), IfAbsent: b.IfAbsent, IfModRevision: b.IfModRevision,
	})
	if err != nil {
		return reply{}, err
	}
	return reply{res.GetHeader(), keyRevision{Key: key, Revision: res.GetHeader().GetRevision()}}, nil
}

// getKey: GET /api/v1/kv/{key}?consistency=&with_ttl=&min_revision=.
func (s *Server) getKey(r *http.Request) (reply, error) {
	q := queryParams{r: r}
	req := &concordv1.GetRequest{
		Key: r.PathValue("key"), Consistency: q.consistency(),
		WithTtl: q.bool("with_ttl"), MinRevision: q.uint("min_revision", 64),
	}
	if q.err != nil {
		return reply{}, q.err
	}
	res, err := invoke(r.Context(), s, s.kv.Get, req)
	if err != nil {
		return reply{}, err
	}
	return reply{res.GetHeader(), toItem(res.GetKv(), true, req.GetWithTtl())}, nil
}

// deleteKey: DELETE /api/v1/kv/{key}?if_mod_revision=.
func (s *Server) deleteKey(r *http.Request) (reply, error) {
	q := queryParams{r: r}
	req := &concordv1.DeleteRequest{Key: r.PathValue("key"), IfModRevision: q.uint("if_mod_revision", 64)}
	if q.err != nil {
		return reply{}, q.err
	}
	res, err := invoke(r.Context(), s, s.kv.Delete, req)
	if err != nil {
		return reply{}, err
	}
	return reply{res.GetHeader(), struct {
		Key      string `json:"key"`
		Deleted  bool   `json:"deleted"`
		Revision uint64 `json:"revision"`
	}{req.GetKey(), res.GetDeleted(), res.GetHeader().GetRevision()}}, nil
}

type ttlBody struct {
	TTL *int64 `json:"ttl"`
}

// touchKey: POST /api/v1/kv/{key}/touch {"ttl": seconds} (0 removes the expiry).
func (s *Server) touchKey(r *http.Request) (reply, error) {
	key := r.PathValue("key")
	var b ttlBody
	if err := decodeBody(r, &b); err != nil {
		return reply{}, err
	}
	if b.TTL == nil {
		return reply{}, invalid(`field "ttl" is required`)
	}
	res, err := invoke(r.Context(), s, s.kv.Touch, &concordv1.TouchRequest{Key: key, TtlSeconds: *b.TTL})
	if err != nil {
		return reply{}, err
	}
	return reply{res.GetHeader(), struct {
		Key      string `json:"key"`
		TTL      int64  `json:"ttl"`
		Revision uint64 `json:"revision"`
	}{key, *b.TTL, res.GetHeader().GetRevision()}}, nil
}

// getTTL: GET /api/v1/kv/{key}/ttl → {"key", "ttl"} (null when the key does not expire).
func (s *Server) getTTL(r *http.Request) (reply, error) {
	q := queryParams{r: r}
	req := &concordv1.GetTTLRequest{Key: r.PathValue("key"), Consistency: q.consistency()}
	if q.err != nil {
		return reply{}, q.err
	}
	res, err := invoke(r.Context(), s, s.kv.GetTTL, req)
	if err != nil {
		return reply{}, err
	}
	return reply{res.GetHeader(), struct {
		Key string   `json:"key"`
		TTL ttlField `json:"ttl"`
	}{req.GetKey(), ttlOf(res.TtlSeconds)}}, nil
}

type bulkPutBody struct {
	Items []struct {
		Key      string          `json:"key"`
		Value    json.RawMessage `json:"value"`
		TTL      int64           `json:"ttl"`
		Compress *bool           `json:"compress"`
	} `json:"items"`
}

// bulkPut: POST /api/v1/kv/bulk {"items": [{"key", "value", "ttl"}]}, atomically.
func (s *Server) bulkPut(r *http.Request) (reply, error) {
	var b bulkPutBody
	if err := decodeBody(r, &b); err != nil {
		return reply{}, err
	}
	req := &concordv1.BatchPutRequest{Items: make([]*concordv1.PutItem, len(b.Items))}
	for i, it := range b.Items {
		if it.Value == nil {
			return reply{}, invalid(`items[%d]: field "value" is required`, i)
		}
		req.Items[i] = &concordv1.PutItem{
			Key: it.Key, Value: it.Value, TtlSeconds: it.TTL,
			ContentType: JSONContentType, Compress: compressMode(it.Compress),
		}
	}
	res, err := invoke(r.Context(), s, s.kv.BatchPut, req)
	if err != nil {
		return reply{}, err
	}
	return reply{res.GetHeader(), struct {
		Count    int    `json:"count"`
		Revision uint64 `json:"revision"`
	}{len(req.GetItems()), res.GetHeader().GetRevision()}}, nil
}

type keysBody struct {
	Keys []string `json:"keys"`
}

// bulkGet: POST /api/v1/kv/bulk/get {"keys": [...]}?consistency=&with_ttl=&min_revision=.
func (s *Server) bulkGet(r *http.Request) (reply, error) {
	q := queryParams{r: r}
	req := &concordv1.BatchGetRequest{
		Consistency: q.consistency(), WithTtl: q.bool("with_ttl"), MinRevision: q.uint("min_revision", 64),
	}
	if q.err != nil {
		return reply{}, q.err
	}
	var b keysBody
	if err := decodeBody(r, &b); err != nil {
		return reply{}, err
	}
	req.Keys = b.Keys
	res, err := invoke(r.Context(), s, s.kv.BatchGet, req)
	if err != nil {
		return reply{}, err
	}
	items := make([]item, 0, len(res.GetKvs()))
	for _, kv := range res.GetKvs() {
		items = append(items, toItem(kv, true, req.GetWithTtl()))
	}
	return reply{res.GetHeader(), struct {
		Items   []item   `json:"items"`
		Missing []string `json:"missing"`
	}{items, nonNil(res.GetMissing())}}, nil
}

// bulkDelete: POST /api/v1/kv/bulk/delete {"keys": [...]}, atomically.
func (s *Server) bulkDelete(r *http.Request) (reply, error) {
	var b keysBody
	if err := decodeBody(r, &b); err != nil {
		return reply{}, err
	}
	res, err := invoke(r.Context(), s, s.kv.BatchDelete, &concordv1.BatchDeleteRequest{Keys: b.Keys})
	if err != nil {
		return reply{}, err
	}
	return reply{res.GetHeader(), struct {
		Deleted  uint64 `json:"deleted"`
		Revision uint64 `json:"revision"`
	}{res.GetDeleted(), res.GetHeader().GetRevision()}}, nil
}

type bulkTouchBody struct {
	Items []struct {
		Key string `json:"key"`
		TTL *int64 `json:"ttl"`
	} `json:"items"`
}

// bulkTouch: POST /api/v1/kv/bulk/touch {"items": [{"key", "ttl"}]}; missing keys are reported.
func (s *Server) bulkTouch(r *http.Request) (reply, error) {
	var b bulkTouchBody
	if err := decodeBody(r, &b); err != nil {
		return reply{}, err
	}
	req := &concordv1.BatchTouchRequest{Items: make([]*concordv1.TouchItem, len(b.Items))}
	for i, it := range b.Items {
		if it.TTL == nil {
			return reply{}, invalid(`items[%d]: field "ttl" is required`, i)
		}
		req.Items[i] = &concordv1.TouchItem{Key: it.Key, TtlSeconds: *it.TTL}
	}
	res, err := invoke(r.Context(), s, s.kv.BatchTouch, req)
	if err != nil {
		return reply{}, err
	}
	return reply{res.GetHeader(), struct {
		Missing  []string `json:"missing"`
		Revision uint64   `json:"revision"`
	}{nonNil(res.GetMissing()), res.GetHeader().GetRevision()}}, nil
}

// list: GET /api/v1/kv?prefix=&limit=&cursor=&keys_only=&with_ttl=&consistency=
// → {"items": [...], "next_cursor": ""} in key order; next_cursor is empty
// on the last page.
func (s *Server) list(r *http.Request) (reply, error) {
	q := queryParams{r: r}
	req := &concordv1.ListRequest{
		Prefix: q.string("prefix"), Limit: uint32(q.uint("limit", 32)), Cursor: q.string("cursor"),
		KeysOnly: q.bool("keys_only"), WithTtl: q.bool("with_ttl"), Consistency: q.consistency(),
	}
	if q.err != nil {
		return reply{}, q.err
	}
	res, err := invoke(r.Context(), s, s.kv.List, req)
	if err != nil {
		return reply{}, err
	}
	items := make([]item, 0, len(res.GetKvs()))
	for _, kv := range res.GetKvs() {
		items = append(items, toItem(kv, !req.GetKeysOnly(), req.GetWithTtl()))
	}
	return reply{res.GetHeader(), struct {
		Items      []item `json:"items"`
		NextCursor string `json:"next_cursor"`
	}{items, res.GetNextCursor()}}, nil
}

type member struct {
	ID          string `json:"id"`
	RaftAddress string `json:"raft_address"`
	APIAddress  string `json:"api_address"`
	Voter       bool   `json:"voter"`
	Leader      bool   `json:"leader"`
}

type statusBody struct {
	NodeID           string   `json:"node_id"`
	State            string   `json:"state"`
	Term             uint64   `json:"term"`
	CommitIndex      uint64   `json:"commit_index"`
	AppliedIndex     uint64   `json:"applied_index"`
	LeaderID         string   `json:"leader_id"`
	LeaderAPIAddress string   `json:"leader_api_address"`
	Members          []member `json:"members"`
	Storage          struct {
		Size        uint64 `json:"size"`
		MemoryBytes uint64 `json:"memory_bytes"`
	} `json:"storage"`
}

// status: GET /api/v1/status, as seen by whichever replica answers.
func (s *Server) status(r *http.Request) (reply, error) {
	res, err := invoke(r.Context(), s, s.cluster.Status, &concordv1.StatusRequest{})
	if err != nil {
		return reply{}, err
	}
	b := statusBody{
		NodeID: res.GetNodeId(), State: res.GetState(), Term: res.GetTerm(),
		CommitIndex: res.GetCommitIndex(), AppliedIndex: res.GetAppliedIndex(),
		LeaderID: res.GetLeaderId(), LeaderAPIAddress: res.GetLeaderApiAddress(),
		Members: make([]member, 0, len(res.GetMembers())),
	}
	for _, m := range res.GetMembers() {
		b.Members = append(b.Members, member{
			ID: m.GetId(), RaftAddress: m.GetRaftAddress(), APIAddress: m.GetApiAddress(),
			Voter: m.GetSuffrage() == concordv1.Suffrage_SUFFRAGE_VOTER, Leader: m.GetLeader(),
		})
	}
	b.Storage.Size, b.Storage.MemoryBytes = res.GetStorage().GetSize(), res.GetStorage().GetMemoryBytes()
	return reply{res.GetHeader(), b}, nil
}

// health: GET /health and /api/v1/health: the gateway process is up.
func (s *Server) health(*http.Request) (reply, error) {
	return reply{body: map[string]string{"status": "ok"}}, nil
}

// ready: GET /ready: 200 once a replica reports a leader, 503 until then.
func (s *Server) ready(r *http.Request) (reply, error) {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	res, err := invoke(ctx, s, s.cluster.Status, &concordv1.StatusRequest{})
	if err != nil {
		return reply{}, connect.NewError(connect.CodeUnavailable, fmt.Errorf("cluster not ready: %s", httperror.Message(err)))
	}
	if res.GetLeaderId() == "" {
		return reply{}, connect.NewError(connect.CodeUnavailable, fmt.Errorf("cluster not ready: no leader known to %s", res.GetNodeId()))
	}
	return reply{res.GetHeader(), map[string]string{"status": "ready", "leader": res.GetLeaderId()}}, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
