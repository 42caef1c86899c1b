package store

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	raftv1 "github.com/concord-kv/concord/proto/gen/go/concord/raft/v1"
	concordv1 "github.com/concord-kv/concord/proto/gen/go/concord/v1"
	"github.com/google/btree"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
)

// Entry is one stored key. Entries are immutable once in the tree: a write
// replaces the pointer, so snapshots (lazy tree clones) and readers that hold
// an *Entry never see it change.
//
// The layout is kept at 96 bytes (a runtime size class) because there is one
// Entry per key: ContentType is interned by the FSM, and OriginalSize (the
// uncompressed length, bounded by the value size limit) is 32 bits next to
// the 32-bit Compression.
type Entry struct {
	Key            string
	Value          []byte // as stored: compressed when Compression says so
	ContentType    string
	Compression    concordv1.CompressionAlgorithm
	OriginalSize   uint32
	CreateRevision uint64
	ModRevision    uint64
	Version        uint64
	ExpiresAtMs    int64 // unix ms; 0 = never
}

// Live reports whether the entry is visible at nowMs.
func (e *Entry) Live(nowMs int64) bool {
	return e.ExpiresAtMs == 0 || e.ExpiresAtMs > nowMs
}

// memSize estimates the bytes e holds. The content type is not counted:
// nearly always it is one of the interned, shared strings.
func (e *Entry) memSize() uint64 {
	return uint64(len(e.Key)+len(e.Value)) + uint64(unsafe.Sizeof(Entry{}))
}

type expiryItem struct {
	at  int64
	key string
}

func expiryLess(a, b expiryItem) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	return a.key < b.key
}

func entryLess(a, b *Entry) bool { return a.Key < b.Key }

// FSM is the replicated state machine: an ordered in-memory index of entries
// plus the members table. Apply is deterministic: it reads only the command
// and the log index, never the clock.
//
// Raft calls Apply, ApplyBatch, Snapshot and Restore from one goroutine;
// readers call the read methods concurrently from any goroutine.
type FSM struct {
	mu      sync.RWMutex
	data    *btree.BTreeG[*Entry]
	expiry  *btree.BTreeG[expiryItem]
	members map[string]string // node id -> API address; replaced, never mutated
	mem     uint64
	// ctypes interns content types: nearly every entry has one of a few
	// (application/octet-stream, application/json), and one shared string
	// saves an allocation per key.
	ctypes map[string]string
	// logTime is the log's clock (unix ms): the latest stamp of the applied
	// commands (advanceLocked). Keys expire by it, for reads and writes
	// alike, so every replica hides a key at the same log index (see
	// AtLogTime).
	logTime int64

	applied   atomic.Uint64
	waitMu    sync.Mutex
	appliedCh chan struct{} // closed when applied advances
}

// NewFSM returns an empty state machine.
func NewFSM() *FSM {
	return &FSM{
		data:      btree.NewG(32, entryLess),
		expiry:    btree.NewG(32, expiryLess),
		members:   map[string]string{},
		ctypes:    commonContentTypes(),
		appliedCh: make(chan struct{}),
	}
}

var (
	_ raft.FSM         = (*FSM)(nil)
	_ raft.BatchingFSM = (*FSM)(nil)
)

// Apply applies one log entry.
func (f *FSM) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies a group of committed entries under one lock
// acquisition: the other half of group commit.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	f.mu.Lock()
	var last uint64
	for i, l := range logs {
		last = l.Index
		if l.Type != raft.LogCommand {
			continue
		}
		var cmd raftv1.Command
		if err := proto.Unmarshal(l.Data, &cmd); err != nil {
			out[i] = &raftv1.Result{Code: raftv1.ResultCode_RESULT_CODE_INVALID, Message: "undecodable command", Revision: l.Index}
			continue
		}
		out[i] = f.applyLocked(&cmd, l.Index)
	}
	// The applied index moves under the write lock, with the data, so a read
	// never reports a revision older than the entries it returns.
	if last > 0 {
		f.applied.Store(last)
	}
	f.mu.Unlock()
	if last > 0 {
		f.notifyApplied()
	}
	return out
}

func ok(rev uint64) *raftv1.Result {
	return &raftv1.Result{Code: raftv1.ResultCode_RESULT_CODE_OK, Revision: rev}
}

