package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/concord-kv/concord/sdk/go/concordtest"
)

func TestLoadValidate(t *testing.T) {
	ok := Load{Workload: WorkloadPut, Clients: 1, Duration: time.Second, Keys: 10, KeySize: 8, BatchSize: 1}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Load){
		"workload":   func(l *Load) { l.Workload = "scan" },
		"clients":    func(l *Load) { l.Clients = 0 },
		"no stop":    func(l *Load) { l.Duration = 0 },
		"key size":   func(l *Load) { l.Keys, l.KeySize = 1000, 3 },
		"value size": func(l *Load) { l.ValueSize = 2 << 20 },
		"ratio":      func(l *Load) { l.ReadRatio = 1.5 },
		"batch":      func(l *Load) { l.BatchSize = 501 },
		"ttl":        func(l *Load) { l.Workload, l.TTL = WorkloadPutTTL, 0 },
	} {
		l := ok
		mut(&l)
		if err := l.Validate(); err == nil {
			t.Errorf("%s: accepted %+v", name, l)
		}
	}
}

// deadlineDriver fails an operation whose context ends within a few
// milliseconds, as a server does that sees the client's deadline a moment
// before the client (and fails a whole coalesced batch with it).
type deadlineDriver struct{ ops atomic.Int64 }

func (d *deadlineDriver) op(ctx context.Context) error {
	d.ops.Add(1)
	time.Sleep(time.Millisecond)
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < 5*time.Millisecond {
		return errors.New("deadline_exceeded")
	}
	return nil
}

func (d *deadlineDriver) Put(ctx context.Context, _ string, _ []byte, _ time.Duration) error {
	return d.op(ctx)
}
func (d *deadlineDriver) Get(ctx context.Context, _ string) error                 { return d.op(ctx) }
func (d *deadlineDriver) CAS(ctx context.Context, _ string, _ []byte) error       { return d.op(ctx) }
func (d *deadlineDriver) PutMany(ctx context.Context, _ []string, _ []byte) error { return d.op(ctx) }
func (d *deadlineDriver) GetMany(ctx context.Context, _ []string) error           { return d.op(ctx) }
func (d *deadlineDriver) Close() error                                            { return nil }

// A timed run ends by starting no more operations, not by a deadline on
// the ones under way: none of them fails because the run ended.
func TestTimedRunDoesNotCutOperations(t *testing.T) {
	d := &deadlineDriver{}
	l := Load{Workload: WorkloadGet, Clients: 8, Keys: 10, KeySize: 8, ValueSize: 8, BatchSize: 1, Duration: 200 * time.Millisecond, Warmup: 50 * time.Millisecond}
	for range 5 {
		res, err := Measure(t.Context(), d, l)
		if err != nil {
			t.Fatal(err)
		}
		if res.Ops == 0 || res.Errors != 0 {
			t.Fatalf("%d ops, %d errors (%s): want ops and no error", res.Ops, res.Errors, res.FirstError)
		}
	}
}

func TestKeyHasFixedSize(t *testing.T) {
	for _, i := range []int{0, 7, 9999999} {
		if k := Key(i, 8); len(k) != 8 {
			t.Errorf("Key(%d, 8) = %q", i, k)
		}
	}
}

// TestMeasureAgainstACluster runs every workload through the SDK driver for
// a fixed number of operations and checks the counts, not the speed.
func TestMeasureAgainstACluster(t *testing.T) {
	c := concordtest.Start(t, 1)
	d, err := NewDriver(t.Context(), "sdk", c.URLs(), "strong", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = d.Close() }()
	base := Load{Clients: 4, Ops: 40, Keys: 50, KeySize: 8, ValueSize: 32, ReadRatio: 0.5, BatchSize: 10, TTL: time.Minute, Seed: 7}
	if err := Preload(t.Context(), d, base); err != nil {
		t.Fatal(err)
	}
	for _, wl := range Workloads {
		l := base
		l.Workload = wl
		r, err := Measure(t.Context(), d, l)
		if err != nil {
			t.Fatalf("%s: %v", wl, err)
		}
		if r.Ops != l.Ops || r.Errors != 0 || r.P50 <= 0 || r.P99 < r.P50 {
			t.Fatalf("%s: %+v", wl, r)
		}
		var out bytes.Buffer
		if err := Print(&out, r); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		var back Result
		if len(lines) != 2 || json.Unmarshal([]byte(lines[1]), &back) != nil || back.Ops != r.Ops {
			t.Fatalf("%s: output %q", wl, out.String())
		}
	}
}

