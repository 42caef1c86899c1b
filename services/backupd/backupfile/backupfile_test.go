package backupfile_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	raftv1 "github.com/concord-kv/concord/proto/gen/go/concord/raft/v1"
	"github.com/concord-kv/concord/services/backupd/backupfile"
	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/proto"
)

// snapshot builds a replica snapshot stream of n entries at index.
func snapshot(tb testing.TB, index uint64, n int, valueSize int) []byte {
	tb.Helper()
	var b bytes.Buffer
	must := func(_ int, err error) {
		if err != nil {
			tb.Fatal(err)
		}
	}
	must(protodelim.MarshalTo(&b, &raftv1.SnapshotHeader{FormatVersion: 1, AppliedIndex: index, EntryCount: uint64(n)}))
	must(protodelim.MarshalTo(&b, &raftv1.SnapshotRecord{Record: &raftv1.SnapshotRecord_Member{Member: &raftv1.SetMember{Id: "n1", ApiAddress: "http://127.0.0.1:7101"}}}))
	rng := rand.New(rand.NewPCG(uint64(n), index))
	for i := range n {
		v := make([]byte, valueSize)
		for j := range v {
			v[j] = byte('a' + rng.IntN(4)) // compressible, not trivially
		}
		must(protodelim.MarshalTo(&b, &raftv1.SnapshotRecord{Record: &raftv1.SnapshotRecord_Entry{Entry: &raftv1.Entry{
			Key: fmt.Sprintf("key/%08d", i), Value: v, CreateRevision: uint64(i + 1), ModRevision: uint64(i + 1), Version: 1,
		}}}))
	}
	return b.Bytes()
}

func header(index uint64, n int) backupfile.Header {
	return backupfile.Header{
		ClusterID: "c-1", Index: index, Term: 3, CreatedAt: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC),
		EntryCount: uint64(n), Node: "n1", SoftwareVersion: "test",
	}
}

// backup wraps a snapshot stream in a backup file, writing it in pieces of
// step bytes.
func backup(tb testing.TB, hdr backupfile.Header, snap []byte, step int) []byte {
	tb.Helper()
	var out bytes.Buffer
	w, err := backupfile.NewWriter(&out, hdr)
	if err != nil {
		tb.Fatal(err)
	}
	for p := snap; len(p) > 0; {
		k := min(step, len(p))
		if n, err := w.Write(p[:k]); err != nil || n != k {
			tb.Fatalf("Write: %d, %v", n, err)
		}
		p = p[k:]
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return out.Bytes()
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries int
		size    int
		step    int
	}{
		{"empty", 0, 0, 1},
		{"small", 10, 16, 7},
		{"several chunks", 12_000, 256, 100_000}, // ~3.3 MB of stream
		{"chunk-sized writes", 5_000, 300, backupfile.ChunkSize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snap := snapshot(t, 42, tc.entries, tc.size)
			file := backup(t, header(42, tc.entries), snap, tc.step)
			if tc.entries > 1000 && len(file) >= len(snap) {
				t.Errorf("backup of %d bytes for a %d-byte snapshot: not compressed", len(file), len(snap))
			}
			r, err := backupfile.NewReader(bytes.NewReader(file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, snap) {
				t.Fatalf("read back %d bytes, want the %d written", len(got), len(snap))
			}
			want := header(42, tc.entries)
			want.FormatVersion, want.Compression = backupfile.FormatVersion, backupfile.CompressionZstd
			if r.Header() != want {
				t.Errorf("header %+v, want %+v", r.Header(), want)
			}
			hdr, err := backupfile.Verify(bytes.NewReader(file))
			if err != nil || hdr != want {
				t.Errorf("Verify: %+v, %v", hdr, err)
			}
		})
	}
}

// Every single-byte change and every truncation of a backup is caught: by
// the magic, the header, zstd or the trailer's SHA-256.
func TestEveryCorruptionIsCaught(t *testing.T) {
	file := backup(t, header(9, 40), snapshot(t, 9, 40, 24), 50)
	for i := range file {
		bad := bytes.Clone(file)
		bad[i] ^= 0x01
		if _, err := backupfile.Verify(bytes.NewReader(bad)); !errors.Is(err, backupfile.ErrCorrupt) && !errors.Is(err, backupfile.ErrUnsupported) {
			t.Fatalf("byte %d of %d flipped: Verify says %v", i, len(file), err)
		}
		if _, err := backupfile.Verify(bytes.NewReader(file[:i])); !errors.Is(err, backupfile.ErrCorrupt) {
			t.Fatalf("truncated to %d of %d bytes: Verify says %v", i, len(file), err)
		}
	}
	if _, err := backupfile.Verify(bytes.NewReader(append(bytes.Clone(file), 0))); !errors.Is(err, backupfile.ErrCorrupt) {
		t.Errorf("a byte after the trailer: Verify says %v", err)
	}
}

