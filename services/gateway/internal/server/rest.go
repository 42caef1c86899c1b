package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"connectrpc.com/connect"
	concordv1 "github.com/concord-kv/concord/proto/gen/go/concord/v1"
	"github.com/concord-kv/concord/proto/gen/go/concord/v1/concordv1connect"
	"github.com/concord-kv/concord/services/gateway/internal/httperror"
)

// readyTimeout bounds the Status call behind GET /ready.
const readyTimeout = 2 * time.Second

// putKey: PUT /api/v1/kv/{key} {"value": <any JSON>, "ttl", "compress", "if_absent", "if_mod_revision"}.
func (s *Server) putKey(r *http.Request) (reply, error) {
	key := r.PathValue(paramKey.name)
	var b PutRequest
	if err := decodeBody(r, &b); err != nil {
		return reply{}, err
	}
	if b.Value == nil {
		return reply{}, invalid(`field "value" is required`)
	}
	res, err := invoke(r.Context(), s, concordv1connect.KVServicePutProcedure, s.kv.Put, &concordv1.PutRequest{
		Key: key, Value: b.Value, TtlSeconds: b.TTL, ContentType: JSONContentType,
		Compress: compressMode(b.Compress), IfAbsent: b.IfAbsent, IfModRevision: b.IfModRevision,
	})
	if err != nil {
		return reply{}, err
	}
	return reply{res.GetHeader(), WriteResult{Key: key, Revision: res.GetHeader().GetRevision()}}, nil
}

// getKey: GET /api/v1/kv/{key}?consistency=&with_ttl=&min_revision=.
func (s *Server) getKey(r *http.Request) (reply, error) {
	q := queryParams{r: r}
	req := &concordv1.GetRequest{
		Key: r.PathValue(paramKey.name), Consistency: q.consistency(),
		WithTtl: q.bool(paramWithTTL), MinRevision: q.uint(paramMinRevision, 64),
	}
	if q.err != nil {
		return reply{}, q.err
	}
	res, err := invoke(r.Context(), s, concordv1connect.KVServiceGetProcedure, s.kv.Get, req)
	if err != nil {
		return reply{}, err
	}
	return reply{res.GetHeader(), toEntry(res.GetKv(), true, req.GetWithTtl())}, nil
}

// deleteKey: DELETE /api/v1/kv/{key}?if_mod_revision=.
func (s *Server) deleteKey(r *http.Request) (reply, error) {
	q := queryParams{r: r}
	req := &concordv1.DeleteRequest{Key: r.PathValue(paramKey.name), IfModRevision: q.uint(paramIfModRevision, 64)}
	if q.err != nil {
		return reply{}, q.err
	}
	res, err := invoke(r.Context(), s, concordv1connect.KVServiceDeleteProcedure, s.kv.Delete, req)
	if err != nil {
		return reply{}, err
	}
	return reply{res.GetHeader(), DeleteResult{Key: req.GetKey(), Deleted: res.GetDeleted(), Revision: res.GetHeader().GetRevision()}}, nil
}

// touchKey: POST /api/v1/kv/{key}/touch {"ttl": seconds} (0 removes the expiry).
func (s *Server) touchKey(r *http.Request) (reply, error) {
	key := r.PathValue(paramKey.name)
	var b TouchRequest
	if err := decodeBody(r, &b); err != nil {
		return reply{}, err
	}
	if b.TTL == nil {
		return reply{}, invalid(`field "ttl" is required`)
	}
	res, err := invoke(r.Context(), s, concordv1connect.KVServiceTouchProcedure, s.kv.Touch, &concordv1.TouchRequest{Key: key, TtlSeconds: *b.TTL})
	if err != nil {
		return reply{}, err
	}
	return reply{res.GetHeader(), TouchResult{Key: key, TTL: *b.TTL, Revision: res.GetHeader().GetRevision()}}, nil
}

// getTTL: GET /api/v1/kv/{key}/ttl → {"key", "ttl"} (null when the key does not expire).
func (s *Server) getTTL(r *http.Request) (reply, error) {
	q := queryParams{r: r}
	req := &concordv1.GetTTLRequest{Key: r.PathValue(paramKey.name), Consistency: q.consistency()}
	if q.err != nil {
		return reply{}, q.err
	}
	res, err := invoke(r.Context(), s, concordv1connect.KVServiceGetTTLProcedure, s.kv.GetTTL, req)
	if err != nil {
		return reply{}, err
	}
	return reply{res.GetHeader(), TTLResult{Key: req.GetKey(), TTL: ttlOf(res.TtlSeconds)}}, nil
}

