package store

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// Each kind of log store keeps its log and stable state across a reopen,
// and a data directory refuses the other kind without touching anything.
func TestLogStoreKeepsItsKind(t *testing.T) {
	for _, tc := range []struct{ kind, other string }{{LogStoreBolt, LogStoreWAL}, {LogStoreWAL, LogStoreBolt}} {
		name := tc.kind
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := openLogStore(dir, tc.kind)
			if err != nil {
				t.Fatal(err)
			}
			logs := []*raft.Log{{Index: 1, Term: 1, Type: raft.LogCommand, Data: []byte("a")}, {Index: 2, Term: 1, Type: raft.LogCommand, Data: []byte("b")}}
			if err := s.StoreLogs(logs); err != nil {
				t.Fatal(err)
			}
			if err := s.SetUint64([]byte("CurrentTerm"), 7); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			before := listDir(t, dir)

			if _, err := openLogStore(dir, tc.other); !errors.Is(err, ErrLogStoreMismatch) {
				t.Fatalf("opening a %s directory as %s: %v, want ErrLogStoreMismatch", name, tc.other, err)
			}
			if after := listDir(t, dir); !slices.Equal(before, after) {
				t.Fatalf("a refused open changed the directory: %v, then %v", before, after)
			}

			s, err = openLogStore(dir, tc.kind)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = s.Close() }()
			var got raft.Log
			if err := s.GetLog(2, &got); err != nil || string(got.Data) != "b" {
				t.Fatalf("log 2 after reopen: %+v %v", got, err)
			}
			if term, err := s.GetUint64([]byte("CurrentTerm")); err != nil || term != 7 {
				t.Fatalf("term after reopen: %d %v", term, err)
			}
		})
	}
	if _, err := openLogStore(t.TempDir(), "rocks"); err == nil {
		t.Error("an unknown log store kind opened")
	}
}

// The default (auto) opens what a data directory holds, so a directory
// created with the bolt store keeps starting after the default changed,
// and a new one gets the WAL.
func TestAutoLogStoreOpensWhatTheDirectoryHolds(t *testing.T) {
	for _, created := range []string{LogStoreBolt, LogStoreWAL} {
		dir := t.TempDir()
		s, err := openLogStore(dir, created)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		for _, auto := range []string{LogStoreAuto, ""} {
			if got, err := resolveLogStore(dir, auto); err != nil || got != created {
				t.Errorf("%q in a %s directory: %q %v, want %s", auto, created, got, err, created)
			}
		}
		for _, explicit := range []string{LogStoreBolt, LogStoreWAL} {
			if got, err := resolveLogStore(dir, explicit); err != nil || got != explicit {
				t.Errorf("%q in a %s directory: %q %v, want it as asked", explicit, created, got, err)
			}
		}
	}
	// Both at once: no guess, and an error that names both.
	both := t.TempDir()
	if err := os.WriteFile(filepath.Join(both, "raft.db"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(both, "wal"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := resolveLogStore(both, LogStoreAuto); !errors.Is(err, ErrLogStoreMismatch) || !strings.Contains(err.Error(), "both") {
		t.Errorf("auto in a directory holding both: %v, want ErrLogStoreMismatch naming both", err)
	}
	// A dangling link (an unmounted volume) is a log store, not a new
	// directory: auto must not start an empty WAL beside it.
	dangling := t.TempDir()
	if err := os.Symlink(filepath.Join(dangling, "gone", "raft.db"), filepath.Join(dangling, "raft.db")); err != nil {
		t.Fatal(err)
	}
	if got, err := resolveLogStore(dangling, LogStoreAuto); err != nil || got != LogStoreBolt {
		t.Errorf("auto beside a dangling raft.db link: %q %v, want %s", got, err, LogStoreBolt)
	}

	dir := t.TempDir()
	if got, err := resolveLogStore(dir, LogStoreAuto); err != nil || got != LogStoreWAL {
		t.Errorf("auto in a new directory: %q %v, want %s", got, err, LogStoreWAL)
	}
	if _, err := resolveLogStore(dir, "rocks"); err == nil || !strings.Contains(err.Error(), "rocks") {
		t.Errorf("an unknown kind: %v, want an error naming it", err)
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
		t.Errorf("resolving changed the directory: %v %v", entries, err)
	}
}

// storeEntries appends entries 1..n of term 1 to s.
func storeEntries(t *testing.T, s raft.LogStore, n uint64) {
	t.Helper()
	var logs []*raft.Log
	for i := uint64(1); i <= n; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: []byte{byte(i)}})
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
}

// listDir names every file under dir.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		out = append(out, p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// raft-wal refuses gaps, so raft must learn, through every wrapper, that the
// log is monotonic (it then clears the log after a snapshot install).
func TestWALIsMonotonicThroughTheCache(t *testing.T) {
	s, err := openLogStore(t.TempDir(), LogStoreWAL)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	cache, err := raft.NewLogCache(logCacheEntries, s)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Now: time.Now}
	logs, _, _ := failpoints(&cfg, cache, s, raft.NewInmemSnapshotStore())
	if m, ok := logs.(raft.MonotonicLogStore); !ok || !m.IsMonotonic() {
		t.Fatal("the WAL log store does not report itself monotonic to raft")
	}
}

