package backupfile_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/concord-kv/concord/services/backupd/backupfile"
)

// FuzzVerify feeds arbitrary bytes to the backup reader: it never panics,
// every error is ErrCorrupt or ErrUnsupported, and a file Verify accepts
// reads to its end without error.
func FuzzVerify(f *testing.F) {
	good := backup(f, header(9, 3), snapshot(f, 9, 3, 8), 16)
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add(backup(f, header(0, 0), nil, 1))
	f.Add([]byte(backupfile.Magic))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := backupfile.Verify(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, backupfile.ErrCorrupt) && !errors.Is(err, backupfile.ErrUnsupported) {
				t.Fatalf("error %v is neither ErrCorrupt nor ErrUnsupported", err)
			}
			return
		}
		r, err := backupfile.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("Verify accepted a file NewReader refuses: %v", err)
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			t.Fatalf("Verify accepted a file that does not read through: %v", err)
		}
	})
}

// FuzzRoundTrip writes arbitrary stream bytes in arbitrary pieces and reads
// them back unchanged.
func FuzzRoundTrip(f *testing.F) {
	f.Add(snapshot(f, 1, 20, 10), uint16(7))
	f.Add([]byte{}, uint16(0))
	f.Add(bytes.Repeat([]byte{0}, 5000), uint16(4096))
	f.Fuzz(func(t *testing.T, stream []byte, step uint16) {
		file := backup(t, header(1, 0), stream, int(step)+1)
		r, err := backupfile.NewReader(bytes.NewReader(file))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, stream) {
			t.Fatalf("read back %d bytes (%v), want the %d written", len(got), err, len(stream))
		}
	})
}
