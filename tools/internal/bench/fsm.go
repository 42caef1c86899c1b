package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"time"

	"github.com/concord-kv/concord/services/replica/replicabench"
)

// FSMResult is what one in-process FSM run measured.
type FSMResult struct {
	Target      string  `json:"target"` // always "fsm"
	Workload    string  `json:"workload"`
	Keys        int     `json:"keys"`
	ValueSize   int     `json:"value_size"`
	ApplyBatch  int     `json:"apply_batch"`
	Ops         int64   `json:"ops"`
	Seconds     float64 `json:"seconds"`
	OpsPerSec   float64 `json:"ops_per_sec"`
	NsPerOp     float64 `json:"ns_per_op"`
	AllocsPerOp float64 `json:"allocs_per_op"`
	BytesPerOp  float64 `json:"bytes_per_op"`
}

// fsmRing is how many distinct encoded commands a write workload cycles
// through, so encoding stays out of the measured loop.
const fsmRing = 4096

func runFSM(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("concord-bench fsm", `Usage: concord-bench fsm [flags]

In-process micro-benchmark of the replica's state machine: each workload's
commands are encoded as the replica's API layer encodes them (outside the
timed loop, except CAS, which must read the revision first), then applied as
Raft log entries directly to the FSM, from one goroutine as Raft does. Reads
call the FSM's Get/GetMany as a leader or eventual read does. No Raft,
network or disk: this is the floor under every request. Prints ops/s,
ns/op, allocs/op and B/op per workload, each with a JSON line.

Flags:
`, stderr)
	var (
		l          Load
		workloads  string
		applyBatch int
	)
	fs.StringVar(&workloads, "workload", "all", "comma-separated workloads ("+strings.Join(Workloads, ", ")+") or all")
	fs.DurationVar(&l.Duration, "duration", 2*time.Second, "how long to measure each workload")
	fs.Int64Var(&l.Ops, "ops", 0, "stop after this many operations instead (0 = use -duration)")
	fs.IntVar(&l.Keys, "keys", 10000, "distinct keys, all preloaded")
	fs.IntVar(&l.KeySize, "key-size", 8, "key length in bytes")
	fs.IntVar(&l.ValueSize, "value-size", 256, "value length in bytes")
	fs.Float64Var(&l.ReadRatio, "read-ratio", 0.9, "share of reads in the mixed workload")
	fs.IntVar(&l.BatchSize, "batch", 100, "keys per operation in bulk workloads")
	fs.DurationVar(&l.TTL, "ttl", time.Minute, "TTL of put-ttl writes")
	fs.Uint64Var(&l.Seed, "seed", 1, "random seed for key choice")
	fs.IntVar(&applyBatch, "apply-batch", 1, "log entries per FSM ApplyBatch call (Raft's group commit hands over up to 512)")
	if done, err := parseFlags(fs, args); done {
		return err
	}
	if applyBatch < 1 || applyBatch > fsmRing {
		return fmt.Errorf("apply batch %d out of range 1..%d", applyBatch, fsmRing)
	}
	list := Workloads
	if workloads != "all" {
		list = strings.Split(workloads, ",")
	}
	for _, wl := range list {
		l.Workload, l.Clients = strings.TrimSpace(wl), 1
		r, err := MeasureFSM(ctx, l, applyBatch)
		if err != nil {
			return fmt.Errorf("%s: %w", l.Workload, err)
		}
		if err := PrintFSM(stdout, r); err != nil {
			return err
		}
	}
	return nil
}