// failingLogs fails every append.
type failingLogs struct{ raft.LogStore }

func (failingLogs) StoreLogs([]*raft.Log) error { return errors.New("disk on fire") }

func TestFailedAppendIsFatal(t *testing.T) {
	s := exitOnWriteError{failingLogs{raft.NewInmemStore()}}
	defer func() {
		msg, _ := recover().(string)
		if !strings.Contains(msg, "raft log append failed") || !strings.Contains(msg, "disk on fire") {
			t.Fatalf("recovered %q, want a panic naming the append and its error", msg)
		}
	}()
	_ = s.StoreLog(&raft.Log{Index: 1, Term: 1})
	t.Fatal("a failed append returned")
}

func TestExitOnWriteErrorPassesAppendsAndMonotonicity(t *testing.T) {
	inner := raft.NewInmemStore()
	s := exitOnWriteError{inner}
	if err := s.StoreLogs([]*raft.Log{{Index: 1, Term: 1}, {Index: 2, Term: 1}}); err != nil {
		t.Fatal(err)
	}
	if last, _ := inner.LastIndex(); last != 2 {
		t.Fatalf("last index %d after two appends, want 2", last)
	}
	if s.IsMonotonic() {
		t.Error("an in-memory store is not monotonic, yet the wrapper says so")
	}
	w, err := openLogStore(t.TempDir(), LogStoreWAL)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Close() }()
	if !(exitOnWriteError{w}).IsMonotonic() {
		t.Error("the WAL is monotonic, yet the wrapper hides it")
	}
}

// A start that fails after the log store was created leaves no log store
// behind, so the next start may choose either kind.
func TestFailedFirstOpenLeavesNoLogStore(t *testing.T) {
	for _, kind := range []string{LogStoreBolt, LogStoreWAL, LogStoreAuto} {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			// A file where the snapshot store wants its directory fails
			// Open after the log store is open.
			if err := os.WriteFile(filepath.Join(dir, "snapshots"), nil, 0o600); err != nil {
				t.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = ln.Close() }()
			if _, err := Open(Config{NodeID: "n1", DataDir: dir, LogStore: kind, RaftListener: ln}); err == nil {
				t.Fatal("Open succeeded with a file in the snapshot directory's place")
			}
			if got, want := listDir(t, dir), []string{dir, filepath.Join(dir, "snapshots")}; !slices.Equal(got, want) {
				t.Errorf("after a failed first open the data directory holds %v, want only the file put there", got)
			}
		})
	}
}

// raft-wal before v0.4.1 marked the tail segment sealed when raft truncated
// the log's suffix ("clearing log suffix") but wrote no index block, so the
// next start failed for good with "sealed segment has no index block"
// (hashicorp/raft-wal#31; the chaos suite's wal-kill-all, now kill-all, hit
// it in 3 runs of 4). A truncated and reopened WAL must read its log.
func TestWALReopensAfterATruncatedSuffix(t *testing.T) {
	dir := t.TempDir()
	s, err := openLogStore(dir, LogStoreWAL)
	if err != nil {
		t.Fatal(err)
	}
	storeEntries(t, s, 10)
	if err := s.DeleteRange(10, 10); err != nil {
		t.Fatal(err)
	}
	if err := s.StoreLogs([]*raft.Log{{Index: 10, Term: 2, Type: raft.LogCommand, Data: []byte("new")}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = openLogStore(dir, LogStoreWAL)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	for _, i := range []uint64{1, 10} {
		var l raft.Log
		if err := s.GetLog(i, &l); err != nil {
			t.Fatalf("log %d after reopening: %v", i, err)
		}
	}
	var l raft.Log
	if err := s.GetLog(10, &l); err != nil || l.Term != 2 {
		t.Fatalf("log 10 after reopening: term %d, %v; want the new entry of term 2", l.Term, err)
	}
}
