// Concord addition: Config.LeaderParallelWrites. Not in upstream raft.

package raft

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-metrics/compat"
)

// unstableLogs holds the entries a leader has handed to its replicators
// but not yet written to its own log store (Config.LeaderParallelWrites).
// They are contiguous and above everything the log store holds.
type unstableLogs struct {
	mu   sync.Mutex
	logs []*Log
}

func (u *unstableLogs) add(logs []*Log) {
	u.mu.Lock()
	u.logs = append(u.logs, logs...)
	u.mu.Unlock()
}

// get copies entry index into l if it is not yet written.
func (u *unstableLogs) get(index uint64, l *Log) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.logs) == 0 || index < u.logs[0].Index {
		return false
	}
	i := index - u.logs[0].Index
	if i >= uint64(len(u.logs)) {
		return false
	}
	*l = *u.logs[i]
	return true
}

// written drops the entries up to last: the log store holds them now.
func (u *unstableLogs) written(last uint64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for len(u.logs) > 0 && u.logs[0].Index <= last {
		u.logs[0] = nil
		u.logs = u.logs[1:]
	}
	if len(u.logs) == 0 {
		u.logs = nil
	}
}

func (u *unstableLogs) reset() {
	u.mu.Lock()
	u.logs = nil
	u.mu.Unlock()
}

// getLog reads entry index for replication: from the entries the leader
// has not yet written, else from the log store. An entry leaves the
// unstable set only after the log store holds it, so one of the two has
// every entry up to the last index.
func (r *Raft) getLog(index uint64, l *Log) error {
	if r.unstable.get(index, l) {
		return nil
	}
	return r.logs.GetLog(index, l)
}

// leaderLogWriter writes a parallel-writing leader's entries to its log
// store, in order, and counts them for the leader's match index once they
// are written.
type leaderLogWriter struct {
	batches chan []*Log
	done    chan struct{}
	failed  atomic.Bool
}

// leaderWriteQueue is how many batches of entries may wait for the
// leader's log store before dispatchLogs waits: the disk sets the pace.
const leaderWriteQueue = 64

// startLeaderWriter starts the writer of this leadership, if
// Config.LeaderParallelWrites is on. Called from the main goroutine after
// setupLeaderState.
func (r *Raft) startLeaderWriter() {
	if !r.config().LeaderParallelWrites {
		return
	}
	w := &leaderLogWriter{batches: make(chan []*Log, leaderWriteQueue), done: make(chan struct{})}
	commitment, stepDown := r.leaderState.commitment, r.leaderState.stepDown
	commitment.setCapAt(r.localID)
	r.leaderWriter = w
	go func() {
		defer close(w.done)
		for logs := range w.batches {
			if w.failed.Load() {
				continue // nothing after a failed write: the log must stay gapless
			}
			start := time.Now()
			if err := r.logs.StoreLogs(logs); err != nil {
				r.logger.Error("failed to commit logs", "error", err)
				w.failed.Store(true)
				asyncNotifyCh(stepDown)
				continue
			}
			metrics.MeasureSince([]string{"raft", "leader", "parallelWrite"}, start)
			last := logs[len(logs)-1].Index
			r.unstable.written(last)
			commitment.match(r.localID, last)
		}
	}()
}

// stopLeaderWriter waits until every entry handed to the writer is written
// (or has failed) and stops it, and reports whether a write failed. Only
// the main goroutine calls it (r.leaderWriter is its own): before it
// leaves the leader state and before anything else changes the log store
// (a newer leader's AppendEntries or InstallSnapshot, a user restore).
func (r *Raft) stopLeaderWriter() (failed bool) {
	w := r.leaderWriter
	if w == nil {
		return false
	}
	r.leaderWriter = nil
	close(w.batches)
	<-w.done
	r.unstable.reset()
	if !w.failed.Load() {
		return false
	}
	// The last index counted entries the log store does not hold: read
	// back what it has.
	last, err := r.logs.LastIndex()
	if err != nil {
		r.logger.Error("failed to read the last index after a failed write", "error", err)
		return true
	}
	var l Log
	if last > 0 {
		if err := r.logs.GetLog(last, &l); err != nil {
			r.logger.Error("failed to read the last entry after a failed write", "index", last, "error", err)
			return true
		}
	}
	r.setLastLog(l.Index, l.Term)
	return true
}

// dispatchParallel is dispatchLogs' tail with a leader writer: the entries
// go to the replicators at once and to the writer in order.
func (r *Raft) dispatchParallel(w *leaderLogWriter, logs []*Log) {
	last := logs[len(logs)-1]
	r.unstable.add(logs)
	r.setLastLog(last.Index, last.Term)
	for _, f := range r.leaderState.replState {
		asyncNotifyCh(f.triggerCh)
	}
	w.batches <- logs
}
