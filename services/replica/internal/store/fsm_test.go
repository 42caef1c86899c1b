package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	"unsafe"

	raftv1 "github.com/concord-kv/concord/proto/gen/go/concord/raft/v1"
	concordv1 "github.com/concord-kv/concord/proto/gen/go/concord/v1"
	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
)

// t0 is the leader stamp the tests start from (unix ms).
const t0 = int64(1_700_000_000_000)

// harness feeds commands to an FSM as committed raft logs with consecutive
// indexes, the way raft's FSM goroutine does.
type harness struct {
	tb  testing.TB
	f   *FSM
	idx uint64
}

func newHarness(tb testing.TB) *harness {
	tb.Helper()
	return &harness{tb: tb, f: NewFSM()}
}

func commandLog(tb testing.TB, idx uint64, cmd *raftv1.Command) *raft.Log {
	tb.Helper()
	data, err := proto.Marshal(cmd)
	if err != nil {
		tb.Fatalf("marshal command: %v", err)
	}
	return &raft.Log{Index: idx, Term: 1, Type: raft.LogCommand, Data: data}
}

// apply commits cmd stamped at stamp and returns the FSM's result.
func (h *harness) apply(stamp int64, cmd *raftv1.Command) *raftv1.Result {
	h.tb.Helper()
	h.idx++
	cmd.StampUnixMs = stamp
	res, ok := h.f.Apply(commandLog(h.tb, h.idx, cmd)).(*raftv1.Result)
	if !ok {
		h.tb.Fatalf("index %d: Apply returned %T, want *raftv1.Result", h.idx, res)
	}
	if res.GetRevision() != h.idx {
		h.tb.Fatalf("index %d: result revision %d", h.idx, res.GetRevision())
	}
	return res
}

func (h *harness) mustOK(stamp int64, cmd *raftv1.Command) *raftv1.Result {
	h.tb.Helper()
	res := h.apply(stamp, cmd)
	if res.GetCode() != raftv1.ResultCode_RESULT_CODE_OK {
		h.tb.Fatalf("index %d: %v: got %v %q, want OK", h.idx, cmd.GetOp(), res.GetCode(), res.GetMessage())
	}
	return res
}

func putCmd(key, value string, ttlMs int64) *raftv1.Command {
	return &raftv1.Command{Op: &raftv1.Command_Put{Put: &raftv1.Put{Key: key, Value: []byte(value), TtlMs: ttlMs, OriginalSize: uint64(len(value))}}}
}

func deleteCmd(key string, ifModRevision uint64) *raftv1.Command {
	return &raftv1.Command{Op: &raftv1.Command_Delete{Delete: &raftv1.Delete{Key: key, IfModRevision: ifModRevision}}}
}

func touchCmd(key string, ttlMs int64) *raftv1.Command {
	return &raftv1.Command{Op: &raftv1.Command_Touch{Touch: &raftv1.Touch{Key: key, TtlMs: ttlMs}}}
}

func batchPutCmd(puts ...*raftv1.Put) *raftv1.Command {
	return &raftv1.Command{Op: &raftv1.Command_BatchPut{BatchPut: &raftv1.BatchPut{Puts: puts}}}
}

func expireCmd(keys ...string) *raftv1.Command {
	return &raftv1.Command{Op: &raftv1.Command_Expire{Expire: &raftv1.Expire{Keys: keys}}}
}

func memberCmd(id, addr string) *raftv1.Command {
	return &raftv1.Command{Op: &raftv1.Command_SetMember{SetMember: &raftv1.SetMember{Id: id, ApiAddress: addr}}}
}

// dump copies every stored entry, expired ones included, in key order.
func dump(f *FSM) []Entry {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var out []Entry
	f.data.Ascend(func(e *Entry) bool {
		out = append(out, *e)
		return true
	})
	return out
}

// expiryIndex lists the expiry index in order.
func expiryIndex(f *FSM) []expiryItem {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var out []expiryItem
	f.expiry.Ascend(func(it expiryItem) bool {
		out = append(out, it)
		return true
	})
	return out
}

// state is everything an FSM holds, for comparisons.
type state struct {
	Entries []Entry
	Expiry  []expiryItem
	Members map[string]string
	Applied uint64
	Size    uint64
	Mem     uint64
	LogTime int64
}

func stateOf(f *FSM) state {
	size, mem := f.Stats()
	return state{Entries: dump(f), Expiry: expiryIndex(f), Members: f.Members(), Applied: f.Applied(), Size: size, Mem: mem, LogTime: f.LogTime()}
}

// stateOpts compares states; bytes.Equal keeps big values cheap to compare.
var stateOpts = cmp.Options{cmp.AllowUnexported(expiryItem{}), cmp.Comparer(bytes.Equal)}

// snapshotBytes takes a snapshot of f and persists it to memory.
func snapshotBytes(tb testing.TB, f *FSM) []byte {
	tb.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		tb.Fatalf("snapshot: %v", err)
	}
	defer snap.Release()
	return persist(tb, snap)
}

func persist(tb testing.TB, snap raft.FSMSnapshot) []byte {
	tb.Helper()
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		tb.Fatalf("persist: %v", err)
	}
	if !sink.closed || sink.cancelled {
		tb.Fatalf("persist left the sink closed=%v cancelled=%v", sink.closed, sink.cancelled)
	}
	return sink.Bytes()
}

// memSink is a raft.SnapshotSink in memory.
type memSink struct {
	bytes.Buffer
	closed, cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }
func (s *memSink) Close() error  { s.closed = true; return nil }