// A file whose layers are intact but disagree with its header is refused.
func TestVerifyChecksTheSnapshotAgainstTheHeader(t *testing.T) {
	snap := snapshot(t, 9, 5, 8)
	for name, tc := range map[string]struct {
		hdr  backupfile.Header
		snap []byte
	}{
		"entry count":         {header(9, 6), snap},
		"index":               {header(10, 5), snap},
		"not a snapshot":      {header(9, 5), []byte("hello, world")},
		"truncated snapshot":  {header(9, 5), snap[:len(snap)-3]},
		"snapshot format 2":   {header(9, 0), mustDelim(t, &raftv1.SnapshotHeader{FormatVersion: 2, AppliedIndex: 9})},
		"entry without a key": {header(9, 1), append(mustDelim(t, &raftv1.SnapshotHeader{FormatVersion: 1, AppliedIndex: 9, EntryCount: 1}), mustDelim(t, &raftv1.SnapshotRecord{Record: &raftv1.SnapshotRecord_Entry{Entry: &raftv1.Entry{Value: []byte("v")}}})...)},
	} {
		_, err := backupfile.Verify(bytes.NewReader(backup(t, tc.hdr, tc.snap, 1024)))
		if !errors.Is(err, backupfile.ErrCorrupt) && !errors.Is(err, backupfile.ErrUnsupported) {
			t.Errorf("%s: Verify says %v", name, err)
		}
	}
}

func TestUnsupportedFormat(t *testing.T) {
	file := backup(t, header(1, 0), snapshot(t, 1, 0, 0), 1)
	// Rewrite the header with format 2, same length: "format_version":1 -> 2.
	bad := bytes.Replace(file, []byte(`"format_version":1`), []byte(`"format_version":2`), 1)
	_, err := backupfile.NewReader(bytes.NewReader(bad))
	if !errors.Is(err, backupfile.ErrUnsupported) {
		t.Errorf("format 2: %v, want ErrUnsupported", err)
	}
}

func mustDelim(tb testing.TB, m proto.Message) []byte {
	tb.Helper()
	var b bytes.Buffer
	if _, err := protodelim.MarshalTo(&b, m); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

// Closing twice writes the trailer once; writing after Close fails.
func TestWriterCloseIsIdempotent(t *testing.T) {
	snap := snapshot(t, 5, 3, 16)
	var out bytes.Buffer
	w, err := backupfile.NewWriter(&out, header(5, 3))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(snap); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := w.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
	if n, err := w.Write([]byte("x")); err == nil || n != 0 {
		t.Errorf("Write after Close = %d, %v; want an error", n, err)
	}
	if _, err := backupfile.Verify(bytes.NewReader(out.Bytes())); err != nil {
		t.Errorf("Verify after a double Close: %v", err)
	}
}

// A header no reader would accept is refused before anything is written.
func TestWriterRefusesAnOversizedHeader(t *testing.T) {
	hdr := header(5, 3)
	hdr.Node = strings.Repeat("n", 70<<10)
	var out bytes.Buffer
	if _, err := backupfile.NewWriter(&out, hdr); err == nil {
		t.Fatal("NewWriter accepted a 70 KiB header")
	}
	if out.Len() != 0 {
		t.Errorf("NewWriter wrote %d bytes before refusing", out.Len())
	}
}

// A reader that fails (a reset connection, a timeout) is not a corrupt
// file: its error comes through, and ErrCorrupt does not.
func TestReadErrorsAreNotCorruption(t *testing.T) {
	file := backup(t, header(5, 300), snapshot(t, 5, 300, 64), 1000)
	broken := errors.New("connection reset by peer")
	for _, cut := range []int{0, 3, len(backupfile.Magic) + 2, len(file) / 2, len(file) - 10, len(file)} {
		r := io.MultiReader(bytes.NewReader(file[:cut]), iotest.ErrReader(broken))
		_, err := backupfile.Verify(r)
		if !errors.Is(err, broken) || errors.Is(err, backupfile.ErrCorrupt) {
			t.Errorf("reader failing after %d of %d bytes: Verify = %v, want the reader's error and not ErrCorrupt", cut, len(file), err)
		}
	}
}
