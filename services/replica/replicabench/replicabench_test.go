package replicabench

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"testing"
)

func key(i int) string { return fmt.Sprintf("k%07d", i) }

func TestApplyAndRead(t *testing.T) {
	f := NewFSM()
	value := make([]byte, 100)
	put, err := EncodePut(key(1), value, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Apply(put); err != nil {
		t.Fatal(err)
	}
	rev := f.Get(key(1))
	if rev == 0 {
		t.Fatal("put key not found")
	}
	bulk, err := EncodeBatchPut([]string{key(2), key(3)}, value)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Apply(bulk, put); err != nil {
		t.Fatal(err)
	}
	if n := f.GetMany([]string{key(1), key(2), key(3), key(4)}); n != 3 {
		t.Fatalf("GetMany found %d, want 3", n)
	}
	stale, err := EncodePut(key(1), value, 0, rev)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Apply(stale); !errors.Is(err, ErrRejected) {
		t.Fatalf("stale CAS: %v, want ErrRejected", err)
	}
	if keys, mem := f.Stats(); keys != 3 || mem == 0 {
		t.Fatalf("Stats() = %d, %d", keys, mem)
	}
}

func BenchmarkFSM(b *testing.B) {
	const keys = 10000
	value := make([]byte, 256)
	preload := func(b *testing.B) *FSM {
		f := NewFSM()
		batch := make([]string, 0, 500)
		for i := range keys {
			batch = append(batch, key(i))
			if len(batch) == cap(batch) {
				p, err := EncodeBatchPut(batch, value)
				if err != nil {
					b.Fatal(err)
				}
				if err := f.Apply(p); err != nil {
					b.Fatal(err)
				}
				batch = batch[:0]
			}
		}
		return f
	}
	b.Run("put", func(b *testing.B) {
		f := preload(b)
		cmds := make([][]byte, 1024)
		for i := range cmds {
			var err error
			if cmds[i], err = EncodePut(key(i*7%keys), value, 0, 0); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if err := f.Apply(cmds[i%len(cmds)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("get", func(b *testing.B) {
		f := preload(b)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if f.Get(key(i*7%keys)) == 0 {
				b.Fatal("missing key")
			}
			i++
		}
	})
}

// BenchmarkFSMMemory loads keys of 16 B with 100 B values in bulk puts and
// reports the Go heap they hold per key (heap-B/key) and that minus the raw
// key and value bytes (overhead-B/key).
func BenchmarkFSMMemory(b *testing.B) {
	const keys, keySize, valueSize = 100000, 16, 100
	value := make([]byte, valueSize)
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		f := NewFSM()
		batch := make([]string, 0, 500)
		for i := range keys {
			batch = append(batch, fmt.Sprintf("k%0*d", keySize-1, i))
			if len(batch) == cap(batch) || i == keys-1 {
				p, err := EncodeBatchPut(batch, value)
				if err != nil {
					b.Fatal(err)
				}
				if err := f.Apply(p); err != nil {
					b.Fatal(err)
				}
				batch = batch[:0]
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perKey := float64(after.HeapAlloc-before.HeapAlloc) / keys
		b.ReportMetric(perKey, "heap-B/key")
		b.ReportMetric(perKey-keySize-valueSize, "overhead-B/key")
		runtime.KeepAlive(f)
	}
}

// BenchmarkFSMRestore measures restoring a snapshot of 100,000 keys (16 B
// keys, 100 B values), the work a replica does at start before it serves.
func BenchmarkFSMRestore(b *testing.B) {
	const keys = 100000
	f := NewFSM()
	value := make([]byte, 100)
	batch := make([]string, 0, 500)
	for i := range keys {
		batch = append(batch, fmt.Sprintf("k%015d", i))
		if len(batch) == cap(batch) {
			p, err := EncodeBatchPut(batch, value)
			if err != nil {
				b.Fatal(err)
			}
			if err := f.Apply(p); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	var snap bytes.Buffer
	if err := f.Snapshot(&snap); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		g := NewFSM()
		if err := g.Restore(bytes.NewReader(snap.Bytes())); err != nil {
			b.Fatal(err)
		}
		if n, _ := g.Stats(); n != keys {
			b.Fatalf("restored %d keys, want %d", n, keys)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/keys, "ns/key")
}
