package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Workload names what each operation does.
const (
	WorkloadPut     = "put"
	WorkloadGet     = "get"
	WorkloadMixed   = "mixed"
	WorkloadPutTTL  = "put-ttl"
	WorkloadCAS     = "cas"
	WorkloadBulkPut = "bulk-put"
	WorkloadBulkGet = "bulk-get"
)

// Workloads lists every workload.
var Workloads = []string{WorkloadPut, WorkloadGet, WorkloadMixed, WorkloadPutTTL, WorkloadCAS, WorkloadBulkPut, WorkloadBulkGet}

// Load describes one measured run.
type Load struct {
	Workload  string
	Clients   int
	Duration  time.Duration // stop after this long...
	Ops       int64         // ...or after this many operations (if > 0)
	Warmup    time.Duration
	Keys      int
	KeySize   int
	ValueSize int
	ReadRatio float64 // mixed: share of gets
	BatchSize int     // bulk workloads
	TTL       time.Duration
	Seed      uint64
}

// Validate checks the load.
func (l Load) Validate() error {
	switch {
	case !slices.Contains(Workloads, l.Workload):
		return fmt.Errorf("unknown workload %q (want one of %s)", l.Workload, strings.Join(Workloads, ", "))
	case l.Clients < 1:
		return fmt.Errorf("clients %d must be >= 1", l.Clients)
	case l.Duration <= 0 && l.Ops <= 0:
		return errors.New("give a duration or a number of operations")
	case l.Keys < 1:
		return fmt.Errorf("keys %d must be >= 1", l.Keys)
	case l.KeySize < len(fmt.Sprint(l.Keys))+1:
		return fmt.Errorf("key size %d too small for %d keys", l.KeySize, l.Keys)
	case l.ValueSize < 0 || l.ValueSize > 1<<20:
		return fmt.Errorf("value size %d out of range 0..1048576", l.ValueSize)
	case l.ReadRatio < 0 || l.ReadRatio > 1:
		return fmt.Errorf("read ratio %v out of range 0..1", l.ReadRatio)
	case l.BatchSize < 1 || l.BatchSize > 500:
		return fmt.Errorf("batch size %d out of range 1..500", l.BatchSize)
	case l.Workload == WorkloadPutTTL && l.TTL < time.Second:
		return errors.New("put-ttl needs a TTL of at least 1s")
	}
	return nil
}

// Result is what one run measured. Latencies are in milliseconds.
type Result struct {
	Target      string  `json:"target"`
	Workload    string  `json:"workload"`
	Consistency string  `json:"consistency,omitempty"`
	Clients     int     `json:"clients"`
	Ops         int64   `json:"ops"`
	Errors      int64   `json:"errors"`
	Seconds     float64 `json:"seconds"`
	OpsPerSec   float64 `json:"ops_per_sec"`
	P50         float64 `json:"p50_ms"`
	P90         float64 `json:"p90_ms"`
	P99         float64 `json:"p99_ms"`
	P999        float64 `json:"p999_ms"`
	FirstError  string  `json:"first_error,omitempty"`
}

// Key returns the i-th benchmark key, padded to size bytes.
func Key(i, size int) string {
	return fmt.Sprintf("k%0*d", size-1, i)
}

func value(size int) []byte {
	return []byte(strings.Repeat("v", size))
}

// Preload writes every key once so reads find them.
func Preload(ctx context.Context, d Driver, l Load) error {
	v := value(l.ValueSize)
	for start := 0; start < l.Keys; start += 500 {
		keys := make([]string, 0, 500)
		for i := start; i < min(start+500, l.Keys); i++ {
			keys = append(keys, Key(i, l.KeySize))
		}
		if err := d.PutMany(ctx, keys, v); err != nil {
			return fmt.Errorf("preload: %w", err)
		}
	}
	return nil
}