// bulkPut: POST /api/v1/kv/bulk {"items": [{"key", "value", "ttl"}]}, atomically.
func (s *Server) bulkPut(r *http.Request) (reply, error) {
	var b BulkPutRequest
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
	res, err := invoke(r.Context(), s, concordv1connect.KVServiceBatchPutProcedure, s.kv.BatchPut, req)
	if err != nil {
		return reply{}, err
	}
	return reply{res.GetHeader(), BulkPutResult{Count: len(req.GetItems()), Revision: res.GetHeader().GetRevision()}}, nil
}

// bulkGet: POST /api/v1/kv/bulk/get {"keys": [...]}?consistency=&with_ttl=&min_revision=.
func (s *Server) bulkGet(r *http.Request) (reply, error) {
	q := queryParams{r: r}
	req := &concordv1.BatchGetRequest{
		Consistency: q.consistency(), WithTtl: q.bool(paramWithTTL), MinRevision: q.uint(paramMinRevision, 64),
	}
	if q.err != nil {
		return reply{}, q.err
	}
	var b KeysRequest
	if err := decodeBody(r, &b); err != nil {
		return reply{}, err
	}
	req.Keys = b.Keys
	res, err := invoke(r.Context(), s, concordv1connect.KVServiceBatchGetProcedure, s.kv.BatchGet, req)
	if err != nil {
		return reply{}, err
	}
	items := make([]Entry, 0, len(res.GetKvs()))
	for _, kv := range res.GetKvs() {
		items = append(items, toEntry(kv, true, req.GetWithTtl()))
	}
	return reply{res.GetHeader(), BulkGetResult{Items: items, Missing: nonNil(res.GetMissing())}}, nil
}

// bulkDelete: POST /api/v1/kv/bulk/delete {"keys": [...]}, atomically.
func (s *Server) bulkDelete(r *http.Request) (reply, error) {
	var b KeysRequest
	if err := decodeBody(r, &b); err != nil {
		return reply{}, err
	}
	res, err := invoke(r.Context(), s, concordv1connect.KVServiceBatchDeleteProcedure, s.kv.BatchDelete, &concordv1.BatchDeleteRequest{Keys: b.Keys})
	if err != nil {
		return reply{}, err
	}
	return reply{res.GetHeader(), BulkDeleteResult{Deleted: res.GetDeleted(), Revision: res.GetHeader().GetRevision()}}, nil
}

// bulkTouch: POST /api/v1/kv/bulk/touch {"items": [{"key", "ttl"}]}; missing keys are reported.
func (s *Server) bulkTouch(r *http.Request) (reply, error) {
	var b BulkTouchRequest
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
	res, err := invoke(r.Context(), s, concordv1connect.KVServiceBatchTouchProcedure, s.kv.BatchTouch, req)
	if err != nil {
		return reply{}, err
	}
	return reply{res.GetHeader(), BulkTouchResult{Missing: nonNil(res.GetMissing()), Revision: res.GetHeader().GetRevision()}}, nil
}

// list: GET /api/v1/kv?prefix=&limit=&cursor=&keys_only=&with_ttl=&consistency=
// → {"items": [...], "next_cursor": ""} in key order; next_cursor is empty
// on the last page.
func (s *Server) list(r *http.Request) (reply, error) {
	q := queryParams{r: r}
	req := &concordv1.ListRequest{
		Prefix: q.string(paramPrefix), Limit: uint32(q.uint(paramLimit, 32)), Cursor: q.string(paramCursor), //nolint:gosec // parsed as 32 bits
		KeysOnly: q.bool(paramKeysOnly), WithTtl: q.bool(paramWithTTL), Consistency: q.consistency(),
	}
	if q.err != nil {
		return reply{}, q.err
	}
	res, err := invoke(r.Context(), s, concordv1connect.KVServiceListProcedure, s.kv.List, req)
	if err != nil {
		return reply{}, err
	}
	items := make([]Entry, 0, len(res.GetKvs()))
	for _, kv := range res.GetKvs() {
		items = append(items, toEntry(kv, !req.GetKeysOnly(), req.GetWithTtl()))
	}
	return reply{res.GetHeader(), ListResult{Items: items, NextCursor: res.GetNextCursor()}}, nil
}

// status: GET /api/v1/status, as seen by whichever replica answers.
func (s *Server) status(r *http.Request) (reply, error) {
	res, err := invoke(r.Context(), s, concordv1connect.ClusterServiceStatusProcedure, s.cluster.Status, &concordv1.StatusRequest{})
	if err != nil {
		return reply{}, err
	}
	b := Status{
		NodeID: res.GetNodeId(), State: res.GetState(), Term: res.GetTerm(),
		CommitIndex: res.GetCommitIndex(), AppliedIndex: res.GetAppliedIndex(),
		LeaderID: res.GetLeaderId(), LeaderAPIAddress: res.GetLeaderApiAddress(),
		Members: make([]Member, 0, len(res.GetMembers())),
		Storage: StorageStats{Size: res.GetStorage().GetSize(), MemoryBytes: res.GetStorage().GetMemoryBytes()},
	}
	for _, m := range res.GetMembers() {
		b.Members = append(b.Members, toMember(m))
	}
	return reply{res.GetHeader(), b}, nil
}