func TestFSMRevisionsAndVersions(t *testing.T) {
	cmds := []*raftv1.Command{
		putCmd("k", "v1", 0),    // 1
		putCmd("k", "v2", 0),    // 2
		touchCmd("k", 5_000),    // 3: TTL only
		putCmd("other", "x", 0), // 4
		deleteCmd("k", 0),       // 5
		deleteCmd("k", 0),       // 6: already gone
		putCmd("k", "v3", 0),    // 7: recreated
	}
	wantDeleted := map[int]uint64{5: 1, 6: 0}
	tests := []struct {
		name string
		n    int // replay the first n commands
		want *Entry
	}{
		{"created", 1, &Entry{Key: "k", Value: []byte("v1"), CreateRevision: 1, ModRevision: 1, Version: 1, OriginalSize: 2}},
		{"overwritten", 2, &Entry{Key: "k", Value: []byte("v2"), CreateRevision: 1, ModRevision: 2, Version: 2, OriginalSize: 2}},
		{"touch keeps mod_revision and version", 3, &Entry{Key: "k", Value: []byte("v2"), CreateRevision: 1, ModRevision: 2, Version: 2, OriginalSize: 2, ExpiresAtMs: t0 + 2 + 5_000}},
		{"other keys leave it alone", 4, &Entry{Key: "k", Value: []byte("v2"), CreateRevision: 1, ModRevision: 2, Version: 2, OriginalSize: 2, ExpiresAtMs: t0 + 2 + 5_000}},
		{"deleted", 5, nil},
		{"deleted twice", 6, nil},
		{"recreated starts a new life", 7, &Entry{Key: "k", Value: []byte("v3"), CreateRevision: 7, ModRevision: 7, Version: 1, OriginalSize: 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			for i := range tc.n {
				res := h.mustOK(t0+int64(i), proto.CloneOf(cmds[i]))
				if want, ok := wantDeleted[i+1]; ok && res.GetDeleted() != want {
					t.Fatalf("command %d deleted %d, want %d", i+1, res.GetDeleted(), want)
				}
			}
			got, rev := h.f.Get("k", t0+100)
			if rev != uint64(tc.n) {
				t.Errorf("Get revision %d, want %d", rev, tc.n)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("entry (-want +got):\n%s", diff)
			}
			if idx := expiryIndex(h.f); (tc.want != nil && tc.want.ExpiresAtMs != 0) != (len(idx) == 1) || len(idx) > 1 {
				t.Errorf("expiry index %v", idx)
			}
		})
	}
}

func TestFSMTouchMissingOrExpired(t *testing.T) {
	h := newHarness(t)
	h.mustOK(t0, putCmd("ttl", "v", 1_000))
	for _, tc := range []struct {
		name  string
		key   string
		stamp int64
	}{
		{"missing", "nope", t0},
		{"expired at the stamp", "ttl", t0 + 1_000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := dump(h.f)
			res := h.apply(tc.stamp, touchCmd(tc.key, 60_000))
			if res.GetCode() != raftv1.ResultCode_RESULT_CODE_NOT_FOUND {
				t.Fatalf("got %v, want NOT_FOUND", res.GetCode())
			}
			if diff := cmp.Diff(before, dump(h.f)); diff != "" {
				t.Fatalf("a failed touch changed state (-before +after):\n%s", diff)
			}
		})
	}
}

func TestFSMConditionalWritesConflict(t *testing.T) {
	// Fixture: "live" at revision 1, "expiring" (expires t0+1000) at 2.
	setup := func(t *testing.T) *harness {
		h := newHarness(t)
		h.mustOK(t0, putCmd("live", "a", 0))
		h.mustOK(t0, putCmd("expiring", "b", 1_000))
		return h
	}
	ifAbsent := func(key string) *raftv1.Command {
		c := putCmd(key, "new", 0)
		c.GetPut().IfAbsent = true
		return c
	}
	ifRev := func(key string, rev uint64) *raftv1.Command {
		c := putCmd(key, "new", 0)
		c.GetPut().IfModRevision = rev
		return c
	}
	tests := []struct {
		name  string
		cmd   *raftv1.Command
		stamp int64
		want  raftv1.ResultCode
	}{
		{"if_absent on a live key", ifAbsent("live"), t0 + 1, raftv1.ResultCode_RESULT_CODE_CONFLICT},
		{"if_absent on a missing key", ifAbsent("missing"), t0 + 1, raftv1.ResultCode_RESULT_CODE_OK},
		{"if_absent on an expired key", ifAbsent("expiring"), t0 + 1_000, raftv1.ResultCode_RESULT_CODE_OK},
		{"if_absent on a key not yet expired", ifAbsent("expiring"), t0 + 999, raftv1.ResultCode_RESULT_CODE_CONFLICT},
		{"if_mod_revision matches", ifRev("live", 1), t0 + 1, raftv1.ResultCode_RESULT_CODE_OK},
		{"if_mod_revision differs", ifRev("live", 2), t0 + 1, raftv1.ResultCode_RESULT_CODE_CONFLICT},
		{"if_mod_revision on a missing key", ifRev("missing", 1), t0 + 1, raftv1.ResultCode_RESULT_CODE_CONFLICT},
		{"if_mod_revision on an expired key", ifRev("expiring", 2), t0 + 2_000, raftv1.ResultCode_RESULT_CODE_CONFLICT},
		{"delete if_mod_revision matches", deleteCmd("live", 1), t0 + 1, raftv1.ResultCode_RESULT_CODE_OK},
		{"delete if_mod_revision differs", deleteCmd("live", 7), t0 + 1, raftv1.ResultCode_RESULT_CODE_CONFLICT},
		{"delete if_mod_revision on a missing key", deleteCmd("missing", 1), t0 + 1, raftv1.ResultCode_RESULT_CODE_CONFLICT},
		{"empty key", putCmd("", "x", 0), t0 + 1, raftv1.ResultCode_RESULT_CODE_INVALID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := setup(t)
			before := stateOf(h.f)
			res := h.apply(tc.stamp, tc.cmd)
			if res.GetCode() != tc.want {
				t.Fatalf("got %v %q, want %v", res.GetCode(), res.GetMessage(), tc.want)
			}
			if tc.want == raftv1.ResultCode_RESULT_CODE_OK {
				return
			}
			after := stateOf(h.f)
			if after.Applied != before.Applied+1 {
				t.Errorf("applied %d, want %d: a rejected command still consumes its index", after.Applied, before.Applied+1)
			}
			// It consumes its index and its stamp moves the log's clock, as
			// any entry's does; the data stays.
			after.Applied, after.LogTime = before.Applied, before.LogTime
			if diff := cmp.Diff(before, after, stateOpts); diff != "" {
				t.Fatalf("rejected command changed state (-before +after):\n%s", diff)
			}
		})
	}
}

