package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	raftwal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	"go.etcd.io/bbolt"
)

// Log store kinds: where a replica keeps its Raft log and stable state.
const (
	// LogStoreAuto (or "") opens the kind the data directory holds, and
	// LogStoreWAL in a new one. The default.
	LogStoreAuto = "auto"
	// LogStoreBolt is hashicorp/raft-boltdb (bbolt): one file, raft.db; two
	// fdatasyncs per append. The default until the chaos suite had run the
	// WAL, so older data directories hold it.
	LogStoreBolt = "bolt"
	// LogStoreWAL is hashicorp/raft-wal: segment files and a small meta
	// database under wal/; one fdatasync per append. Its authors still call
	// it experimental (Consul offers it as an option); Concord runs it by
	// default since the chaos suite's campaigns on it came out clean
	// (tests/chaos/README.md).
	LogStoreWAL = "wal"
)

// ErrLogStoreMismatch reports a data directory that holds the other kind of
// log store than the one asked for.
var ErrLogStoreMismatch = errors.New("the data directory holds another kind of Raft log store")

// logStore is a Raft log and stable store that can be closed.
type logStore interface {
	raft.LogStore
	raft.StableStore
	Close() error
}

// walStore is a raft-wal WAL that closes its meta database too.
type walStore struct {
	*raftwal.WAL
	meta *metadb.BoltMetaDB
}

func (w walStore) Close() error {
	err := w.WAL.Close()
	if cerr := w.meta.Close(); err == nil {
		err = cerr
	}
	return err
}

// logStorePaths is where each kind keeps its files in the data directory.
var logStorePaths = map[string]string{LogStoreBolt: "raft.db", LogStoreWAL: "wal"}

// ValidateLogStore reports whether kind names a log store: LogStoreAuto
// (or ""), LogStoreWAL or LogStoreBolt.
func ValidateLogStore(kind string) error {
	switch kind {
	case "", LogStoreAuto, LogStoreWAL, LogStoreBolt:
		return nil
	}
	return fmt.Errorf("log store %q: want %s, %s or %s", kind, LogStoreAuto, LogStoreWAL, LogStoreBolt)
}

// resolveLogStore names the kind of log store to open in dir: kind itself,
// or for LogStoreAuto the kind dir holds, LogStoreWAL when it holds none.
func resolveLogStore(dir, kind string) (string, error) {
	if err := ValidateLogStore(kind); err != nil {
		return "", err
	}
	if kind == LogStoreBolt || kind == LogStoreWAL {
		return kind, nil
	}
	var held []string
	for _, k := range []string{LogStoreWAL, LogStoreBolt} {
		// Lstat: a dangling link (an unmounted volume) is not "nothing here".
		if _, err := os.Lstat(filepath.Join(dir, logStorePaths[k])); err == nil {
			held = append(held, k)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
	}
	switch len(held) {
	case 0:
		return LogStoreWAL, nil
	case 1:
		return held[0], nil
	}
	return "", fmt.Errorf("%w: %s holds both a wal log (%s) and a bolt log (%s); remove the one that is not this replica's",
		ErrLogStoreMismatch, dir, logStorePaths[LogStoreWAL], logStorePaths[LogStoreBolt])
}

// logStoreCreates is the path opening the log store of kind (resolved) in
// dir would create, or "" when it exists already (or kind is unknown).
func logStoreCreates(dir, kind string) string {
	p, ok := logStorePaths[kind]
	if !ok {
		return ""
	}
	p = filepath.Join(dir, p)
	if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
		return p
	}
	return ""
}

// openLogStore opens (creating if needed) the log store of the given kind
// (resolved: LogStoreBolt or LogStoreWAL) in dir. It refuses a directory
// that holds the other kind, so a changed flag never starts a replica with
// an empty log beside its real one.
func openLogStore(dir, kind string) (logStore, error) {
	if _, ok := logStorePaths[kind]; !ok {
		return nil, fmt.Errorf("log store %q: want %s or %s", kind, LogStoreBolt, LogStoreWAL)
	}
	for other, p := range logStorePaths {
		if other == kind {
			continue
		}
		if _, err := os.Lstat(filepath.Join(dir, p)); err == nil {
			return nil, fmt.Errorf("%w: %s holds a %s log (%s), not %s; start with that log store or empty the directory",
				ErrLogStoreMismatch, dir, other, p, kind)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	switch kind {
	case LogStoreWAL:
		wdir := filepath.Join(dir, logStorePaths[LogStoreWAL])
		_, statErr := os.Lstat(wdir)
		fresh := errors.Is(statErr, fs.ErrNotExist)
		if err := os.MkdirAll(wdir, 0o700); err != nil {
			return nil, err
		}
		// The WAL is given its meta database so it can be closed: WAL.Close
		// (v0.4.0) leaves it open, and with it the file lock a reopen in
		// the same process would wait on for ever.
		meta := &metadb.BoltMetaDB{}
		w, err := raftwal.Open(wdir, raftwal.WithMetaStore(meta))
		if err != nil {
			_ = meta.Close()
			if fresh {
				// Leave no empty wal/ behind: it would make the directory
				// refuse the bolt store it could still start with.
				_ = os.RemoveAll(wdir)
			}
			return nil, err
		}
		return walStore{WAL: w, meta: meta}, nil
	default:
		// The free-page list is not written at every commit but rebuilt
		// when the file is opened (as Consul does): a Raft log whose head
		// is truncated after every snapshot leaves a long free list, and
		// writing it out made each commit larger. Every commit is still
		// fsynced.
		return raftboltdb.New(raftboltdb.Options{
			Path:        filepath.Join(dir, logStorePaths[LogStoreBolt]),
			BoltOptions: &bbolt.Options{NoFreelistSync: true, FreelistType: bbolt.FreelistMapType},
		})
	}
}

// exitOnWriteError makes a failed log append fatal, as etcd does with its
// WAL: the process panics, and a supervisor restarts it from what is on
// disk. hashicorp/raft cannot be trusted to carry on: a follower that
// truncated a conflicting suffix and then failed to append keeps its old
// last index in memory (a TODO in raft's appendEntries) and refuses every
// later request for good (bug B3 in tests/chaos/README.md). A leader's
// failed append is survivable, but a disk that failed a sync cannot be
// trusted either (what reached it is unknown), so both exit.
type exitOnWriteError struct {
	raft.LogStore
}

func (s exitOnWriteError) StoreLog(l *raft.Log) error {
	return s.StoreLogs([]*raft.Log{l})
}

func (s exitOnWriteError) StoreLogs(logs []*raft.Log) error {
	if err := s.LogStore.StoreLogs(logs); err != nil {
		panic(fmt.Sprintf("raft log append failed; exiting so the replica restarts from its disk: %v", err))
	}
	return nil
}

// IsMonotonic passes on the wrapped store's answer (raft.MonotonicLogStore).
func (s exitOnWriteError) IsMonotonic() bool {
	m, ok := s.LogStore.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}