func (f *FSM) applyLocked(cmd *raftv1.Command, idx uint64) *raftv1.Result {
	now := f.advanceLocked(cmd.GetStampUnixMs())
	switch op := cmd.GetOp().(type) {
	case *raftv1.Command_Put:
		if r := f.checkPutLocked(op.Put, now, idx); r != nil {
			return r
		}
		f.putLocked(op.Put, now, idx)
		return ok(idx)
	case *raftv1.Command_Delete:
		cur := f.liveLocked(op.Delete.GetKey(), now)
		if rev := op.Delete.GetIfModRevision(); rev != 0 && (cur == nil || cur.ModRevision != rev) {
			return conflict(idx, "mod_revision of %q is not %d", op.Delete.GetKey(), rev)
		}
		r := ok(idx)
		if f.deleteLocked(op.Delete.GetKey()) && cur != nil {
			r.Deleted = 1
		}
		return r
	case *raftv1.Command_Touch:
		if !f.touchLocked(op.Touch, now) {
			return &raftv1.Result{Code: raftv1.ResultCode_RESULT_CODE_NOT_FOUND, Revision: idx, Message: fmt.Sprintf("key %q not found", op.Touch.GetKey())}
		}
		return ok(idx)
	case *raftv1.Command_BatchPut:
		for _, p := range op.BatchPut.GetPuts() {
			if r := f.checkPutLocked(p, now, idx); r != nil {
				return r
			}
		}
		for _, p := range op.BatchPut.GetPuts() {
			f.putLocked(p, now, idx)
		}
		return ok(idx)
	case *raftv1.Command_BatchDelete:
		r := ok(idx)
		for _, k := range op.BatchDelete.GetKeys() {
			live := f.liveLocked(k, now) != nil
			if f.deleteLocked(k) && live {
				r.Deleted++
			}
		}
		return r
	case *raftv1.Command_BatchTouch:
		r := ok(idx)
		for _, t := range op.BatchTouch.GetTouches() {
			if !f.touchLocked(t, now) {
				r.Missing = append(r.Missing, t.GetKey())
			}
		}
		return r
	case *raftv1.Command_Expire:
		r := ok(idx)
		for _, k := range op.Expire.GetKeys() {
			if e, found := f.data.Get(&Entry{Key: k}); found && !e.Live(now) {
				f.deleteLocked(k)
				r.Deleted++
			}
		}
		return r
	case *raftv1.Command_SetMember:
		m := make(map[string]string, len(f.members)+1)
		for id, addr := range f.members {
			m[id] = addr
		}
		// An empty address forgets the member (the leader prunes members
		// that left the Raft configuration).
		if a := op.SetMember.GetApiAddress(); a != "" {
			m[op.SetMember.GetId()] = a
		} else {
			delete(m, op.SetMember.GetId())
		}
		f.members = m
		return ok(idx)
	case *raftv1.Command_Noop:
		return ok(idx)
	}
	return &raftv1.Result{Code: raftv1.ResultCode_RESULT_CODE_INVALID, Revision: idx, Message: "unknown command"}
}

func conflict(idx uint64, format string, args ...any) *raftv1.Result {
	return &raftv1.Result{Code: raftv1.ResultCode_RESULT_CODE_CONFLICT, Revision: idx, Message: fmt.Sprintf(format, args...)}
}

// AtLogTime, passed as the time of a read, reads at the log's clock: the
// latest command stamp applied (FSM.logTime). A key then expires at one
// log index on every replica, and a write stamped before a key's expiry
// but committed after a read was served can never contradict that read: the
// read saw the key alive, because no entry stamped past its expiry was
// applied yet. Reading at the wall clock instead, a replica could hide a key
// that a conditional write still in flight then finds alive (the chaos
// suite's ttl-* scenarios found this; tests/chaos/README.md, bug B4). The
// log's clock moves with every write and with the leader's reaper, which
// proposes an Expire command as soon as a key is due.
const AtLogTime int64 = math.MinInt64

