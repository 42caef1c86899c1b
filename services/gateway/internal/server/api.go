package server

import (
	"encoding/json"
	"strconv"
)

// The REST API's JSON documents. The routes in routes.go name them as their
// request and response types, and the OpenAPI document is generated from
// them (openapi.go), so the Go types are the only description of the JSON.
//
// Conventions the generator relies on: a field without omitempty or
// omitzero is required; no other field is allowed (unknown request fields
// are rejected); json.RawMessage is any JSON value.

// PutRequest is the body of PUT /api/v1/kv/{key}.
type PutRequest struct {
	Value         json.RawMessage `json:"value" doc:"the value: any JSON (null included)"`
	TTL           int64           `json:"ttl,omitempty" doc:"seconds until the key expires; 0 or absent: never" min:"0" max:"315360000"`
	Compress      *bool           `json:"compress,omitempty" doc:"true forces compression, false disables it; absent: compress values above the server's threshold"`
	IfAbsent      bool            `json:"if_absent,omitempty" doc:"write only if the key does not exist (else 409)"`
	IfModRevision uint64          `json:"if_mod_revision,omitempty" doc:"write only if the key's mod_revision is this (else 409)"`
}

// WriteResult answers PUT /api/v1/kv/{key}.
type WriteResult struct {
	Key      string `json:"key"`
	Revision uint64 `json:"revision" doc:"the revision that applied the write"`
}

// Entry is a stored key as REST shows it. A value written as JSON comes back
// as that JSON; any other value as base64, with encoding and content_type.
type Entry struct {
	Key            string          `json:"key"`
	Value          json.RawMessage `json:"value,omitempty" doc:"the value: the JSON written, or a base64 string when encoding is base64; absent with keys_only"`
	Encoding       string          `json:"encoding,omitempty" doc:"base64 when the value was not written as JSON" enum:"base64"`
	ContentType    string          `json:"content_type,omitempty" doc:"the content type of a base64 value"`
	Revision       uint64          `json:"revision" doc:"the key's mod_revision: pass it as if_mod_revision"`
	CreateRevision uint64          `json:"create_revision"`
	ModRevision    uint64          `json:"mod_revision"`
	Version        uint64          `json:"version" doc:"writes since the key was created"`
	TTL            TTL             `json:"ttl,omitzero" doc:"remaining seconds, null if the key does not expire; only with with_ttl=true"`
}

// DeleteResult answers DELETE /api/v1/kv/{key}.
type DeleteResult struct {
	Key      string `json:"key"`
	Deleted  bool   `json:"deleted" doc:"false if there was no such key"`
	Revision uint64 `json:"revision"`
}

// TouchRequest is the body of POST /api/v1/kv/{key}/touch.
type TouchRequest struct {
	TTL *int64 `json:"ttl" doc:"seconds from now until the key expires; 0 removes the expiry" min:"0" max:"315360000"`
}

// TouchResult answers POST /api/v1/kv/{key}/touch.
type TouchResult struct {
	Key      string `json:"key"`
	TTL      int64  `json:"ttl"`
	Revision uint64 `json:"revision"`
}

// TTLResult answers GET /api/v1/kv/{key}/ttl.
type TTLResult struct {
	Key string `json:"key"`
	TTL TTL    `json:"ttl" doc:"remaining seconds, null if the key does not expire"`
}

// BulkPutItem is one key of a bulk put.
type BulkPutItem struct {
	Key      string          `json:"key"`
	Value    json.RawMessage `json:"value" doc:"any JSON"`
	TTL      int64           `json:"ttl,omitempty" min:"0" max:"315360000"`
	Compress *bool           `json:"compress,omitempty"`
}

// BulkPutRequest is the body of POST /api/v1/kv/bulk.
type BulkPutRequest struct {
	Items []BulkPutItem `json:"items" min:"1" max:"500"`
}

// BulkPutResult answers POST /api/v1/kv/bulk.
type BulkPutResult struct {
	Count    int    `json:"count"`
	Revision uint64 `json:"revision" doc:"every item was written at this revision"`
}

// KeysRequest is the body of POST /api/v1/kv/bulk/get and /bulk/delete.
type KeysRequest struct {
	Keys []string `json:"keys" min:"1" max:"500"`
}

// BulkGetResult answers POST /api/v1/kv/bulk/get.
type BulkGetResult struct {
	Items   []Entry  `json:"items" doc:"the keys found, in request order"`
	Missing []string `json:"missing"`
}

// BulkDeleteResult answers POST /api/v1/kv/bulk/delete.
type BulkDeleteResult struct {
	Deleted  uint64 `json:"deleted" doc:"how many of the keys existed"`
	Revision uint64 `json:"revision"`
}