// Measure drives the load through d and measures it.
func Measure(ctx context.Context, d Driver, l Load) (Result, error) {
	if err := l.Validate(); err != nil {
		return Result{}, err
	}
	res := Result{Workload: l.Workload, Clients: l.Clients}
	if l.Warmup > 0 {
		warm := l
		warm.Ops = 0
		wctx, cancel := context.WithTimeout(ctx, l.Warmup+drainTimeout)
		_, _ = drive(wctx, d, warm, nil, after(l.Warmup))
		cancel()
	}
	var stop func() bool
	opCtx := ctx
	if l.Duration > 0 {
		stop = after(l.Duration)
		// Operations under way at the end may finish, but not hang the run.
		var cancel context.CancelFunc
		opCtx, cancel = context.WithTimeout(ctx, l.Duration+drainTimeout)
		defer cancel()
	}
	hist := hdrhistogram.New(1, int64(time.Minute/time.Microsecond), 3)
	start := time.Now()
	stats, firstErr := drive(opCtx, d, l, hist, stop)
	elapsed := time.Since(start)
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	if opCtx.Err() != nil {
		return res, fmt.Errorf("operations still running %v after the end of the run", drainTimeout)
	}
	res.Ops, res.Errors, res.Seconds = stats.ops, stats.errs, elapsed.Seconds()
	res.OpsPerSec = float64(res.Ops) / elapsed.Seconds()
	ms := func(q float64) float64 { return float64(hist.ValueAtQuantile(q)) / 1000 }
	res.P50, res.P90, res.P99, res.P999 = ms(50), ms(90), ms(99), ms(99.9)
	if firstErr != nil {
		res.FirstError = firstErr.Error()
	}
	return res, nil
}

type counts struct{ ops, errs int64 }

// drainTimeout bounds how long the operations under way at the end of a
// timed run may take to finish.
const drainTimeout = time.Minute

// after reports whether d has passed since it was called.
func after(d time.Duration) func() bool {
	deadline := time.Now().Add(d)
	return func() bool { return !time.Now().Before(deadline) }
}

// drive runs l.Clients workers until stop reports true (nil: never), ctx
// ends or l.Ops operations are done, recording latencies into hist (nil
// during warm-up). A worker starts no operation once stop says so, and
// the operations under way finish: the run is not cut by a deadline
// (which a server could see a moment before the client and fail a whole
// batch of calls with), and elapsed time includes them.
func drive(ctx context.Context, d Driver, l Load, hist *hdrhistogram.Histogram, stop func() bool) (counts, error) {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		issued   atomic.Int64
		total    counts
		firstErr error
	)
	v := value(l.ValueSize)
	for w := range l.Clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(l.Seed, uint64(w)))
			local := hdrhistogram.New(1, int64(time.Minute/time.Microsecond), 3)
			var c counts
			var werr error
			batch := make([]string, l.BatchSize)
			for ctx.Err() == nil && (stop == nil || !stop()) {
				if l.Ops > 0 && issued.Add(1) > l.Ops {
					break
				}
				key := Key(rng.IntN(l.Keys), l.KeySize)
				t0 := time.Now()
				var err error
				switch l.Workload {
				case WorkloadPut:
					err = d.Put(ctx, key, v, 0)
				case WorkloadPutTTL:
					err = d.Put(ctx, key, v, l.TTL)
				case WorkloadGet:
					err = d.Get(ctx, key)
				case WorkloadMixed:
					if rng.Float64() < l.ReadRatio {
						err = d.Get(ctx, key)
					} else {
						err = d.Put(ctx, key, v, 0)
					}
				case WorkloadCAS:
					err = d.CAS(ctx, key, v)
				case WorkloadBulkPut, WorkloadBulkGet:
					for i := range batch {
						batch[i] = Key(rng.IntN(l.Keys), l.KeySize)
					}
					if l.Workload == WorkloadBulkPut {
						err = d.PutMany(ctx, batch, v)
					} else {
						err = d.GetMany(ctx, batch)
					}
				}
				if ctx.Err() != nil && err != nil {
					break // the run was cancelled mid-operation: not an error of the system
				}
				c.ops++
				if err != nil {
					c.errs++
					if werr == nil {
						werr = err
					}
					continue
				}
				_ = local.RecordValue(max(time.Since(t0).Microseconds(), 1))
			}
			mu.Lock()
			defer mu.Unlock()
			total.ops += c.ops
			total.errs += c.errs
			if firstErr == nil {
				firstErr = werr
			}
			if hist != nil {
				hist.Merge(local)
			}
		})
	}
	wg.Wait()
	return total, firstErr
}

// Print writes a human line and a JSON line for r.
func Print(w io.Writer, r Result) error {
	_, err := fmt.Fprintf(w, "%-5s %-9s %-8s c=%-3d %10.0f ops/s  p50 %7.3f ms  p90 %7.3f ms  p99 %7.3f ms  p99.9 %7.3f ms  errors %d\n",
		r.Target, r.Workload, r.Consistency, r.Clients, r.OpsPerSec, r.P50, r.P90, r.P99, r.P999, r.Errors)
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
