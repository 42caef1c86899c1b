package store

import (
	"fmt"
	"testing"

	raftv1 "github.com/concord-kv/concord/proto/gen/go/concord/raft/v1"
	"github.com/hashicorp/raft"
)

// The FSM's hot paths, with -benchmem: go test -run '^$' -bench FSM -benchmem .

const benchKeys = 10000

func benchKey(i int) string { return fmt.Sprintf("k%07d", i%benchKeys) }

// loadedFSM returns an FSM holding benchKeys keys with 256-byte values.
func loadedFSM(b *testing.B) *FSM {
	b.Helper()
	f := NewFSM()
	value := make([]byte, 256)
	puts := make([]*raftv1.Put, 0, 500)
	idx := uint64(0)
	for i := range benchKeys {
		puts = append(puts, &raftv1.Put{Key: benchKey(i), Value: value, ContentType: "application/octet-stream"})
		if len(puts) == cap(puts) || i == benchKeys-1 {
			idx++
			f.Apply(commandLog(b, idx, &raftv1.Command{StampUnixMs: 1, Op: &raftv1.Command_BatchPut{BatchPut: &raftv1.BatchPut{Puts: puts}}}))
			puts = puts[:0]
		}
	}
	return f
}

func BenchmarkFSMApply(b *testing.B) {
	value := make([]byte, 256)
	for _, tc := range []struct {
		name  string
		items int // 0: a single Put
	}{
		{"put", 0},
		{"batch_put_16", 16},
		{"batch_put_64", 64},
	} {
		b.Run(tc.name, func(b *testing.B) {
			f := loadedFSM(b)
			logs := make([]*raft.Log, 1024)
			for i := range logs {
				cmd := &raftv1.Command{StampUnixMs: 1, Op: &raftv1.Command_Put{Put: &raftv1.Put{Key: benchKey(i), Value: value}}}
				if tc.items > 0 {
					puts := make([]*raftv1.Put, tc.items)
					for j := range puts {
						puts[j] = &raftv1.Put{Key: benchKey(i*tc.items + j), Value: value}
					}
					cmd.Op = &raftv1.Command_BatchPut{BatchPut: &raftv1.BatchPut{Puts: puts}}
				}
				logs[i] = commandLog(b, 0, cmd)
			}
			b.ReportAllocs()
			idx := uint64(1000)
			for b.Loop() {
				idx++
				l := logs[idx%uint64(len(logs))]
				l.Index = idx
				f.Apply(l)
			}
		})
	}
}

func BenchmarkFSMRead(b *testing.B) {
	f := loadedFSM(b)
	b.Run("get", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			if e, _ := f.Get(benchKey(i), 2); e == nil {
				b.Fatal("missing key")
			}
		}
	})
	b.Run("get_many_64", func(b *testing.B) {
		keys := make([]string, 64)
		for i := range keys {
			keys[i] = benchKey(i * 97)
		}
		b.ReportAllocs()
		for b.Loop() {
			f.GetMany(keys, 2)
		}
	})
	b.Run("get_parallel", func(b *testing.B) {
		keys := make([]string, benchKeys)
		for i := range keys {
			keys[i] = benchKey(i)
		}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				i++
				f.Get(keys[i%benchKeys], 2)
			}
		})
	})
}