// MeasureFSM preloads l.Keys keys into a fresh in-process FSM, then runs
// l.Workload against it for l.Duration (or l.Ops operations) from one
// goroutine. Write workloads hand applyBatch log entries to each FSM
// ApplyBatch call; a bulk operation counts as one operation.
func MeasureFSM(ctx context.Context, l Load, applyBatch int) (FSMResult, error) {
	if err := l.Validate(); err != nil {
		return FSMResult{}, err
	}
	f := replicabench.NewFSM()
	v := value(l.ValueSize)
	if err := preloadFSM(f, l, v); err != nil {
		return FSMResult{}, err
	}
	rng := rand.New(rand.NewPCG(l.Seed, 0))
	op, err := fsmOp(f, l, v, rng, applyBatch)
	if err != nil {
		return FSMResult{}, err
	}
	step := int64(1)
	if isWrite(l.Workload) {
		step = int64(applyBatch)
	}
	// Warm the caches and let the preload's garbage be collected first.
	for range 256 {
		if err := op(); err != nil {
			return FSMResult{}, err
		}
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var ops int64
	start := time.Now()
	for iter := 0; ; iter++ {
		if l.Ops > 0 && ops >= l.Ops {
			break
		}
		if iter%64 == 0 && (ctx.Err() != nil || l.Ops <= 0 && time.Since(start) >= l.Duration) {
			break
		}
		if err := op(); err != nil {
			return FSMResult{}, err
		}
		ops += step
	}
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	if err := ctx.Err(); err != nil {
		return FSMResult{}, err
	}
	n := float64(max(ops, 1))
	return FSMResult{
		Target: "fsm", Workload: l.Workload, Keys: l.Keys, ValueSize: l.ValueSize, ApplyBatch: applyBatch,
		Ops: ops, Seconds: elapsed.Seconds(), OpsPerSec: float64(ops) / elapsed.Seconds(),
		NsPerOp:     float64(elapsed.Nanoseconds()) / n,
		AllocsPerOp: float64(after.Mallocs-before.Mallocs) / n,
		BytesPerOp:  float64(after.TotalAlloc-before.TotalAlloc) / n,
	}, nil
}

func isWrite(workload string) bool {
	switch workload {
	case WorkloadPut, WorkloadPutTTL, WorkloadBulkPut:
		return true
	}
	return false
}

func preloadFSM(f *replicabench.FSM, l Load, v []byte) error {
	keys := make([]string, 0, 500)
	for start := 0; start < l.Keys; start += 500 {
		keys = keys[:0]
		for i := start; i < min(start+500, l.Keys); i++ {
			keys = append(keys, Key(i, l.KeySize))
		}
		p, err := replicabench.EncodeBatchPut(keys, v)
		if err != nil {
			return err
		}
		if err := f.Apply(p); err != nil {
			return fmt.Errorf("preload: %w", err)
		}
	}
	return nil
}

// fsmOp returns one operation of l.Workload. Keys of reads are formatted
// ahead of time too, so only the FSM is measured.
func fsmOp(f *replicabench.FSM, l Load, v []byte, rng *rand.Rand, applyBatch int) (func() error, error) {
	keys := make([]string, fsmRing)
	for i := range keys {
		keys[i] = Key(rng.IntN(l.Keys), l.KeySize)
	}
	encodeRing := func(encode func(i int) ([]byte, error)) ([][]byte, error) {
		ring := make([][]byte, fsmRing)
		for i := range ring {
			var err error
			if ring[i], err = encode(i); err != nil {
				return nil, err
			}
		}
		return ring, nil
	}
	next := 0
	apply := func(ring [][]byte) func() error {
		return func() error {
			if next+applyBatch > len(ring) {
				next = 0
			}
			err := f.Apply(ring[next : next+applyBatch]...)
			next += applyBatch
			return err
		}
	}
	batch := func(i int) []string {
		out := make([]string, l.BatchSize)
		for j := range out {
			out[j] = keys[(i*l.BatchSize+j)%len(keys)]
		}
		return out
	}
	switch l.Workload {
	case WorkloadPut, WorkloadPutTTL:
		ttl := time.Duration(0)
		if l.Workload == WorkloadPutTTL {
			ttl = l.TTL
		}
		ring, err := encodeRing(func(i int) ([]byte, error) { return replicabench.EncodePut(keys[i], v, ttl, 0) })
		return apply(ring), err
	case WorkloadBulkPut:
		ring, err := encodeRing(func(i int) ([]byte, error) { return replicabench.EncodeBatchPut(batch(i), v) })
		return apply(ring), err
	case WorkloadGet:
		return func() error {
			next = (next + 1) % len(keys)
			if f.Get(keys[next]) == 0 {
				return fmt.Errorf("key %q missing", keys[next])
			}
			return nil
		}, nil
	case WorkloadBulkGet:
		batches := make([][]string, 256)
		for i := range batches {
			batches[i] = batch(i)
		}
		return func() error {
			next = (next + 1) % len(batches)
			f.GetMany(batches[next])
			return nil
		}, nil
	case WorkloadMixed:
		ring, err := encodeRing(func(i int) ([]byte, error) { return replicabench.EncodePut(keys[i], v, 0, 0) })
		reads := make([]bool, fsmRing)
		for i := range reads {
			reads[i] = rng.Float64() < l.ReadRatio
		}
		return func() error {
			next = (next + 1) % len(keys)
			if reads[next] {
				f.Get(keys[next])
				return nil
			}
			return f.Apply(ring[next])
		}, err
	case WorkloadCAS:
		return func() error {
			next = (next + 1) % len(keys)
			p, err := replicabench.EncodePut(keys[next], v, 0, f.Get(keys[next]))
			if err != nil {
				return err
			}
			return f.Apply(p)
		}, nil
	}
	return nil, fmt.Errorf("unknown workload %q", l.Workload)
}

// PrintFSM writes a human line and a JSON line for r.
func PrintFSM(w io.Writer, r FSMResult) error {
	_, err := fmt.Fprintf(w, "fsm   %-9s %12.0f ops/s %10.0f ns/op %8.1f allocs/op %9.0f B/op\n",
		r.Workload, r.OpsPerSec, r.NsPerOp, r.AllocsPerOp, r.BytesPerOp)
	if err != nil {
		return err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}