// advanceLocked moves the log's clock to stamp if stamp is later, and
// returns it. It never goes back, so a key once expired stays expired
// (until written again) whatever the leader's clock does next. A command
// without a stamp leaves it.
//
// Being the latest stamp, the log's clock stays between the most-behind
// and the most-ahead leader clock: a leader whose clock ran ahead by J
// expires keys up to J early, and once its clock is put right the log's
// clock waits (keys outlive their TTL by up to J) until the stamps pass
// it. Repeated jumps do not add up. (Counting on from the
// stamps after a step back instead, as Concord did for a day, made every
// forward step permanent, even putting a clock that was set back right
// again: a key lost each step's size of its TTL, and the chaos suite's
// clock-jump scenario lost keys with a 3 h TTL: bug B6 in
// tests/chaos/README.md.)
func (f *FSM) advanceLocked(stamp int64) int64 {
	if stamp > f.logTime {
		f.logTime = stamp
	}
	return f.logTime
}

// LogNow is the log's clock as of the wall-clock time nowMs: the later of
// the two. The reaper looks for due keys at it, and the remaining TTL a
// read reports counts from it.
func (f *FSM) LogNow(nowMs int64) int64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return max(f.logTime, nowMs)
}

// at resolves a read's time (AtLogTime: the log's clock).
func (f *FSM) at(nowMs int64) int64 {
	if nowMs == AtLogTime {
		return f.logTime
	}
	return nowMs
}

// LogTime is the log's clock (unix ms).
func (f *FSM) LogTime() int64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.logTime
}

// liveLocked returns the entry for key if it exists and has not expired at nowMs.
func (f *FSM) liveLocked(key string, nowMs int64) *Entry {
	e, found := f.data.Get(&Entry{Key: key})
	if !found || !e.Live(nowMs) {
		return nil
	}
	return e
}

func (f *FSM) checkPutLocked(p *raftv1.Put, now int64, idx uint64) *raftv1.Result {
	if p.GetKey() == "" {
		return &raftv1.Result{Code: raftv1.ResultCode_RESULT_CODE_INVALID, Revision: idx, Message: "empty key"}
	}
	if !p.GetIfAbsent() && p.GetIfModRevision() == 0 {
		return nil
	}
	cur := f.liveLocked(p.GetKey(), now)
	if p.GetIfAbsent() && cur != nil {
		return conflict(idx, "key %q already exists", p.GetKey())
	}
	if rev := p.GetIfModRevision(); rev != 0 && (cur == nil || cur.ModRevision != rev) {
		return conflict(idx, "mod_revision of %q is not %d", p.GetKey(), rev)
	}
	return nil
}

func (f *FSM) putLocked(p *raftv1.Put, now int64, idx uint64) {
	e := &Entry{
		Key:            p.GetKey(),
		Value:          p.GetValue(),
		ContentType:    f.intern(p.GetContentType()),
		Compression:    p.GetCompression(),
		OriginalSize:   originalSize(p.GetOriginalSize()),
		CreateRevision: idx,
		ModRevision:    idx,
		Version:        1,
	}
	if ttl := p.GetTtlMs(); ttl > 0 {
		e.ExpiresAtMs = now + ttl
	}
	if cur := f.liveLocked(p.GetKey(), now); cur != nil {
		e.CreateRevision = cur.CreateRevision
		e.Version = cur.Version + 1
	}
	f.replaceLocked(e)
}

// maxInternedContentTypes bounds the intern table: content types are
// client-chosen, and a client that writes many distinct ones gets them stored
// per entry, not a table that grows forever.
const maxInternedContentTypes = 64

// commonContentTypes seeds the intern table with the types the SDK and the
// gateway write, so that the table filling up with a client's unusual
// types first cannot cost the common ones their sharing.
func commonContentTypes() map[string]string {
	m := map[string]string{}
	for _, ct := range []string{"", "application/octet-stream", "application/json", "text/plain"} {
		m[ct] = ct
	}
	return m
}

// intern returns the FSM's shared copy of ct. Callers hold f.mu for writing
// (or own an FSM no one else sees yet).
func (f *FSM) intern(ct string) string {
	if s, ok := f.ctypes[ct]; ok {
		return s
	}
	if len(f.ctypes) < maxInternedContentTypes {
		f.ctypes[ct] = ct
	}
	return ct
}

// originalSize narrows a command's uncompressed size to the Entry field.
// Values are far below 4 GiB (the value size limit), and the size is only a
// hint that bounds decompression, so saturating is safe.
func originalSize(n uint64) uint32 {
	return uint32(min(n, math.MaxUint32))
}