// BulkTouchItem is one key of a bulk touch.
type BulkTouchItem struct {
	Key string `json:"key"`
	TTL *int64 `json:"ttl" min:"0" max:"315360000"`
}

// BulkTouchRequest is the body of POST /api/v1/kv/bulk/touch.
type BulkTouchRequest struct {
	Items []BulkTouchItem `json:"items" min:"1" max:"500"`
}

// BulkTouchResult answers POST /api/v1/kv/bulk/touch.
type BulkTouchResult struct {
	Missing  []string `json:"missing" doc:"keys that do not exist (left alone)"`
	Revision uint64   `json:"revision"`
}

// ListResult answers GET /api/v1/kv.
type ListResult struct {
	Items      []Entry `json:"items" doc:"in key order"`
	NextCursor string  `json:"next_cursor" doc:"pass as cursor for the next page; empty on the last page"`
}

// Member is one replica of the Raft configuration, as the answering replica
// (the leader, when there is one) sees it.
type Member struct {
	ID            string `json:"id"`
	RaftAddress   string `json:"raft_address"`
	APIAddress    string `json:"api_address" doc:"empty until the replica has registered"`
	Voter         bool   `json:"voter" doc:"false for a non-voter (receives data, does not count for quorum)"`
	Leader        bool   `json:"leader"`
	State         string `json:"state" doc:"leader, follower, or unknown (the answering replica is a follower, or it leads and cannot reach the member)" enum:"leader,follower,unknown"`
	LastContactMs *int64 `json:"last_contact_ms,omitempty" doc:"milliseconds since the answering replica last heard from the member over Raft (0 for itself); absent when unknown"`
	UnreachableMs int64  `json:"unreachable_ms" doc:"how long the leader has been failing to reach the member; 0 while reachable"`
}

// MembersResult answers GET /api/v1/cluster/members.
type MembersResult struct {
	Members []Member `json:"members"`
}

// AddMemberRequest is the body of POST /api/v1/cluster/members.
type AddMemberRequest struct {
	ID          string `json:"id" doc:"the new replica's node id"`
	RaftAddress string `json:"raft_address" doc:"host:port peers dial for Raft"`
	APIAddress  string `json:"api_address,omitempty" doc:"the replica's API base URL, e.g. http://10.0.0.4:7100 (it also registers it itself)"`
	Nonvoter    bool   `json:"nonvoter,omitempty" doc:"add as a non-voter (or keep a non-voter one); false adds or promotes to voter"`
}

// RemoveMemberResult answers DELETE /api/v1/cluster/members/{id}.
type RemoveMemberResult struct {
	ID      string `json:"id"`
	Removed bool   `json:"removed"`
}

// TransferLeadershipRequest is the optional body of POST
// /api/v1/cluster/transfer-leadership.
type TransferLeadershipRequest struct {
	ID string `json:"id,omitempty" doc:"the voter to hand leadership to; absent: the most up-to-date one"`
}

// TransferLeadershipResult answers POST /api/v1/cluster/transfer-leadership.
type TransferLeadershipResult struct {
	LeaderID string `json:"leader_id" doc:"the new leader"`
}

// StorageStats is how much a replica stores.
type StorageStats struct {
	Size        uint64 `json:"size" doc:"keys stored"`
	MemoryBytes uint64 `json:"memory_bytes"`
}

// Status answers GET /api/v1/status: the cluster as the leader sees it.
type Status struct {
	NodeID           string       `json:"node_id" doc:"the replica that answered"`
	State            string       `json:"state" doc:"leader, follower or candidate"`
	Term             uint64       `json:"term"`
	CommitIndex      uint64       `json:"commit_index"`
	AppliedIndex     uint64       `json:"applied_index"`
	LeaderID         string       `json:"leader_id" doc:"empty while there is no leader"`
	LeaderAPIAddress string       `json:"leader_api_address"`
	Members          []Member     `json:"members"`
	Storage          StorageStats `json:"storage"`
}

// Health answers GET /health and /api/v1/health.
type Health struct {
	Status string `json:"status" enum:"ok"`
}

// Ready answers GET /ready.
type Ready struct {
	Status string `json:"status" enum:"ready"`
	Leader string `json:"leader" doc:"the leader's node id"`
}

// TTL is an optional "ttl" in a response: omitted unless set, null when the
// key does not expire.
type TTL struct {
	set     bool
	seconds *int64
}

func ttlOf(seconds *int64) TTL { return TTL{set: true, seconds: seconds} }

// IsZero makes omitzero leave the field out when it was not asked for.
func (t TTL) IsZero() bool { return !t.set }

// MarshalJSON writes the seconds or null.
func (t TTL) MarshalJSON() ([]byte, error) {
	if t.seconds == nil {
		return []byte("null"), nil
	}
	return strconv.AppendInt(nil, *t.seconds, 10), nil
}
