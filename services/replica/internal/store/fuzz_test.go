package store

import (
	"bytes"
	"io"
	"slices"
	"sort"
	"strings"
	"testing"
	"unicode/utf8"

	raftv1 "github.com/concord-kv/concord/proto/gen/go/concord/raft/v1"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
)

// splitCommands cuts fuzz input into length-prefixed command payloads.
func splitCommands(data []byte) [][]byte {
	var out [][]byte
	for len(data) > 0 && len(out) < 64 {
		n := int(data[0])
		data = data[1:]
		n = min(n, len(data))
		out = append(out, data[:n])
		data = data[n:]
	}
	return out
}

func joinCommands(cmds ...*raftv1.Command) []byte {
	var out []byte
	for _, c := range cmds {
		b, _ := proto.Marshal(c)
		if len(b) > 255 {
			panic("seed command too long")
		}
		out = append(out, byte(len(b)))
		out = append(out, b...)
	}
	return out
}

func fuzzSeeds() [][]byte {
	put := func(k, v string, ttl int64, stamp int64) *raftv1.Command {
		return &raftv1.Command{StampUnixMs: stamp, Op: &raftv1.Command_Put{Put: &raftv1.Put{Key: k, Value: []byte(v), TtlMs: ttl}}}
	}
	return [][]byte{
		joinCommands(put("a", "1", 0, 1000), put("b", "2", 500, 1000)),
		joinCommands(put("a", "1", 0, 1), &raftv1.Command{StampUnixMs: 2, Op: &raftv1.Command_Put{Put: &raftv1.Put{Key: "a", IfAbsent: true}}}),
		joinCommands(put("k", "v", 10, 5), &raftv1.Command{StampUnixMs: 100, Op: &raftv1.Command_Expire{Expire: &raftv1.Expire{Keys: []string{"k", "zz"}}}}),
		joinCommands(&raftv1.Command{Op: &raftv1.Command_BatchPut{BatchPut: &raftv1.BatchPut{Puts: []*raftv1.Put{{Key: "x"}, {Key: "y", IfModRevision: 3}}}}},
			&raftv1.Command{Op: &raftv1.Command_BatchTouch{BatchTouch: &raftv1.BatchTouch{Touches: []*raftv1.Touch{{Key: "x", TtlMs: 5}, {Key: "q"}}}}},
			&raftv1.Command{Op: &raftv1.Command_BatchDelete{BatchDelete: &raftv1.BatchDelete{Keys: []string{"x", "y"}}}}),
		joinCommands(&raftv1.Command{Op: &raftv1.Command_SetMember{SetMember: &raftv1.SetMember{Id: "n1", ApiAddress: "http://a"}}}, &raftv1.Command{Op: &raftv1.Command_Noop{}}),
		{3, 0xff, 0xff, 0xff},
		{},
	}
}

// FuzzApply feeds arbitrary command bytes to two FSMs: Apply never panics,
// and both reach the same state (snapshot bytes) and the same results.
func FuzzApply(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, b := NewFSM(), NewFSM()
		var logs []*raft.Log
		for i, c := range splitCommands(data) {
			logs = append(logs, &raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: c})
		}
		ra := a.ApplyBatch(logs)
		var rb []any
		for _, l := range logs {
			rb = append(rb, b.Apply(l))
		}
		for i := range ra {
			if !proto.Equal(ra[i].(*raftv1.Result), rb[i].(*raftv1.Result)) {
				t.Fatalf("entry %d: batch result %v, single result %v", i, ra[i], rb[i])
			}
		}
		if !bytes.Equal(snapshotBytes(t, a), snapshotBytes(t, b)) {
			t.Fatal("two FSMs fed the same commands differ")
		}
		if n := uint64(len(logs)); a.Applied() != n {
			t.Fatalf("applied %d, want %d", a.Applied(), n)
		}
	})
}

// FuzzRestore feeds arbitrary bytes to Restore: it returns an error or a
// state whose snapshot restores to itself; it never panics, and a failed
// restore leaves the previous state untouched.
func FuzzRestore(f *testing.F) {
	good := NewFSM()
	good.ApplyBatch([]*raft.Log{{Index: 1, Type: raft.LogCommand, Data: splitCommands(fuzzSeeds()[0])[0]}})
	f.Add(snapshotBytes(f, good))
	f.Add(snapshotBytes(f, NewFSM()))
	f.Add([]byte{})
	f.Add([]byte{0x08, 0x0a, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		fsm := NewFSM()
		fsm.ApplyBatch([]*raft.Log{{Index: 7, Type: raft.LogCommand, Data: splitCommands(fuzzSeeds()[0])[0]}})
		before := snapshotBytes(t, fsm)
		if err := fsm.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
			if !bytes.Equal(before, snapshotBytes(t, fsm)) {
				t.Fatal("a failed restore changed the state")
			}
			return
		}
		again := NewFSM()
		snap := snapshotBytes(t, fsm)
		if err := again.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
			t.Fatalf("restoring our own snapshot: %v", err)
		}
		if !bytes.Equal(snap, snapshotBytes(t, again)) {
			t.Fatal("snapshot does not round trip")
		}
	})
}

// FuzzList compares List's prefix, cursor and limit logic with a sorted
// slice.
func FuzzList(f *testing.F) {
	f.Add([]byte("a\x00ab\x00abc\x00b\x00ba"), "a", "ab", uint8(2))
	f.Add([]byte("x\x00y\x00z"), "", "", uint8(0))
	f.Add([]byte("k1\x00k2\x00k3\x00k10"), "k", "k1", uint8(1))
	f.Add([]byte("\xff\x00\xfe\x00é\x00éa"), "é", "", uint8(5))
	f.Fuzz(func(t *testing.T, keyBytes []byte, prefix, after string, limit uint8) {
		fsm := NewFSM()
		set := map[string]bool{}
		var puts []*raftv1.Put
		for _, k := range strings.Split(string(keyBytes), "\x00") {
			// Keys are UTF-8 (the API validates them; proto3 strings must be).
			if k == "" || !utf8.ValidString(k) || set[k] || len(puts) == 200 {
				continue
			}
			set[k] = true
			puts = append(puts, &raftv1.Put{Key: k, Value: []byte("v")})
		}
		if len(puts) > 0 {
			data, _ := proto.Marshal(&raftv1.Command{Op: &raftv1.Command_BatchPut{BatchPut: &raftv1.BatchPut{Puts: puts}}})
			fsm.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: data})
		}
		keys := slices.Sorted(func(yield func(string) bool) {
			for k := range set {
				if !yield(k) {
					return
				}
			}
		})
		lim := int(limit%20) + 1
		var want []string
		for _, k := range keys {
			if strings.HasPrefix(k, prefix) && (after == "" || k > after) {
				want = append(want, k)
			}
		}
		wantMore := len(want) > lim
		want = want[:min(lim, len(want))]
		got, more, _ := fsm.List(prefix, after, lim, 0)
		gotKeys := make([]string, len(got))
		for i, e := range got {
			gotKeys[i] = e.Key
		}
		if !slices.Equal(gotKeys, want) || more != wantMore {
			t.Fatalf("List(%q, %q, %d) = %q more=%v, want %q more=%v", prefix, after, lim, gotKeys, more, want, wantMore)
		}
		if !sort.StringsAreSorted(gotKeys) {
			t.Fatal("not in order")
		}
	})
}
