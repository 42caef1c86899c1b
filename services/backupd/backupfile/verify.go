package backupfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	raftv1 "github.com/concord-kv/concord/proto/gen/go/concord/raft/v1"
	"google.golang.org/protobuf/encoding/protodelim"
)

// snapshotFormat is the replica's snapshot stream version this package
// understands.
const snapshotFormat = 1

// maxRecordSize bounds one snapshot record, as the replica does.
const maxRecordSize = 8 << 20

// Verify reads a whole backup from r and checks it: the trailer's SHA-256,
// every chunk, and the snapshot inside (well formed, of the index and entry
// count the header states). It returns the header. Restore runs it before
// changing anything.
func Verify(r io.Reader) (Header, error) {
	br, err := NewReader(r)
	if err != nil {
		return Header{}, err
	}
	defer func() { _ = br.Close() }()
	hdr := br.Header()
	snap, entries, err := readSnapshot(br)
	if err != nil {
		return hdr, err
	}
	if snap.GetAppliedIndex() != hdr.Index {
		return hdr, fmt.Errorf("%w: snapshot of index %d in a backup of index %d", ErrCorrupt, snap.GetAppliedIndex(), hdr.Index)
	}
	if entries != hdr.EntryCount || snap.GetEntryCount() != hdr.EntryCount {
		return hdr, fmt.Errorf("%w: %d entries (snapshot header %d), the backup header says %d", ErrCorrupt, entries, snap.GetEntryCount(), hdr.EntryCount)
	}
	return hdr, nil
}

// readSnapshot reads a snapshot stream to its end and counts its entries.
// Errors of the backup layer (ErrCorrupt, a failed read) come through
// unchanged.
func readSnapshot(r io.Reader) (*raftv1.SnapshotHeader, uint64, error) {
	br := bufio.NewReader(r)
	opts := protodelim.UnmarshalOptions{MaxSize: maxRecordSize}
	snap := &raftv1.SnapshotHeader{}
	if err := opts.UnmarshalFrom(br, snap); err != nil {
		return nil, 0, snapshotError("snapshot header", err)
	}
	if snap.GetFormatVersion() != snapshotFormat {
		return nil, 0, fmt.Errorf("%w: snapshot format %d (this version reads %d)", ErrUnsupported, snap.GetFormatVersion(), snapshotFormat)
	}
	var n uint64
	for i := 0; ; i++ {
		var rec raftv1.SnapshotRecord
		err := opts.UnmarshalFrom(br, &rec)
		if errors.Is(err, io.EOF) {
			return snap, n, nil
		}
		if err != nil {
			return nil, 0, snapshotError(fmt.Sprintf("snapshot record %d", i), err)
		}
		switch r := rec.GetRecord().(type) {
		case *raftv1.SnapshotRecord_Entry:
			if r.Entry.GetKey() == "" {
				return nil, 0, fmt.Errorf("%w: snapshot record %d: empty key", ErrCorrupt, i)
			}
			n++
		case *raftv1.SnapshotRecord_Member:
			if r.Member.GetId() == "" {
				return nil, 0, fmt.Errorf("%w: snapshot record %d: member without id", ErrCorrupt, i)
			}
		default:
			return nil, 0, fmt.Errorf("%w: snapshot record %d: unknown type", ErrCorrupt, i)
		}
	}
}

func snapshotError(what string, err error) error {
	if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrUnsupported) || errors.Is(err, errRead) {
		return err
	}
	return fmt.Errorf("%w: %s: %w", ErrCorrupt, what, err)
}
