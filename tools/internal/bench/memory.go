package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"connectrpc.com/connect"
	concordv1 "github.com/concord-kv/concord/proto/gen/go/concord/v1"
)

// MemoryResult is what `concord-bench memory` measured on the leader.
// Per-key figures divide by Keys; "overhead" subtracts the raw key and value
// bytes (KeySize+ValueSize).
type MemoryResult struct {
	Mode        string  `json:"mode"` // always "memory"
	Nodes       int     `json:"nodes"`
	Keys        int     `json:"keys"`
	KeySize     int     `json:"key_size"`
	ValueSize   int     `json:"value_size"`
	LoadSeconds float64 `json:"load_seconds"`
	// Go heap in use after a GC (the gctrace live heap, MB resolution).
	HeapBaseBytes       int64   `json:"heap_base_bytes"`
	HeapAfterBytes      int64   `json:"heap_after_bytes"`
	HeapBytesPerKey     float64 `json:"heap_bytes_per_key"`
	HeapOverheadPerKey  float64 `json:"heap_overhead_per_key"`
	RSSBaseBytes        int64   `json:"rss_base_bytes"`
	RSSAfterBytes       int64   `json:"rss_after_bytes"`
	RSSBytesPerKey      float64 `json:"rss_bytes_per_key"`
	RSSOverheadPerKey   float64 `json:"rss_overhead_per_key"`
	FSMEstimatePerKey   float64 `json:"fsm_estimate_bytes_per_key"` // ClusterService Status storage.memory_bytes
	DiskLogBytesPerKey  float64 `json:"disk_log_bytes_per_key"`
	DiskSnapBytesPerKey float64 `json:"disk_snapshot_bytes_per_key"`
	TargetOverhead      float64 `json:"target_overhead_per_key"`
	HeapTargetMet       bool    `json:"heap_target_met"`
}

// memoryTarget is the Performance issue's bound on overhead per key.
const memoryTarget = 150