// memberStates names MemberState values as REST shows them.
var memberStates = map[concordv1.MemberState]string{
	concordv1.MemberState_MEMBER_STATE_LEADER:   "leader",
	concordv1.MemberState_MEMBER_STATE_FOLLOWER: "follower",
}

func toMember(m *concordv1.Member) Member {
	state, ok := memberStates[m.GetState()]
	if !ok {
		state = "unknown"
	}
	return Member{
		ID: m.GetId(), RaftAddress: m.GetRaftAddress(), APIAddress: m.GetApiAddress(),
		Voter: m.GetSuffrage() == concordv1.Suffrage_SUFFRAGE_VOTER, Leader: m.GetLeader(),
		State: state, LastContactMs: m.LastContactMs, UnreachableMs: m.GetUnreachableMs(),
	}
}

// members: GET /api/v1/cluster/members.
func (s *Server) members(r *http.Request) (reply, error) {
	res, err := invoke(r.Context(), s, concordv1connect.ClusterServiceMembersProcedure, s.cluster.Members, &concordv1.MembersRequest{})
	if err != nil {
		return reply{}, err
	}
	out := MembersResult{Members: make([]Member, 0, len(res.GetMembers()))}
	for _, m := range res.GetMembers() {
		out.Members = append(out.Members, toMember(m))
	}
	return reply{body: out}, nil
}

// addMember: POST /api/v1/cluster/members {"id", "raft_address", "api_address", "nonvoter"}.
func (s *Server) addMember(r *http.Request) (reply, error) {
	var b AddMemberRequest
	if err := decodeBody(r, &b); err != nil {
		return reply{}, err
	}
	res, err := invoke(r.Context(), s, concordv1connect.ClusterServiceAddMemberProcedure, s.cluster.AddMember, &concordv1.AddMemberRequest{
		Id: b.ID, RaftAddress: b.RaftAddress, ApiAddress: b.APIAddress, Nonvoter: b.Nonvoter,
	})
	if err != nil {
		return reply{}, err
	}
	return reply{body: toMember(res.GetMember())}, nil
}

// removeMember: DELETE /api/v1/cluster/members/{id}?if_unreachable_for=seconds.
func (s *Server) removeMember(r *http.Request) (reply, error) {
	q := queryParams{r: r}
	req := &concordv1.RemoveMemberRequest{
		Id:                      r.PathValue(paramMemberID.name),
		IfUnreachableForSeconds: int64(q.uint(paramIfUnreachableFor, 31)), //nolint:gosec // parsed as 31 bits
	}
	if q.err != nil {
		return reply{}, q.err
	}
	if _, err := invoke(r.Context(), s, concordv1connect.ClusterServiceRemoveMemberProcedure, s.cluster.RemoveMember, req); err != nil {
		return reply{}, err
	}
	return reply{body: RemoveMemberResult{ID: req.GetId(), Removed: true}}, nil
}

// transferLeadership: POST /api/v1/cluster/transfer-leadership {"id"} (body optional).
func (s *Server) transferLeadership(r *http.Request) (reply, error) {
	var b TransferLeadershipRequest
	if err := decodeOptionalBody(r, &b); err != nil {
		return reply{}, err
	}
	res, err := invoke(r.Context(), s, concordv1connect.ClusterServiceTransferLeadershipProcedure, s.cluster.TransferLeadership,
		&concordv1.TransferLeadershipRequest{Id: b.ID})
	if err != nil {
		return reply{}, err
	}
	return reply{body: TransferLeadershipResult{LeaderID: res.GetLeaderId()}}, nil
}

// health: GET /health and /api/v1/health: the gateway process is up.
func (s *Server) health(*http.Request) (reply, error) {
	return reply{body: Health{Status: "ok"}}, nil
}

// ready: GET /ready: 200 once a replica reports a leader, 503 until then.
func (s *Server) ready(r *http.Request) (reply, error) {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	res, err := invoke(ctx, s, concordv1connect.ClusterServiceStatusProcedure, s.cluster.Status, &concordv1.StatusRequest{})
	if err != nil {
		return reply{}, connect.NewError(connect.CodeUnavailable, fmt.Errorf("cluster not ready: %s", httperror.Message(err)))
	}
	if res.GetLeaderId() == "" {
		return reply{}, connect.NewError(connect.CodeUnavailable, fmt.Errorf("cluster not ready: no leader known to %s", res.GetNodeId()))
	}
	return reply{res.GetHeader(), Ready{Status: "ready", Leader: res.GetLeaderId()}}, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// openAPI: GET /api/v1/openapi.json, the document generated from the routes.
func (s *Server) openAPI(*http.Request) (reply, error) {
	return reply{body: json.RawMessage(s.openapi)}, nil
}