func TestFSMBatchPutIsAtomic(t *testing.T) {
	tests := []struct {
		name string
		puts []*raftv1.Put
		want raftv1.ResultCode
	}{
		{
			name: "all written at one revision",
			puts: []*raftv1.Put{{Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("2"), TtlMs: 1_000}, {Key: "existing", Value: []byte("3")}},
			want: raftv1.ResultCode_RESULT_CODE_OK,
		},
		{
			name: "one if_mod_revision conflict writes nothing",
			puts: []*raftv1.Put{{Key: "a", Value: []byte("1")}, {Key: "existing", Value: []byte("3"), IfModRevision: 99}, {Key: "z", Value: []byte("2")}},
			want: raftv1.ResultCode_RESULT_CODE_CONFLICT,
		},
		{
			name: "one if_absent conflict writes nothing",
			puts: []*raftv1.Put{{Key: "a", Value: []byte("1")}, {Key: "existing", Value: []byte("3"), IfAbsent: true}},
			want: raftv1.ResultCode_RESULT_CODE_CONFLICT,
		},
		{
			name: "one empty key writes nothing",
			puts: []*raftv1.Put{{Key: "a", Value: []byte("1")}, {Key: "", Value: []byte("3")}},
			want: raftv1.ResultCode_RESULT_CODE_INVALID,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.mustOK(t0, putCmd("existing", "old", 0))
			before := dump(h.f)
			res := h.apply(t0+1, batchPutCmd(tc.puts...))
			if res.GetCode() != tc.want {
				t.Fatalf("got %v %q, want %v", res.GetCode(), res.GetMessage(), tc.want)
			}
			if tc.want != raftv1.ResultCode_RESULT_CODE_OK {
				if diff := cmp.Diff(before, dump(h.f)); diff != "" {
					t.Fatalf("rejected batch changed state (-before +after):\n%s", diff)
				}
				return
			}
			for _, p := range tc.puts {
				e, _ := h.f.Get(p.GetKey(), t0+1)
				if e == nil || string(e.Value) != string(p.GetValue()) || e.ModRevision != res.GetRevision() {
					t.Fatalf("%s after batch: %+v, want value %q at revision %d", p.GetKey(), e, p.GetValue(), res.GetRevision())
				}
			}
			if e, _ := h.f.Get("existing", t0+1); e.CreateRevision != 1 || e.Version != 2 {
				t.Fatalf("overwritten key: create %d version %d, want 1 and 2", e.CreateRevision, e.Version)
			}
		})
	}
}

func TestFSMBatchDeleteCounts(t *testing.T) {
	h := newHarness(t)
	h.mustOK(t0, putCmd("a", "1", 0))
	h.mustOK(t0, putCmd("b", "2", 0))
	h.mustOK(t0, putCmd("gone", "3", 1_000))
	h.mustOK(t0, putCmd("keep", "4", 0))
	res := h.mustOK(t0+5_000, &raftv1.Command{Op: &raftv1.Command_BatchDelete{BatchDelete: &raftv1.BatchDelete{
		Keys: []string{"a", "missing", "b", "a", "gone"},
	}}})
	// a and b were live; a's second mention, the missing key and the
	// expired one do not count, but the expired entry is removed too.
	if res.GetDeleted() != 2 {
		t.Fatalf("deleted %d, want 2", res.GetDeleted())
	}
	var keys []string
	for _, e := range dump(h.f) {
		keys = append(keys, e.Key)
	}
	if diff := cmp.Diff([]string{"keep"}, keys); diff != "" {
		t.Fatalf("keys left (-want +got):\n%s", diff)
	}
	if idx := expiryIndex(h.f); len(idx) != 0 {
		t.Fatalf("expiry index still lists %v", idx)
	}
}

func TestFSMBatchTouchReportsMissing(t *testing.T) {
	h := newHarness(t)
	h.mustOK(t0, putCmd("a", "1", 0))
	h.mustOK(t0, putCmd("b", "2", 60_000))
	h.mustOK(t0, putCmd("expired", "3", 1_000))
	res := h.mustOK(t0+2_000, &raftv1.Command{Op: &raftv1.Command_BatchTouch{BatchTouch: &raftv1.BatchTouch{
		Touches: []*raftv1.Touch{{Key: "a", TtlMs: 10_000}, {Key: "nope"}, {Key: "b"}, {Key: "expired", TtlMs: 10_000}},
	}}})
	if diff := cmp.Diff([]string{"nope", "expired"}, res.GetMissing()); diff != "" {
		t.Fatalf("missing (-want +got):\n%s", diff)
	}
	a, _ := h.f.Get("a", t0+2_000)
	b, _ := h.f.Get("b", t0+2_000)
	if a.ExpiresAtMs != t0+12_000 || b.ExpiresAtMs != 0 {
		t.Fatalf("expiries a=%d b=%d, want %d and 0 (ttl 0 removes the expiry)", a.ExpiresAtMs, b.ExpiresAtMs, t0+12_000)
	}
	if a.ModRevision != 1 || b.ModRevision != 2 {
		t.Fatalf("touch changed mod_revision: a=%d b=%d", a.ModRevision, b.ModRevision)
	}
	if diff := cmp.Diff([]expiryItem{{t0 + 1_000, "expired"}, {t0 + 12_000, "a"}}, expiryIndex(h.f), stateOpts); diff != "" {
		t.Fatalf("expiry index (-want +got):\n%s", diff)
	}
}

