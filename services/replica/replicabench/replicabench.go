// Package replicabench exposes the replica's state machine to in-process
// micro-benchmarks (concord-bench fsm and this package's Go benchmarks):
// commands are encoded the way the replica's API layer encodes them, then
// applied as Raft log entries straight to the FSM, with no Raft, network or
// disk in between.
//
// It is for measuring only; nothing in the replica uses it.
package replicabench

import (
	"errors"
	"fmt"
	"io"
	"time"

	raftv1 "github.com/concord-kv/concord/proto/gen/go/concord/raft/v1"
	"github.com/concord-kv/concord/services/replica/internal/store"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
)

// ErrRejected is returned (wrapped) when the FSM answers a command with a
// result other than OK, such as a failed condition.
var ErrRejected = errors.New("command rejected")

// FSM is one replica state machine plus the log index of the next entry.
// It is not safe for concurrent use by writers (Raft applies from one
// goroutine too); Get and GetMany may run concurrently with each other.
type FSM struct {
	fsm     *store.FSM
	index   uint64
	logs    []*raft.Log // reused between Apply calls
	entries []raft.Log  // backing store of logs
}

// NewFSM returns an empty state machine.
func NewFSM() *FSM {
	return &FSM{fsm: store.NewFSM()}
}

// EncodePut returns the log payload of a put of value under key, with an
// optional TTL and, if ifModRevision is not 0, the CAS condition.
func EncodePut(key string, value []byte, ttl time.Duration, ifModRevision uint64) ([]byte, error) {
	return encode(&raftv1.Command{Op: &raftv1.Command_Put{Put: put(key, value, ttl, ifModRevision)}})
}

// EncodeBatchPut returns the log payload of one bulk put of value under
// every key.
func EncodeBatchPut(keys []string, value []byte) ([]byte, error) {
	puts := make([]*raftv1.Put, len(keys))
	for i, k := range keys {
		puts[i] = put(k, value, 0, 0)
	}
	return encode(&raftv1.Command{Op: &raftv1.Command_BatchPut{BatchPut: &raftv1.BatchPut{Puts: puts}}})
}

func put(key string, value []byte, ttl time.Duration, ifModRevision uint64) *raftv1.Put {
	return &raftv1.Put{Key: key, Value: value, TtlMs: ttl.Milliseconds(), IfModRevision: ifModRevision, OriginalSize: uint64(len(value))}
}

func encode(cmd *raftv1.Command) ([]byte, error) {
	cmd.StampUnixMs = time.Now().UnixMilli()
	b, err := proto.Marshal(cmd)
	if err != nil {
		return nil, fmt.Errorf("encode command: %w", err)
	}
	return b, nil
}

// Apply applies the payloads as consecutive log entries in one ApplyBatch
// call, as Raft does with group commit, and returns an error wrapping
// ErrRejected for the first entry the FSM did not accept.
func (f *FSM) Apply(payloads ...[]byte) error {
	if cap(f.entries) < len(payloads) {
		f.entries = make([]raft.Log, len(payloads))
		f.logs = make([]*raft.Log, len(payloads))
	}
	logs := f.logs[:len(payloads)]
	for i, p := range payloads {
		f.index++
		f.entries[i] = raft.Log{Index: f.index, Term: 1, Type: raft.LogCommand, Data: p}
		logs[i] = &f.entries[i]
	}
	for i, r := range f.fsm.ApplyBatch(logs) {
		res, ok := r.(*raftv1.Result)
		if !ok || res.GetCode() != raftv1.ResultCode_RESULT_CODE_OK {
			return fmt.Errorf("%w: entry %d: %v", ErrRejected, logs[i].Index, r)
		}
	}
	return nil
}

// Get reads key as a leader or eventual read does once the request reaches
// the FSM, and returns its mod revision (0 if missing).
func (f *FSM) Get(key string) uint64 {
	e, _ := f.fsm.Get(key, time.Now().UnixMilli())
	if e == nil {
		return 0
	}
	return e.ModRevision
}

// GetMany reads keys from one consistent view and returns how many exist.
func (f *FSM) GetMany(keys []string) int {
	es, _ := f.fsm.GetMany(keys, time.Now().UnixMilli())
	n := 0
	for _, e := range es {
		if e != nil {
			n++
		}
	}
	return n
}

// Stats returns the number of stored entries and the FSM's own estimate of
// their memory.
func (f *FSM) Stats() (keys, memBytes uint64) {
	return f.fsm.Stats()
}

// Snapshot writes the state in the replica's snapshot format to w, as Raft
// does when it snapshots (FSM.Snapshot, then Persist).
func (f *FSM) Snapshot(w io.Writer) error {
	snap, err := f.fsm.Snapshot()
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	defer snap.Release()
	if err := snap.Persist(&sink{Writer: w}); err != nil {
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return nil
}

// Restore replaces the state with a snapshot read from r, as a replica does
// when it starts from a snapshot.
func (f *FSM) Restore(r io.Reader) error {
	if err := f.fsm.Restore(io.NopCloser(r)); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	return nil
}

// sink is a raft.SnapshotSink over a plain writer.
type sink struct{ io.Writer }

func (*sink) ID() string    { return "replicabench" }
func (*sink) Cancel() error { return nil }
func (*sink) Close() error  { return nil }

var _ raft.SnapshotSink = (*sink)(nil)
