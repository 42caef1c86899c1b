// Package bench is concord-bench: a load generator for Concord (through the
// Go SDK or the gateway's REST API) and etcd, with HDR-histogram latencies,
// and a side-by-side comparison that starts both systems itself.
package bench

import (
	"context"
	"flag"
	"io"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// Run is the concord-bench command: `concord-bench [flags]` runs one load;
// `concord-bench compare [flags]` runs the side-by-side comparison;
// `concord-bench fsm` micro-benchmarks the replica's state machine in
// process; `memory`, `failover` and `restart` start replica processes and
// measure memory and disk per key, leader-failover time and restart time.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if len(args) > 0 {
		switch args[0] {
		case "compare":
			return runCompare(ctx, args[1:], getenv, stdout, stderr)
		case "fsm":
			return runFSM(ctx, args[1:], stdout, stderr)
		case "memory":
			return runMemory(ctx, args[1:], stdout, stderr)
		case "failover":
			return runFailover(ctx, args[1:], stdout, stderr)
		case "restart":
			return runRestart(ctx, args[1:], stdout, stderr)
		}
	}
	fs := newFlags("concord-bench", `Usage: concord-bench [flags]
       concord-bench compare [flags]   Concord vs etcd side by side
       concord-bench fsm [flags]       in-process FSM micro-benchmarks
       concord-bench memory [flags]    memory and disk bytes per key
       concord-bench failover [flags]  leader kill -9 to first acknowledged write
       concord-bench restart [flags]   restart to first strong read
(see concord-bench MODE -h)

Runs one load against one system and prints a line and a JSON line.

Flags:
`, stderr)
	var (
		target, endpoints, consistency string
		conns                          int
		l                              Load
		preload                        bool
	)
	fs.StringVar(&target, "target", "sdk", "sdk (Concord via the Go SDK), rest (Concord REST via a gateway) or etcd")
	fs.StringVar(&endpoints, "endpoints", "http://127.0.0.1:4000", "comma-separated URLs (replicas or gateways for sdk, gateways for rest, client URLs for etcd)")
	fs.StringVar(&consistency, "consistency", "strong", "read level: eventual, leader or strong (etcd: eventual = serializable, else linearizable)")
	fs.IntVar(&conns, "conns", 16, "HTTP or gRPC connections for the rest and etcd targets")
	addLoadFlags(fs, &l)
	fs.BoolVar(&preload, "preload", true, "write every key once before measuring")
	if done, err := parseFlags(fs, args); done {
		return err
	}
	if err := l.Validate(); err != nil {
		return err
	}
	d, err := NewDriver(ctx, target, strings.Split(endpoints, ","), Consistency(consistency), conns)
	if err != nil {
		return err
	}
	defer func() { _ = d.Close() }()
	if preload {
		if err := Preload(ctx, d, l); err != nil {
			return err
		}
	}
	res, err := Measure(ctx, d, l)
	if err != nil {
		return err
	}
	res.Target, res.Consistency = target, consistency
	return Print(stdout, res)
}

func addLoadFlags(fs *flag.FlagSet, l *Load) {
	fs.StringVar(&l.Workload, "workload", WorkloadPut, "one of "+strings.Join(Workloads, ", "))
	fs.IntVar(&l.Clients, "clients", 16, "concurrent clients")
	fs.DurationVar(&l.Duration, "duration", 10*time.Second, "how long to measure")
	fs.Int64Var(&l.Ops, "ops", 0, "stop after this many operations instead (0 = use -duration)")
	fs.DurationVar(&l.Warmup, "warmup", 2*time.Second, "unmeasured load before measuring")
	fs.IntVar(&l.Keys, "keys", 10000, "distinct keys")
	fs.IntVar(&l.KeySize, "key-size", 8, "key length in bytes")
	fs.IntVar(&l.ValueSize, "value-size", 256, "value length in bytes")
	fs.Float64Var(&l.ReadRatio, "read-ratio", 0.9, "share of reads in the mixed workload")
	fs.IntVar(&l.BatchSize, "batch", 100, "keys per operation in bulk workloads")
	fs.DurationVar(&l.TTL, "ttl", time.Minute, "TTL of put-ttl writes")
	fs.Uint64Var(&l.Seed, "seed", 1, "random seed for key choice")
}