// runMode runs concord-bench with args against replica processes built from
// this tree, with their data in a test directory, and decodes the last
// output line (the JSON line) into out.
func runMode(t *testing.T, out any, args ...string) string {
	t.Helper()
	dir := t.TempDir()
	args = append(args, "--replica-bin", concordtest.ReplicaBinary(t), "--work-dir", dir)
	var stdout, stderr bytes.Buffer
	if err := Run(t.Context(), args, func(string) string { return "" }, &stdout, &stderr); err != nil {
		logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			t.Logf("%s:\n%s", l, b)
		}
		t.Fatalf("concord-bench %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), out); err != nil {
		t.Fatalf("last line of %q: %v", stdout.String(), err)
	}
	return stdout.String()
}

func TestModesHelp(t *testing.T) {
	for _, mode := range []string{"compare", "fsm", "memory", "failover", "restart"} {
		t.Run(mode, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if err := Run(t.Context(), []string{mode, "-h"}, func(string) string { return "" }, &stdout, &stderr); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(stderr.String(), "Usage: concord-bench "+mode) || !strings.Contains(stderr.String(), "-") {
				t.Fatalf("help of %s: %q", mode, stderr.String())
			}
		})
	}
}

func TestFSMMode(t *testing.T) {
	var stdout, stderr bytes.Buffer
	args := []string{"fsm", "--ops", "200", "--keys", "100", "--batch", "10", "--apply-batch", "4"}
	if err := Run(t.Context(), args, func(string) string { return "" }, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	var seen []string
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var r FSMResult
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		if r.Target != "fsm" || r.Ops < 200 || r.NsPerOp <= 0 || r.OpsPerSec <= 0 || r.AllocsPerOp <= 0 {
			t.Fatalf("%s: %+v", r.Workload, r)
		}
		seen = append(seen, r.Workload)
	}
	if strings.Join(seen, ",") != strings.Join(Workloads, ",") {
		t.Fatalf("workloads run: %v, want %v", seen, Workloads)
	}
}

func TestMemoryMode(t *testing.T) {
	var r MemoryResult
	runMode(t, &r, "memory", "--keys", "1000", "--value-size", "100")
	if r.Keys != 1000 || r.HeapAfterBytes <= 0 || r.RSSAfterBytes <= 0 || r.FSMEstimatePerKey <= 0 || r.DiskLogBytesPerKey <= 0 {
		t.Fatalf("%+v", r)
	}
}

func TestFailoverMode(t *testing.T) {
	var r FailoverResult
	runMode(t, &r, "failover", "--runs", "1", "--clients", "4", "--steady", "500ms")
	if r.Nodes != 3 || len(r.Runs) != 1 || r.Runs[0] <= 0 || r.MedianMs != r.Runs[0] {
		t.Fatalf("%+v", r)
	}
}

func TestRestartMode(t *testing.T) {
	var r RestartResult
	runMode(t, &r, "restart", "--keys", "1000", "--runs", "1")
	if len(r.Results) != 2 {
		t.Fatalf("%+v", r)
	}
	for _, rr := range r.Results {
		if len(rr.Runs) != 1 || rr.Runs[0] <= 0 || rr.DiskLogBytes <= 0 {
			t.Fatalf("%+v", rr)
		}
		if snap := rr.DiskSnapBytes > 0; snap != (rr.From == "snapshot") {
			t.Fatalf("from %s with %d snapshot bytes", rr.From, rr.DiskSnapBytes)
		}
	}
}