func TestFSMTTLHiddenByReaderClock(t *testing.T) {
	h := newHarness(t)
	h.mustOK(t0, putCmd("session", "s", 1_000))
	h.mustOK(t0, putCmd("forever", "f", 0))
	tests := []struct {
		now  int64
		want []string
	}{
		{t0, []string{"forever", "session"}},
		{t0 + 999, []string{"forever", "session"}},
		{t0 + 1_000, []string{"forever"}},
		{t0 + 1_000_000, []string{"forever"}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.now-t0), func(t *testing.T) {
			entries, more, _ := h.f.List("", "", 10, tc.now)
			var got []string
			for _, e := range entries {
				got = append(got, e.Key)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" || more {
				t.Errorf("List (-want +got), more=%v:\n%s", more, diff)
			}
			e, _ := h.f.Get("session", tc.now)
			if (e != nil) != (len(tc.want) == 2) {
				t.Errorf("Get(session) = %v", e)
			}
			es, _ := h.f.GetMany([]string{"session", "forever"}, tc.now)
			if (es[0] != nil) != (len(tc.want) == 2) || es[1] == nil {
				t.Errorf("GetMany = %v", es)
			}
		})
	}
	// Reading never removes anything: only Expire through raft does.
	if size, _ := h.f.Stats(); size != 2 {
		t.Fatalf("size %d after reads, want 2", size)
	}
}

// Read at the log's clock, a key expires at a log index, not at a moment of
// some replica's clock: a conditional write stamped before the expiry but
// applied after the wall clock passed it still finds the key, and a read
// served in between saw it alive too (bug B4). The clock never goes back,
// even when the leader's does, and a snapshot carries it.
func TestFSMExpiresByTheLogsClock(t *testing.T) {
	h := newHarness(t)
	h.mustOK(t0, putCmd("k", "v1", 1_000)) // expires at t0+1000
	h.mustOK(t0, putCmd("other", "o", 1_000))
	// Wall clock t0+1200: nothing stamped past the expiry was applied.
	if e, _ := h.f.Get("k", AtLogTime); e == nil {
		t.Fatal("k hidden before any command stamped past its expiry was applied")
	}
	// A CAS stamped at t0+900, committed now: the key was alive then.
	cas := putCmd("k", "v2", 0)
	cas.GetPut().IfModRevision = 1
	rev := h.mustOK(t0+900, cas).GetRevision()
	if e, _ := h.f.Get("k", AtLogTime); e == nil || string(e.Value) != "v2" || e.ModRevision != rev {
		t.Fatalf("after the CAS: %+v", e)
	}
	// A command stamped past the other key's expiry hides it, before any
	// Expire removes it.
	h.mustOK(t0+1_500, putCmd("unrelated", "u", 0))
	if e, _ := h.f.Get("other", AtLogTime); e != nil {
		t.Fatalf("other still visible at log time %d", h.f.LogTime())
	}
	if es, _ := h.f.GetMany([]string{"other", "k"}, AtLogTime); es[0] != nil || es[1] == nil {
		t.Fatalf("GetMany = %v", es)
	}
	if entries, _, _ := h.f.List("", "", 10, AtLogTime); len(entries) != 2 {
		t.Fatalf("List = %d entries, want k and unrelated", len(entries))
	}
	// A write stamped at t0+1400 (a concurrent proposal) leaves the clock.
	h.mustOK(t0+1_400, putCmd("x", "x", 0))
	if got := h.f.LogTime(); got != t0+1_500 {
		t.Fatalf("log time %d after a stamp 100 ms behind, want %d", got, t0+1_500)
	}
	// The leader's clock steps back 1.3 s: the log's clock stays, so the
	// expired key stays gone, and waits until the stamps pass it again.
	h.mustOK(t0+200, putCmd("x", "y", 0))
	if got := h.f.LogTime(); got != t0+1_500 {
		t.Fatalf("log time %d after a stamp 1.3 s behind, want %d (it never goes back)", got, t0+1_500)
	}
	if e, _ := h.f.Get("other", AtLogTime); e != nil {
		t.Fatal("an expired key came back when the leader's clock stepped back")
	}
	h.mustOK(t0+700, putCmd("x", "z", 0))
	if got := h.f.LogTime(); got != t0+1_500 {
		t.Fatalf("log time %d after a stamp still behind it, want %d", got, t0+1_500)
	}
	if got := h.f.LogNow(t0 + 900); got != t0+1_500 {
		t.Fatalf("LogNow with the wall clock behind the log's = %d, want %d", got, t0+1_500)
	}
	if got := h.f.LogNow(t0 + 1_800); got != t0+1_800 {
		t.Fatalf("LogNow with the wall clock past the log's = %d, want %d", got, t0+1_800)
	}
	h.mustOK(t0+2_000, putCmd("x", "w", 0))
	if got := h.f.LogTime(); got != t0+2_000 {
		t.Fatalf("log time %d after a later stamp, want %d", got, t0+2_000)
	}
	restored := NewFSM()
	if err := restored.Restore(readCloser(snapshotBytes(t, h.f))); err != nil {
		t.Fatal(err)
	}
	if got := restored.LogTime(); got != t0+2_000 {
		t.Fatalf("restored log time = %d, want %d", got, t0+2_000)
	}
}

// A leader clock that jumps forward and back again and again costs a key
// at most the largest jump, not their sum (bug B6: counting on from the
// stamps after each step back expired a 3 h key after a few 90 min jumps).
func TestFSMClockJumpsDoNotAddUp(t *testing.T) {
	const jump = 90 * 60 * 1000
	h := newHarness(t)
	h.mustOK(t0, putCmd("k", "v", 3*60*60*1000)) // expires at t0+3h
	// Ahead and put right, then set back and put right (which, to a clock
	// counting on from the stamps, is a step forward too), five times.
	for i := range int64(5) {
		h.mustOK(t0+i*1_000+jump, putCmd("x", "ahead", 0))
		h.mustOK(t0+i*1_000+250, putCmd("x", "right", 0))
		h.mustOK(t0+i*1_000+500-jump, putCmd("x", "behind", 0))
		h.mustOK(t0+i*1_000+750, putCmd("x", "right", 0))
	}
	if got, limit := h.f.LogTime(), t0+4_000+jump; got > limit {
		t.Fatalf("log time %d after ten 90 min jumps, want at most the latest jumped stamp %d", got, limit)
	}
	if e, _ := h.f.Get("k", AtLogTime); e == nil {
		t.Fatal("a 3 h key expired after ten 90 min jumps of the leader's clock")
	}
	// And its expiry did not move: it goes when the stamps pass t0+3h.
	h.mustOK(t0+3*60*60*1000, putCmd("x", "later", 0))
	if e, _ := h.f.Get("k", AtLogTime); e != nil {
		t.Fatalf("k alive at log time %d, past its expiry", h.f.LogTime())
	}
}

