package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// compareConfig is what `concord-bench compare` runs.
type compareConfig struct {
	seconds    time.Duration
	warmup     time.Duration
	clients    []int
	keys       int
	keySize    int
	valueSize  int
	replicaBin string
	// replicaArgs are extra flags for every Concord replica.
	replicaArgs []string
	etcdBin     string
	workDir     string
}

type system struct {
	name      string
	target    string
	endpoints []string
	procs     []*exec.Cmd
}

func runCompare(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("concord-bench compare", `Usage: concord-bench compare [flags]

Starts a 3-node etcd and a 3-node Concord on 127.0.0.1 with the same
durability (fsync on, separate data dirs), runs put, strong/linearizable get
and eventual/serializable get at each client count against both, prints a
table with the Concord/etcd ratios, stops everything, and ends with one JSON
line.

Flags:
`, stderr)
	var cc compareConfig
	var clients string
	secs, _ := strconv.Atoi(getenv("BENCH_SECONDS"))
	if secs <= 0 {
		secs = 30
	}
	fs.DurationVar(&cc.seconds, "duration", time.Duration(secs)*time.Second, "measured time per run [BENCH_SECONDS]")
	fs.DurationVar(&cc.warmup, "warmup", 3*time.Second, "unmeasured load before each run")
	fs.StringVar(&clients, "clients", "1,16,64", "client counts")
	fs.IntVar(&cc.keys, "keys", 10000, "distinct keys")
	fs.IntVar(&cc.keySize, "key-size", 8, "key length in bytes")
	fs.IntVar(&cc.valueSize, "value-size", 256, "value length in bytes")
	fs.StringVar(&cc.replicaBin, "replica-bin", ".tmp/bin/replica", "Concord replica binary (make build)")
	var replicaArgs string
	fs.StringVar(&replicaArgs, "replica-args", getenv("BENCH_REPLICA_ARGS"), "extra flags for every Concord replica, space-separated, e.g. \"--log-store bolt\" [BENCH_REPLICA_ARGS]")
	fs.StringVar(&cc.etcdBin, "etcd-bin", "etcd", "etcd server binary (Debian's etcd-server)")
	fs.StringVar(&cc.workDir, "work-dir", "", "where both clusters keep their data (default a temp dir, removed after)")
	if done, err := parseFlags(fs, args); done {
		return err
	}
	cc.replicaArgs = strings.Fields(replicaArgs)
	for _, s := range strings.Split(clients, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("bad client count %q", s)
		}
		cc.clients = append(cc.clients, n)
	}
	if cc.workDir == "" {
		dir, err := os.MkdirTemp("", "concord-bench")
		if err != nil {
			return err
		}
		defer func() { _ = os.RemoveAll(dir) }()
		cc.workDir = dir
	}

	etcd, err := startEtcd(ctx, cc, stderr)
	defer stopAll(etcd)
	if err != nil {
		return fmt.Errorf("start etcd: %w", err)
	}
	concord, err := startConcord(ctx, cc, stderr)
	defer stopAll(concord)
	if err != nil {
		return fmt.Errorf("start concord: %w", err)
	}

	type row struct {
		workload, consistency string
		clients               int
		c, e                  Result
	}
	var rows []row
	for _, wl := range []struct{ workload, concordCons, etcdCons string }{
		{WorkloadPut, "strong", "strong"},
		{WorkloadGet, "strong", "strong"},
		{WorkloadGet, "eventual", "eventual"},
	} {
		for _, n := range cc.clients {
			l := Load{Workload: wl.workload, Clients: n, Duration: cc.seconds, Warmup: cc.warmup, Keys: cc.keys,
				KeySize: cc.keySize, ValueSize: cc.valueSize, BatchSize: 100, Seed: 1}
			var pair [2]Result
			for i, sys := range []*system{concord, etcd} {
				cons := wl.concordCons
				if sys == etcd {
					cons = wl.etcdCons
				}
				r, err := measureOn(ctx, sys, Consistency(cons), l)
				if err != nil {
					return fmt.Errorf("%s %s c=%d: %w", sys.name, wl.workload, n, err)
				}
				r.Consistency = cons
				if err := Print(stderr, r); err != nil {
					return err
				}
				pair[i] = r
			}
			rows = append(rows, row{wl.workload, wl.concordCons, n, pair[0], pair[1]})
		}
	}

	_, _ = fmt.Fprintf(stdout, "\n%-22s %7s %14s %14s %7s %12s %12s\n", "workload", "clients", "concord ops/s", "etcd ops/s", "ratio", "concord p99", "etcd p99")
	summary := map[string]any{"bench_seconds": cc.seconds.Seconds(), "concord_replica_args": strings.Join(cc.replicaArgs, " ")}
	for _, r := range rows {
		name := r.workload
		if r.workload == WorkloadGet {
			name = r.consistency + " get"
		}
		ratio := r.c.OpsPerSec / max(r.e.OpsPerSec, 1e-9)
		_, _ = fmt.Fprintf(stdout, "%-22s %7d %14.0f %14.0f %6.2fx %9.3f ms %9.3f ms\n", name, r.clients, r.c.OpsPerSec, r.e.OpsPerSec, ratio, r.c.P99, r.e.P99)
		key := strings.ReplaceAll(name, " ", "_") + "_c" + strconv.Itoa(r.clients)
		summary[key+"_ratio"] = round(ratio, 2)
		summary[key+"_concord_ops"] = round(r.c.OpsPerSec, 0)
		summary[key+"_etcd_ops"] = round(r.e.OpsPerSec, 0)
		summary[key+"_concord_p99_ms"] = round(r.c.P99, 3)
		summary[key+"_etcd_p99_ms"] = round(r.e.P99, 3)
		summary[key+"_errors"] = r.c.Errors + r.e.Errors
	}
	b, err := json.Marshal(summary)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\n", b)
	return err
}