func (f *FSM) touchLocked(t *raftv1.Touch, now int64) bool {
	cur := f.liveLocked(t.GetKey(), now)
	if cur == nil {
		return false
	}
	e := *cur
	e.ExpiresAtMs = 0
	if t.GetTtlMs() > 0 {
		e.ExpiresAtMs = now + t.GetTtlMs()
	}
	f.replaceLocked(&e)
	return true
}

// replaceLocked stores e, keeping the expiry index and memory count in step.
func (f *FSM) replaceLocked(e *Entry) {
	old, had := f.data.ReplaceOrInsert(e)
	if had {
		f.mem -= old.memSize()
		if old.ExpiresAtMs != 0 {
			f.expiry.Delete(expiryItem{old.ExpiresAtMs, old.Key})
		}
	}
	f.mem += e.memSize()
	if e.ExpiresAtMs != 0 {
		f.expiry.ReplaceOrInsert(expiryItem{e.ExpiresAtMs, e.Key})
	}
}

func (f *FSM) deleteLocked(key string) bool {
	old, had := f.data.Delete(&Entry{Key: key})
	if !had {
		return false
	}
	f.mem -= old.memSize()
	if old.ExpiresAtMs != 0 {
		f.expiry.Delete(expiryItem{old.ExpiresAtMs, old.Key})
	}
	return true
}

// notifyApplied wakes the waiters after the applied index moved.
func (f *FSM) notifyApplied() {
	f.waitMu.Lock()
	close(f.appliedCh)
	f.appliedCh = make(chan struct{})
	f.waitMu.Unlock()
}

// Applied is the index of the last entry applied.
func (f *FSM) Applied() uint64 { return f.applied.Load() }

// WaitApplied blocks until the applied index reaches idx or ctx ends.
func (f *FSM) WaitApplied(ctx context.Context, idx uint64) error {
	for {
		f.waitMu.Lock()
		ch := f.appliedCh
		f.waitMu.Unlock()
		if f.applied.Load() >= idx {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%w: waiting for revision %d (applied %d)", ErrTimeout, idx, f.applied.Load())
		}
	}
}

// Get returns the live entry for key at nowMs and the applied index it was
// read at.
func (f *FSM) Get(key string, nowMs int64) (*Entry, uint64) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.liveLocked(key, f.at(nowMs)), f.applied.Load()
}

// GetMany reads keys from one consistent view; missing entries are nil.
func (f *FSM) GetMany(keys []string, nowMs int64) ([]*Entry, uint64) {
	out := make([]*Entry, len(keys))
	probe := &Entry{} // one search key for all: not one allocation per key
	f.mu.RLock()
	defer f.mu.RUnlock()
	nowMs = f.at(nowMs)
	for i, k := range keys {
		probe.Key = k
		if e, found := f.data.Get(probe); found && e.Live(nowMs) {
			out[i] = e
		}
	}
	return out, f.applied.Load()
}

// List returns up to limit live entries with the prefix, in key order,
// starting after the key after (exclusive; "" starts at the prefix). more
// reports whether further entries exist.
func (f *FSM) List(prefix, after string, limit int, nowMs int64) (entries []*Entry, more bool, rev uint64) {
	start := prefix
	if after != "" && after >= prefix {
		start = after + "\x00"
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	nowMs = f.at(nowMs)
	f.data.AscendGreaterOrEqual(&Entry{Key: start}, func(e *Entry) bool {
		if !strings.HasPrefix(e.Key, prefix) {
			return false
		}
		if !e.Live(nowMs) {
			return true
		}
		if len(entries) == limit {
			more = true
			return false
		}
		entries = append(entries, e)
		return true
	})
	return entries, more, f.applied.Load()
}

// Expired returns up to max keys whose expiry is at or before nowMs.
func (f *FSM) Expired(nowMs int64, max int) []string {
	var keys []string
	f.mu.RLock()
	defer f.mu.RUnlock()
	f.expiry.Ascend(func(it expiryItem) bool {
		if it.at > nowMs || len(keys) == max {
			return false
		}
		keys = append(keys, it.key)
		return true
	})
	return keys
}

// Members returns the node id -> API address table. Do not modify it.
func (f *FSM) Members() map[string]string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.members
}

// Stats returns the number of stored entries and their approximate memory.
func (f *FSM) Stats() (size, memBytes uint64) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return uint64(f.data.Len()), f.mem
}