// A snapshot written by a build with bug B6 whose log's clock had run
// ahead of its stamps is refused: no rule can rebuild that clock from the
// log, so replicas restoring it and replicas replaying the log would expire
// keys at different entries. One whose clock still equals its last stamp
// is the same under both rules, and restores.
func TestRestoreRefusesAB6Clock(t *testing.T) {
	header := func(h *raftv1.SnapshotHeader) []byte {
		var b bytes.Buffer
		if _, err := protodelim.MarshalTo(&b, h); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	ahead := header(&raftv1.SnapshotHeader{FormatVersion: snapshotFormat, AppliedIndex: 9, LogTimeUnixMs: t0 + 6_000, B6LastStampUnixMs: t0})
	err := NewFSM().Restore(readCloser(ahead))
	if !errors.Is(err, errB6Snapshot) || !strings.Contains(err.Error(), "empty this replica's data directory") {
		t.Fatalf("restore of a B6 snapshot whose clock ran ahead: %v, want errB6Snapshot with what to do", err)
	}
	same := header(&raftv1.SnapshotHeader{FormatVersion: snapshotFormat, AppliedIndex: 9, LogTimeUnixMs: t0, B6LastStampUnixMs: t0})
	f := NewFSM()
	if err := f.Restore(readCloser(same)); err != nil {
		t.Fatalf("restore of a B6 snapshot whose clock equals its last stamp: %v", err)
	}
	if f.LogTime() != t0 {
		t.Fatalf("log time %d, want %d", f.LogTime(), t0)
	}
}

func TestFSMExpireRemovesOnlyKeysExpiredAtTheStamp(t *testing.T) {
	h := newHarness(t)
	h.mustOK(t0, putCmd("expired", "1", 1_000))
	h.mustOK(t0, putCmd("touched", "2", 1_000))
	h.mustOK(t0+500, touchCmd("touched", 1_000)) // now expires t0+1500
	h.mustOK(t0, putCmd("rewritten", "3", 1_000))
	h.mustOK(t0+600, putCmd("rewritten", "3b", 0)) // no expiry any more
	h.mustOK(t0, putCmd("later", "4", 5_000))
	h.mustOK(t0, putCmd("forever", "5", 0))

	// The reaper saw these keys as expired by its clock, but by the
	// command's stamp only one of them is.
	if got := h.f.Expired(t0+1_000, 10); !cmp.Equal(got, []string{"expired"}) {
		t.Fatalf("Expired(t0+1000) = %v", got)
	}
	res := h.mustOK(t0+1_000, expireCmd("expired", "touched", "rewritten", "later", "forever", "missing"))
	if res.GetDeleted() != 1 {
		t.Fatalf("deleted %d, want 1", res.GetDeleted())
	}
	var keys []string
	for _, e := range dump(h.f) {
		keys = append(keys, e.Key)
	}
	if diff := cmp.Diff([]string{"forever", "later", "rewritten", "touched"}, keys); diff != "" {
		t.Fatalf("keys left (-want +got):\n%s", diff)
	}
	if got := h.f.Expired(t0+10_000, 10); !cmp.Equal(got, []string{"touched", "later"}) {
		t.Fatalf("Expired(t0+10000) = %v", got)
	}
	if got := h.f.Expired(t0+10_000, 1); !cmp.Equal(got, []string{"touched"}) {
		t.Fatalf("Expired with max 1 = %v", got)
	}
	size, mem := h.f.Stats()
	if size != 4 || mem == 0 {
		t.Fatalf("stats size=%d mem=%d", size, mem)
	}
}

func TestFSMListPagination(t *testing.T) {
	h := newHarness(t)
	var want []string
	for i := range 23 {
		key := fmt.Sprintf("app/%02d", i)
		ttl := int64(0)
		if i%5 == 3 {
			ttl = 1_000 // expired when listing
		} else {
			want = append(want, key)
		}
		h.mustOK(t0, putCmd(key, "v", ttl))
	}
	for _, k := range []string{"ap", "app", "apq/1", "b", "apo/9", "app0"} {
		h.mustOK(t0, putCmd(k, "x", 0))
	}
	now := t0 + 2_000
	for _, limit := range []int{1, 2, 4, 7, 18, 19, 100} {
		t.Run(fmt.Sprintf("limit %d", limit), func(t *testing.T) {
			var got []string
			after := ""
			for page := 0; ; page++ {
				if page > 30 {
					t.Fatal("pagination does not end")
				}
				entries, more, _ := h.f.List("app/", after, limit, now)
				if len(entries) > limit {
					t.Fatalf("page %d has %d entries, limit %d", page, len(entries), limit)
				}
				for _, e := range entries {
					got = append(got, e.Key)
				}
				if !more {
					break
				}
				if len(entries) == 0 {
					t.Fatalf("page %d: more without entries", page)
				}
				after = entries[len(entries)-1].Key
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("listing (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("cursor outside the prefix", func(t *testing.T) {
		for _, tc := range []struct {
			after string
			want  int
		}{
			{"", len(want)}, {"a", len(want)}, {"app/", len(want)}, {"app/21", 1}, {"app/22", 0}, {"zzz", 0},
		} {
			entries, _, _ := h.f.List("app/", tc.after, 100, now)
			if len(entries) != tc.want {
				t.Errorf("after %q: %d entries, want %d", tc.after, len(entries), tc.want)
			}
		}
	})
}

func TestFSMNonCommandLogsAndBadCommands(t *testing.T) {
	f := NewFSM()
	out := f.ApplyBatch([]*raft.Log{
		{Index: 1, Type: raft.LogConfiguration},
		commandLog(t, 2, putCmd("k", "v", 0)),
		{Index: 3, Type: raft.LogCommand, Data: []byte{0xff, 0xff, 0xff}},
		commandLog(t, 4, &raftv1.Command{}),
		commandLog(t, 5, &raftv1.Command{Op: &raftv1.Command_Noop{Noop: &raftv1.Noop{}}}),
		{Index: 6, Type: raft.LogConfiguration},
	})
	if len(out) != 6 || out[0] != nil || out[5] != nil {
		t.Fatalf("results %v: want one per log, nil for configuration entries", out)
	}
	codes := []raftv1.ResultCode{out[1].(*raftv1.Result).GetCode(), out[2].(*raftv1.Result).GetCode(), out[3].(*raftv1.Result).GetCode(), out[4].(*raftv1.Result).GetCode()}
	want := []raftv1.ResultCode{raftv1.ResultCode_RESULT_CODE_OK, raftv1.ResultCode_RESULT_CODE_INVALID, raftv1.ResultCode_RESULT_CODE_INVALID, raftv1.ResultCode_RESULT_CODE_OK}
	if diff := cmp.Diff(want, codes); diff != "" {
		t.Fatalf("codes (-want +got):\n%s", diff)
	}
	if f.Applied() != 6 {
		t.Fatalf("applied %d, want 6", f.Applied())
	}
	if size, _ := f.Stats(); size != 1 {
		t.Fatalf("size %d, want 1", size)
	}
}

func TestFSMWaitApplied(t *testing.T) {
	h := newHarness(t)
	h.mustOK(t0, putCmd("a", "1", 0))
	if err := h.f.WaitApplied(t.Context(), 1); err != nil {
		t.Fatalf("WaitApplied of an applied index: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- h.f.WaitApplied(t.Context(), 3) }()
	h.mustOK(t0, putCmd("b", "2", 0))
	h.mustOK(t0, putCmd("c", "3", 0))
	if err := <-done; err != nil {
		t.Fatalf("WaitApplied(3): %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	if err := h.f.WaitApplied(ctx, 4); !errors.Is(err, ErrTimeout) {
		t.Fatalf("WaitApplied past the deadline: %v, want ErrTimeout", err)
	}
}

// randomCommands makes a reproducible mix of every command type.
func randomCommands(seed uint64, n int) []*raftv1.Command {
	rng := rand.New(rand.NewPCG(seed, seed))
	key := func() string { return fmt.Sprintf("k%02d", rng.IntN(40)) }
	stamp := t0
	cmds := make([]*raftv1.Command, 0, n)
	for range n {
		stamp += int64(rng.IntN(300))
		var c *raftv1.Command
		switch rng.IntN(10) {
		case 0, 1, 2:
			c = putCmd(key(), fmt.Sprint(rng.Int()), int64(rng.IntN(3))*int64(rng.IntN(5_000)))
			c.GetPut().IfAbsent = rng.IntN(8) == 0
			if rng.IntN(8) == 0 {
				c.GetPut().IfModRevision = uint64(rng.IntN(n) + 1)
			}
			c.GetPut().ContentType = "application/json"
			c.GetPut().Compression = concordv1.CompressionAlgorithm(rng.IntN(4))
		case 3:
			c = deleteCmd(key(), uint64(rng.IntN(2)*rng.IntN(n)))
		case 4:
			c = touchCmd(key(), int64(rng.IntN(5_000)))
		case 5:
			c = batchPutCmd(&raftv1.Put{Key: key(), Value: []byte("b1")}, &raftv1.Put{Key: key(), Value: []byte("b2"), TtlMs: 2_000})
		case 6:
			c = &raftv1.Command{Op: &raftv1.Command_BatchDelete{BatchDelete: &raftv1.BatchDelete{Keys: []string{key(), key()}}}}
		case 7:
			c = &raftv1.Command{Op: &raftv1.Command_BatchTouch{BatchTouch: &raftv1.BatchTouch{Touches: []*raftv1.Touch{{Key: key(), TtlMs: 3_000}, {Key: key()}}}}}
		case 8:
			c = expireCmd(key(), key(), key())
		case 9:
			c = memberCmd(fmt.Sprintf("n%d", rng.IntN(7)), fmt.Sprintf("http://10.0.0.%d:7000", rng.IntN(250)))
		}
		c.StampUnixMs = stamp
		cmds = append(cmds, c)
	}
	return cmds
}

func TestFSMDeterminism(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 42} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			cmds := randomCommands(seed, 600)
			logs := make([]*raft.Log, len(cmds))
			for i, c := range cmds {
				logs[i] = commandLog(t, uint64(i+1), c)
			}
			// One replica applies entry by entry, the other in batches of
			// varying size (group commit): the results and the state must be
			// the same.
			one, batched := NewFSM(), NewFSM()
			var want []any
			for _, l := range logs {
				want = append(want, one.Apply(l))
			}
			rng := rand.New(rand.NewPCG(seed, 7))
			var got []any
			for i := 0; i < len(logs); {
				n := min(1+rng.IntN(64), len(logs)-i)
				got = append(got, batched.ApplyBatch(logs[i:i+n])...)
				i += n
			}
			if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
				t.Fatalf("results differ (-one +batched):\n%s", diff)
			}
			if diff := cmp.Diff(stateOf(one), stateOf(batched), stateOpts); diff != "" {
				t.Fatalf("state differs (-one +batched):\n%s", diff)
			}
			if len(one.Members()) < 2 {
				t.Fatalf("the command mix should set several members, got %v", one.Members())
			}
			a, b := snapshotBytes(t, one), snapshotBytes(t, batched)
			if !bytes.Equal(a, b) {
				t.Fatalf("snapshots differ: %d and %d bytes", len(a), len(b))
			}
			// Snapshots of one state are byte-identical every time.
			for range 5 {
				if !bytes.Equal(a, snapshotBytes(t, one)) {
					t.Fatal("two snapshots of the same state differ")
				}
			}
		})
	}
}

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	h := newHarness(t)
	for _, c := range randomCommands(9, 400) {
		h.apply(c.GetStampUnixMs(), c)
	}
	h.mustOK(t0, memberCmd("n1", "http://127.0.0.1:1"))
	h.mustOK(t0, memberCmd("n2", "http://127.0.0.1:2"))
	h.mustOK(t0+1, putCmd("big", string(bytes.Repeat([]byte("x"), 200_000)), 0))
	h.mustOK(t0+2, putCmd("ttl", "v", 60_000))
	h.mustOK(t0+3, &raftv1.Command{Op: &raftv1.Command_Noop{Noop: &raftv1.Noop{}}})
	want := stateOf(h.f)
	if len(want.Expiry) == 0 {
		t.Fatal("fixture should hold keys with a TTL")
	}
	data := snapshotBytes(t, h.f)

	restored := NewFSM()
	restored.mustApplyNothingYet(t)
	if err := restored.Restore(readCloser(data)); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if diff := cmp.Diff(want, stateOf(restored), stateOpts); diff != "" {
		t.Fatalf("restored state (-want +got):\n%s", diff)
	}
	if !bytes.Equal(data, snapshotBytes(t, restored)) {
		t.Fatal("snapshot of the restored state differs from the original snapshot")
	}

	// Restore discards what was there before.
	other := newHarness(t)
	other.mustOK(t0, putCmd("stale", "x", 5_000))
	other.mustOK(t0, memberCmd("n9", "http://stale"))
	if err := other.f.Restore(readCloser(data)); err != nil {
		t.Fatalf("restore over existing state: %v", err)
	}
	if diff := cmp.Diff(want, stateOf(other.f), stateOpts); diff != "" {
		t.Fatalf("restore over existing state (-want +got):\n%s", diff)
	}
	// And the restored FSM carries on applying.
	other.idx = want.Applied
	other.mustOK(other.f.LogTime()+60_001, expireCmd("ttl"))
	if e, _ := other.f.Get("ttl", t0); e != nil {
		t.Fatal("expire after restore did not remove the key")
	}
}

func (f *FSM) mustApplyNothingYet(tb testing.TB) {
	tb.Helper()
	if f.Applied() != 0 {
		tb.Fatalf("fresh FSM has applied %d", f.Applied())
	}
}

type closeTracker struct {
	*bytes.Reader
	closed bool
}

func (c *closeTracker) Close() error { c.closed = true; return nil }

func readCloser(b []byte) *closeTracker { return &closeTracker{Reader: bytes.NewReader(b)} }

func TestRestoreRejectsGarbage(t *testing.T) {
	src := newHarness(t)
	src.mustOK(t0, putCmd("a", "1", 0))
	src.mustOK(t0, putCmd("b", "2", 0))
	src.mustOK(t0, memberCmd("n1", "http://x"))
	valid := snapshotBytes(t, src.f)

	delimited := func(msgs ...proto.Message) []byte {
		var b []byte
		for _, m := range msgs {
			data, err := proto.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			b = protowireAppendBytes(b, data)
		}
		return b
	}
	entry := func(key string) *raftv1.SnapshotRecord {
		return &raftv1.SnapshotRecord{Record: &raftv1.SnapshotRecord_Entry{Entry: &raftv1.Entry{Key: key}}}
	}
	rng := rand.New(rand.NewPCG(5, 5))
	noise := make([]byte, 4096)
	for i := range noise {
		noise[i] = byte(rng.Uint32())
	}
	tests := map[string][]byte{
		"empty":              nil,
		"noise":              noise,
		"text":               []byte("this is not a snapshot at all"),
		"huge length prefix": {0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3},
		"truncated":          valid[:len(valid)-3],
		"header only":        valid[:1+int(valid[0])],
		"wrong format":       delimited(&raftv1.SnapshotHeader{FormatVersion: 2, EntryCount: 0}),
		"count mismatch":     delimited(&raftv1.SnapshotHeader{FormatVersion: snapshotFormat, EntryCount: 2}, entry("a")),
		"empty key":          delimited(&raftv1.SnapshotHeader{FormatVersion: snapshotFormat, EntryCount: 1}, entry("")),
		"unknown record":     delimited(&raftv1.SnapshotHeader{FormatVersion: snapshotFormat}, &raftv1.SnapshotRecord{}),
	}
	for name, data := range tests {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			h.mustOK(t0, putCmd("mine", "v", 10_000))
			h.mustOK(t0, memberCmd("me", "http://me"))
			before := stateOf(h.f)
			rc := readCloser(data)
			if err := h.f.Restore(rc); err == nil {
				t.Fatal("restore of garbage succeeded")
			}
			if !rc.closed {
				t.Error("restore did not close the reader")
			}
			if diff := cmp.Diff(before, stateOf(h.f), stateOpts); diff != "" {
				t.Fatalf("failed restore changed state (-before +after):\n%s", diff)
			}
		})
	}
}