func round(f float64, places int) float64 {
	p := 1.0
	for range places {
		p *= 10
	}
	return float64(int64(f*p+0.5)) / p
}

func measureOn(ctx context.Context, sys *system, cons Consistency, l Load) (Result, error) {
	d, err := NewDriver(ctx, sys.target, sys.endpoints, cons, 16)
	if err != nil {
		return Result{}, err
	}
	defer func() { _ = d.Close() }()
	if err := Preload(ctx, d, l); err != nil {
		return Result{}, err
	}
	r, err := Measure(ctx, d, l)
	r.Target = sys.name
	return r, err
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func startProc(sys *system, logDir, name, bin string, args ...string) error {
	logf, err := os.Create(filepath.Join(logDir, name+".log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	go func() { _ = cmd.Wait(); _ = logf.Close() }()
	sys.procs = append(sys.procs, cmd)
	return nil
}

func stopAll(sys *system) {
	if sys == nil {
		return
	}
	for _, p := range sys.procs {
		_ = p.Process.Signal(syscall.SIGTERM)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, p := range sys.procs {
		for p.ProcessState == nil && time.Now().Before(deadline) {
			if err := p.Process.Signal(syscall.Signal(0)); err != nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		_ = p.Process.Kill()
	}
}

func startEtcd(ctx context.Context, cc compareConfig, stderr io.Writer) (*system, error) {
	sys := &system{name: "etcd", target: "etcd"}
	var peers []string
	type node struct{ client, peer int }
	nodes := make([]node, 3)
	for i := range nodes {
		c, err := freePort()
		if err != nil {
			return sys, err
		}
		p, err := freePort()
		if err != nil {
			return sys, err
		}
		nodes[i] = node{c, p}
		peers = append(peers, fmt.Sprintf("e%d=http://127.0.0.1:%d", i+1, p))
	}
	for i, n := range nodes {
		clientURL := fmt.Sprintf("http://127.0.0.1:%d", n.client)
		peerURL := fmt.Sprintf("http://127.0.0.1:%d", n.peer)
		sys.endpoints = append(sys.endpoints, clientURL)
		err := startProc(sys, cc.workDir, fmt.Sprintf("etcd%d", i+1), cc.etcdBin,
			"--name", fmt.Sprintf("e%d", i+1), "--data-dir", filepath.Join(cc.workDir, fmt.Sprintf("etcd%d", i+1)),
			"--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
			"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
			"--initial-cluster", strings.Join(peers, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", "concord-bench", "--max-txn-ops", "1000", "--log-level", "warn")
		if err != nil {
			return sys, err
		}
	}
	_, _ = fmt.Fprintf(stderr, "etcd: %s (data in %s)\n", strings.Join(sys.endpoints, ","), cc.workDir)
	return sys, waitHealthy(ctx, sys.endpoints, "/health")
}

func startConcord(ctx context.Context, cc compareConfig, stderr io.Writer) (*system, error) {
	sys := &system{name: "concord", target: "sdk"}
	var peers []string
	raft := make([]int, 3)
	api := make([]int, 3)
	for i := range 3 {
		var err error
		if raft[i], err = freePort(); err != nil {
			return sys, err
		}
		if api[i], err = freePort(); err != nil {
			return sys, err
		}
		peers = append(peers, fmt.Sprintf("c%d=127.0.0.1:%d", i+1, raft[i]))
	}
	for i := range 3 {
		sys.endpoints = append(sys.endpoints, fmt.Sprintf("http://127.0.0.1:%d", api[i]))
		args := []string{
			"--node-id", fmt.Sprintf("c%d", i+1), "--data-dir", filepath.Join(cc.workDir, fmt.Sprintf("concord%d", i+1)),
			"--api-addr", fmt.Sprintf("127.0.0.1:%d", api[i]), "--raft-addr", fmt.Sprintf("127.0.0.1:%d", raft[i]),
			"--peers", strings.Join(peers, ","), "--log-level", "warn",
		}
		err := startProc(sys, cc.workDir, fmt.Sprintf("concord%d", i+1), cc.replicaBin, append(args, cc.replicaArgs...)...)
		if err != nil {
			return sys, err
		}
	}
	_, _ = fmt.Fprintf(stderr, "concord: %s (data in %s, extra replica flags %q)\n", strings.Join(sys.endpoints, ","), cc.workDir, strings.Join(cc.replicaArgs, " "))
	return sys, waitHealthy(ctx, sys.endpoints, "/ready")
}

// waitHealthy polls probe on every endpoint until all answer 200.
func waitHealthy(ctx context.Context, endpoints []string, probe string) error {
	check := func() error {
		for _, ep := range endpoints {
			resp, err := http.Get(ep + probe)
			if err != nil {
				return err
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s: %s", ep, resp.Status)
			}
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		err := check()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not healthy: %w", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