func runMemory(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("concord-bench memory", fmt.Sprintf(`Usage: concord-bench memory [flags]

Starts a cluster of replica processes (with GODEBUG=gctrace=1), measures the
leader's baseline, loads --keys keys of --value-size bytes with bulk puts
through the Go SDK, and reports per key: the Go heap in use after a GC (the
live heap of the runtime's gctrace, MB resolution) and the RSS
(/proc/<pid>/status VmRSS), each minus the baseline, divided by the key
count, and minus the raw key+value bytes ("overhead"; target <= %d B); the
FSM's own estimate (ClusterService Status); and the data directory's Raft
log (wal/ or raft.db) and snapshot bytes. To force the GCs it reads keys in bulk
(eventual reads) until two more GC cycles have run. Ends with a JSON line.

Flags:
`, memoryTarget), stderr)
	var (
		cf      clusterFlags
		l       Load
		writers int
	)
	cf.add(fs, 1)
	addBulkLoadFlags(fs, &l, &writers)
	if done, err := parseFlags(fs, args); done {
		return err
	}
	l.Workload, l.Clients, l.Ops = WorkloadBulkPut, 1, 1
	if err := l.Validate(); err != nil {
		return err
	}
	c, dir, stop, err := cf.start([]string{"GODEBUG=gctrace=1"})
	defer stop()
	if err != nil {
		return err
	}
	if err := c.waitReady(ctx); err != nil {
		return err
	}
	leader, err := c.leader(ctx)
	if err != nil {
		return err
	}
	_, _ = fmt.Fprintf(stderr, "memory: %d replica(s), leader %s, data in %s\n", cf.nodes, leader.id, dir)

	probe := make([]string, min(l.Keys, 500))
	for i := range probe {
		probe[i] = Key(i*max(l.Keys/len(probe), 1), l.KeySize)
	}
	res := MemoryResult{Mode: "memory", Nodes: cf.nodes, Keys: l.Keys, KeySize: l.KeySize, ValueSize: l.ValueSize, TargetOverhead: memoryTarget}
	if res.HeapBaseBytes, err = c.forceGC(ctx, leader, probe); err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	if res.RSSBaseBytes, err = rssBytes(leader.cmd.Process.Pid); err != nil {
		return err
	}

	took, err := c.load(ctx, l, writers)
	if err != nil {
		return err
	}
	res.LoadSeconds = took.Seconds()
	if err := c.waitApplied(ctx); err != nil {
		return err
	}
	if res.HeapAfterBytes, err = c.forceGC(ctx, leader, probe); err != nil {
		return fmt.Errorf("after the load: %w", err)
	}
	if res.RSSAfterBytes, err = rssBytes(leader.cmd.Process.Pid); err != nil {
		return err
	}
	var st *concordv1.StatusResponse
	err = retry(ctx, time.Minute, 100*time.Millisecond, func(ctx context.Context) error {
		st, err = c.status(ctx, leader)
		return err
	})
	if err != nil {
		return err
	}
	disk, err := dataDirUsage(leader.dataDir)
	if err != nil {
		return err
	}

	n, raw := float64(l.Keys), float64(l.KeySize+l.ValueSize)
	res.HeapBytesPerKey = float64(res.HeapAfterBytes-res.HeapBaseBytes) / n
	res.HeapOverheadPerKey = res.HeapBytesPerKey - raw
	res.RSSBytesPerKey = float64(res.RSSAfterBytes-res.RSSBaseBytes) / n
	res.RSSOverheadPerKey = res.RSSBytesPerKey - raw
	res.FSMEstimatePerKey = float64(st.GetStorage().GetMemoryBytes()) / n
	res.DiskLogBytesPerKey = float64(disk.log) / n
	res.DiskSnapBytesPerKey = float64(disk.snapshots) / n
	res.HeapTargetMet = res.HeapOverheadPerKey <= memoryTarget
	_, _ = fmt.Fprintf(stdout, "memory %d keys (%d B key + %d B value) on %d replica(s), loaded in %.1f s\n", l.Keys, l.KeySize, l.ValueSize, cf.nodes, res.LoadSeconds)
	_, _ = fmt.Fprintf(stdout, "  heap after GC: %d -> %d MiB: %.1f B/key, overhead %.1f B/key (target <= %d)\n",
		res.HeapBaseBytes>>20, res.HeapAfterBytes>>20, res.HeapBytesPerKey, res.HeapOverheadPerKey, memoryTarget)
	_, _ = fmt.Fprintf(stdout, "  RSS:           %d -> %d MiB: %.1f B/key, overhead %.1f B/key\n",
		res.RSSBaseBytes>>20, res.RSSAfterBytes>>20, res.RSSBytesPerKey, res.RSSOverheadPerKey)
	_, _ = fmt.Fprintf(stdout, "  FSM estimate:  %.1f B/key; disk: log %.1f B/key, snapshots %.1f B/key\n",
		res.FSMEstimatePerKey, res.DiskLogBytesPerKey, res.DiskSnapBytesPerKey)
	return printJSON(stdout, res)
}

// forceGC makes n run GC cycles that start after this call, by reading
// keys in bulk (eventual reads: garbage on the replica) until its gctrace
// log shows two more cycles, and returns the live heap of the last one.
func (c *procCluster) forceGC(ctx context.Context, n *procNode, keys []string) (int64, error) {
	n0, _, err := lastGC(n.logPath)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	req := &concordv1.BatchGetRequest{Keys: keys, Consistency: concordv1.Consistency_CONSISTENCY_EVENTUAL}
	for {
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for w := range errs {
			wg.Go(func() {
				for range 16 {
					if _, err := n.kv.BatchGet(ctx, connect.NewRequest(req)); err != nil {
						errs[w] = err
						return
					}
				}
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return 0, fmt.Errorf("force a GC on %s: %w", n.id, err)
		}
		num, heap, err := lastGC(n.logPath)
		if err != nil {
			return 0, err
		}
		if num >= n0+2 {
			return heap, nil
		}
	}
}