// protowireAppendBytes appends b with a varint length prefix.
func protowireAppendBytes(dst, b []byte) []byte {
	n := uint64(len(b))
	for n >= 0x80 {
		dst = append(dst, byte(n)|0x80)
		n >>= 7
	}
	dst = append(dst, byte(n))
	return append(dst, b...)
}

func TestSnapshotIsCopyOnWrite(t *testing.T) {
	h := newHarness(t)
	for i := range 200 {
		h.mustOK(t0, putCmd(fmt.Sprintf("k%03d", i), fmt.Sprint(i), int64(i%3)*10_000))
	}
	h.mustOK(t0, memberCmd("n1", "http://one"))
	want := stateOf(h.f)

	early, err := h.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer early.Release()
	twin, err := h.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer twin.Release()
	wantBytes := persist(t, twin)

	// Writes after the snapshot touch every kind of change.
	for i := range 200 {
		switch i % 4 {
		case 0:
			h.mustOK(t0+1, putCmd(fmt.Sprintf("k%03d", i), "changed", 0))
		case 1:
			h.mustOK(t0+1, deleteCmd(fmt.Sprintf("k%03d", i), 0))
		case 2:
			h.mustOK(t0+1, touchCmd(fmt.Sprintf("k%03d", i), 99_000))
		case 3:
			h.mustOK(t0+1, putCmd(fmt.Sprintf("new%03d", i), "new", 0))
		}
	}
	h.mustOK(t0+1, memberCmd("n1", "http://moved"))
	h.mustOK(t0+1, memberCmd("n2", "http://two"))

	got := persist(t, early)
	if !bytes.Equal(wantBytes, got) {
		t.Fatal("writes after Snapshot leaked into the persisted stream")
	}
	restored := NewFSM()
	if err := restored.Restore(readCloser(got)); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, stateOf(restored), stateOpts); diff != "" {
		t.Fatalf("restored snapshot (-state at snapshot +restored):\n%s", diff)
	}
}

