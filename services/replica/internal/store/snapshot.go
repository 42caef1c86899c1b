package store

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"

	raftv1 "github.com/concord-kv/concord/proto/gen/go/concord/raft/v1"
	"github.com/google/btree"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/encoding/protodelim"
)

// snapshotFormat is the version of the snapshot stream layout:
// a length-delimited SnapshotHeader, then length-delimited SnapshotRecords.
const snapshotFormat = 1

// maxRecordSize bounds one record when reading a snapshot, so a corrupt
// length prefix cannot allocate without limit.
const maxRecordSize = 8 << 20

// Snapshot captures the state in O(1): the tree is cloned lazily
// (copy-on-write) and Persist streams it while Apply carries on.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &fsmSnapshot{
		data:    f.data.Clone(),
		members: f.members,
		applied: f.applied.Load(),
		logTime: f.logTime,
	}, nil
}

type fsmSnapshot struct {
	data    *btree.BTreeG[*Entry]
	members map[string]string
	applied uint64
	logTime int64
}

// Persist writes the snapshot to sink.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.write(sink); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

// write streams the snapshot in the snapshot format.
func (s *fsmSnapshot) write(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	hdr := &raftv1.SnapshotHeader{FormatVersion: snapshotFormat, AppliedIndex: s.applied, EntryCount: uint64(s.data.Len()), LogTimeUnixMs: s.logTime}
	if _, err := protodelim.MarshalTo(bw, hdr); err != nil {
		return err
	}
	// Members in id order: map order is random, and identical states must
	// give identical snapshot bytes (backups and replicas are compared by
	// hash).
	for _, id := range slices.Sorted(maps.Keys(s.members)) {
		rec := &raftv1.SnapshotRecord{Record: &raftv1.SnapshotRecord_Member{Member: &raftv1.SetMember{Id: id, ApiAddress: s.members[id]}}}
		if _, err := protodelim.MarshalTo(bw, rec); err != nil {
			return err
		}
	}
	var err error
	rec := &raftv1.SnapshotRecord{}
	pe := &raftv1.Entry{}
	s.data.Ascend(func(e *Entry) bool {
		pe.Key, pe.Value, pe.ContentType, pe.Compression = e.Key, e.Value, e.ContentType, e.Compression
		pe.CreateRevision, pe.ModRevision, pe.Version = e.CreateRevision, e.ModRevision, e.Version
		pe.ExpiresAtUnixMs, pe.OriginalSize = e.ExpiresAtMs, uint64(e.OriginalSize)
		rec.Record = &raftv1.SnapshotRecord_Entry{Entry: pe}
		_, err = protodelim.MarshalTo(bw, rec)
		return err == nil
	})
	if err != nil {
		return err
	}
	return bw.Flush()
}

// Release is called when raft is done with the snapshot.
func (s *fsmSnapshot) Release() {}

// Restore replaces all state with the snapshot read from rc.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer func() { _ = rc.Close() }()
	fresh := NewFSM()
	applied, err := fresh.load(rc)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.data, f.expiry, f.members, f.mem, f.ctypes = fresh.data, fresh.expiry, fresh.members, fresh.mem, fresh.ctypes
	f.logTime = fresh.logTime
	f.applied.Store(applied)
	f.mu.Unlock()
	f.notifyApplied()
	return nil
}

// errB6Snapshot marks a snapshot whose log's clock had run ahead of its
// stamps under bug B6 (tests/chaos/README.md): replicas restoring it and
// replicas replaying the log would disagree on when keys expire.
var errB6Snapshot = errors.New("snapshot clock cannot be reproduced")

// load reads a snapshot stream into an empty FSM.
func (f *FSM) load(r io.Reader) (uint64, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	opts := protodelim.UnmarshalOptions{MaxSize: maxRecordSize}
	var hdr raftv1.SnapshotHeader
	if err := opts.UnmarshalFrom(br, &hdr); err != nil {
		return 0, fmt.Errorf("read snapshot header: %w", err)
	}
	if hdr.GetFormatVersion() != snapshotFormat {
		return 0, fmt.Errorf("snapshot format %d not supported (want %d)", hdr.GetFormatVersion(), snapshotFormat)
	}
	if last := hdr.GetB6LastStampUnixMs(); last != 0 && last != hdr.GetLogTimeUnixMs() {
		return 0, fmt.Errorf("%w: snapshot at index %d was written by a build with bug B6 after the leader's clock stepped back (log time %d, last stamp %d): its log's clock cannot be reproduced; empty this replica's data directory and let it catch up from the leader",
			errB6Snapshot, hdr.GetAppliedIndex(), hdr.GetLogTimeUnixMs(), last)
	}
	f.logTime = hdr.GetLogTimeUnixMs()
	var n uint64
	for {
		var rec raftv1.SnapshotRecord
		err := opts.UnmarshalFrom(br, &rec)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("read snapshot record %d: %w", n, err)
		}
		switch r := rec.GetRecord().(type) {
		case *raftv1.SnapshotRecord_Member:
			f.members[r.Member.GetId()] = r.Member.GetApiAddress()
		case *raftv1.SnapshotRecord_Entry:
			pe := r.Entry
			if pe.GetKey() == "" {
				return 0, fmt.Errorf("snapshot record %d: empty key", n)
			}
			f.replaceLocked(&Entry{
				Key: pe.GetKey(), Value: pe.GetValue(), ContentType: f.intern(pe.GetContentType()), Compression: pe.GetCompression(),
				CreateRevision: pe.GetCreateRevision(), ModRevision: pe.GetModRevision(), Version: pe.GetVersion(),
				ExpiresAtMs: pe.GetExpiresAtUnixMs(), OriginalSize: originalSize(pe.GetOriginalSize()),
			})
			n++
		default:
			return 0, fmt.Errorf("snapshot record %d: unknown type", n)
		}
	}
	if n != hdr.GetEntryCount() {
		return 0, fmt.Errorf("snapshot holds %d entries, header says %d", n, hdr.GetEntryCount())
	}
	return hdr.GetAppliedIndex(), nil
}