// TestSnapshotPersistConcurrentWithApply persists while Apply carries on, as
// raft does; run with -race.
func TestSnapshotPersistConcurrentWithApply(t *testing.T) {
	h := newHarness(t)
	for i := range 2_000 {
		h.mustOK(t0, putCmd(fmt.Sprintf("k%04d", i), "v", 0))
	}
	want := snapshotBytes(t, h.f)
	snap, err := h.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	done := make(chan []byte)
	go func() {
		sink := &memSink{}
		if err := snap.Persist(sink); err != nil {
			t.Errorf("persist: %v", err)
		}
		done <- sink.Bytes()
	}()
	for i := range 2_000 {
		h.mustOK(t0, putCmd(fmt.Sprintf("k%04d", (i*7)%2_000), "w", 0))
		if i%3 == 0 {
			h.mustOK(t0, deleteCmd(fmt.Sprintf("k%04d", i), 0))
		}
		_, _ = h.f.Get("k0001", t0)
	}
	if got := <-done; !bytes.Equal(want, got) {
		t.Fatal("concurrent writes changed the persisted snapshot")
	}
}

// TestReadRevisionCoversWhatWasRead: the revision a read reports must be at
// least the mod_revision of what it read, so a client that passes it as
// min_revision elsewhere reads its own writes.
func TestReadRevisionCoversWhatWasRead(t *testing.T) {
	h := newHarness(t)
	h.mustOK(t0, putCmd("k", "v", 0))
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if e, rev := h.f.Get("k", t0); e == nil || rev < e.ModRevision {
				t.Errorf("Get returned mod_revision %d at revision %d", e.ModRevision, rev)
				return
			}
			if es, rev := h.f.GetMany([]string{"k"}, t0); rev < es[0].ModRevision {
				t.Errorf("GetMany returned mod_revision %d at revision %d", es[0].ModRevision, rev)
				return
			}
			if es, _, rev := h.f.List("", "", 1, t0); rev < es[0].ModRevision {
				t.Errorf("List returned mod_revision %d at revision %d", es[0].ModRevision, rev)
				return
			}
		}
	}()
	for range 10_000 {
		h.mustOK(t0, putCmd("k", "v", 0))
	}
	close(stop)
	<-done
}

// There is one Entry per key, so its size is the per-key overhead: 96 bytes
// is a runtime size class, one byte more costs 16 (the next class, 112).
func TestEntryFitsItsSizeClass(t *testing.T) {
	if got := unsafe.Sizeof(Entry{}); got != 96 {
		t.Fatalf("Entry is %d bytes, want 96 (reorder or shrink the new field)", got)
	}
}

func TestFSMInternsContentTypesUpToTheBound(t *testing.T) {
	h := newHarness(t)
	put := func(key, ct string) *Entry {
		t.Helper()
		// A fresh string each time, as decoding a command gives.
		ct = string([]byte(ct))
		h.mustOK(t0, &raftv1.Command{Op: &raftv1.Command_Put{Put: &raftv1.Put{Key: key, Value: []byte("v"), ContentType: ct}}})
		e, _ := h.f.Get(key, t0)
		if e == nil || e.ContentType != ct {
			t.Fatalf("%s: got %+v, want content type %q", key, e, ct)
		}
		return e
	}
	// A client's unusual types fill the table up to its bound...
	for i := range 2 * maxInternedContentTypes {
		put(fmt.Sprintf("k%03d", i), fmt.Sprintf("application/x-%d", i))
	}
	if n := len(h.f.ctypes); n != maxInternedContentTypes {
		t.Fatalf("intern table holds %d content types, want the bound %d", n, maxInternedContentTypes)
	}
	// ...and the common ones are shared all the same.
	a, b := put("a", "application/json"), put("b", "application/json")
	if unsafe.StringData(a.ContentType) != unsafe.StringData(b.ContentType) {
		t.Fatal("two entries with the same content type hold two copies")
	}

	// Restore interns too, and a restored FSM reads back the same types.
	restored := NewFSM()
	if err := restored.Restore(readCloser(snapshotBytes(t, h.f))); err != nil {
		t.Fatal(err)
	}
	ra, _ := restored.Get("a", t0)
	rb, _ := restored.Get("b", t0)
	if ra.ContentType != "application/json" || unsafe.StringData(ra.ContentType) != unsafe.StringData(rb.ContentType) {
		t.Fatalf("restored entries: %q and %q, want one shared application/json", ra.ContentType, rb.ContentType)
	}
	if diff := cmp.Diff(stateOf(h.f), stateOf(restored), stateOpts); diff != "" {
		t.Fatalf("restored state (-want +got):\n%s", diff)
	}
}

func TestFSMOriginalSizeSaturates(t *testing.T) {
	if got := originalSize(1 << 40); got != math.MaxUint32 {
		t.Fatalf("originalSize(1<<40) = %d, want %d", got, uint32(math.MaxUint32))
	}
	if got := originalSize(100); got != 100 {
		t.Fatalf("originalSize(100) = %d", got)
	}
}
