package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"connectrpc.com/connect"
	concordv1 "github.com/concord-kv/concord/proto/gen/go/concord/v1"
	"github.com/concord-kv/concord/proto/gen/go/concord/v1/concordv1connect"
)

// clusterFlags are the flags shared by the modes that start replica
// processes themselves (memory, failover, restart).
type clusterFlags struct {
	replicaBin  string
	workDir     string
	replicaArgs string
	nodes       int
}

func (cf *clusterFlags) add(fs *flag.FlagSet, nodes int) {
	fs.StringVar(&cf.replicaBin, "replica-bin", ".tmp/bin/replica", "Concord replica binary (make build)")
	fs.StringVar(&cf.workDir, "work-dir", "", "where the replicas keep their data and logs (default a temp dir, removed after)")
	fs.StringVar(&cf.replicaArgs, "replica-args", "", "extra flags for every replica, space-separated (e.g. \"--heartbeat-timeout=500ms\")")
	fs.IntVar(&cf.nodes, "nodes", nodes, "replicas in the cluster")
}

// dir returns the work directory and a function that removes it if it was
// made here.
func (cf *clusterFlags) dir() (string, func(), error) {
	if cf.workDir != "" {
		return cf.workDir, func() {}, os.MkdirAll(cf.workDir, 0o700)
	}
	dir, err := os.MkdirTemp("", "concord-bench")
	if err != nil {
		return "", nil, err
	}
	return dir, func() { _ = os.RemoveAll(dir) }, nil
}

// start makes the work directory and starts cf.nodes replica processes in
// it (env added to their environment, extra to their flags). stop kills
// them and removes the directory if it was made here; call it even after an
// error.
func (cf *clusterFlags) start(env []string, extra ...string) (c *procCluster, dir string, stop func(), err error) {
	dir, cleanup, err := cf.dir()
	if err != nil {
		return nil, "", func() {}, err
	}
	c, err = newProcCluster(*cf, dir, env)
	if err != nil {
		return nil, dir, cleanup, err
	}
	stop = func() { c.close(); cleanup() }
	return c, dir, stop, c.startAll(extra...)
}

// addBulkLoadFlags adds the flags of a bulk load of l.Keys keys by writers
// concurrent writers.
func addBulkLoadFlags(fs *flag.FlagSet, l *Load, writers *int) {
	fs.IntVar(&l.Keys, "keys", 1000000, "keys to load")
	fs.IntVar(&l.KeySize, "key-size", 16, "key length in bytes")
	fs.IntVar(&l.ValueSize, "value-size", 100, "value length in bytes")
	fs.IntVar(&l.BatchSize, "batch", 500, "keys per bulk put")
	fs.IntVar(writers, "writers", 4, "concurrent bulk-put writers during the load")
}

// procNode is one replica process of a procCluster.
type procNode struct {
	id      string
	apiURL  string
	raft    string
	dataDir string
	logPath string
	kv      concordv1connect.KVServiceClient
	cluster concordv1connect.ClusterServiceClient

	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
}

func (n *procNode) running() bool {
	if n.exited == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// procCluster is a cluster of replica processes on 127.0.0.1 that this
// tool starts, kills and restarts. Each node keeps its ports and data
// directory across restarts; its output is appended to <dir>/<id>.log.
type procCluster struct {
	bin   string
	args  []string // extra flags for every node
	env   []string // extra environment for every node
	peers string
	nodes []*procNode
	hc    *http.Client
}

func newProcCluster(cf clusterFlags, dir string, env []string) (*procCluster, error) {
	if cf.nodes < 1 {
		return nil, fmt.Errorf("nodes %d must be >= 1", cf.nodes)
	}
	c := &procCluster{
		bin: cf.replicaBin, args: strings.Fields(cf.replicaArgs), env: env,
		hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
	}
	var peers []string
	for i := range cf.nodes {
		raftPort, err := freePort()
		if err != nil {
			return nil, err
		}
		apiPort, err := freePort()
		if err != nil {
			return nil, err
		}
		n := &procNode{
			id:      fmt.Sprintf("c%d", i+1),
			apiURL:  fmt.Sprintf("http://127.0.0.1:%d", apiPort),
			raft:    fmt.Sprintf("127.0.0.1:%d", raftPort),
			dataDir: filepath.Join(dir, fmt.Sprintf("c%d", i+1)),
			logPath: filepath.Join(dir, fmt.Sprintf("c%d.log", i+1)),
		}
		n.kv = concordv1connect.NewKVServiceClient(c.hc, n.apiURL)
		n.cluster = concordv1connect.NewClusterServiceClient(c.hc, n.apiURL)
		c.nodes = append(c.nodes, n)
		peers = append(peers, n.id+"="+n.raft)
	}
	c.peers = strings.Join(peers, ",")
	return c, nil
}

func (c *procCluster) endpoints() []string {
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.apiURL
	}
	return out
}

// start launches n's process with the cluster's flags plus extra.
func (c *procCluster) start(n *procNode, extra ...string) error {
	if n.running() {
		return fmt.Errorf("%s is already running", n.id)
	}
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	args := []string{
		"--node-id", n.id, "--data-dir", n.dataDir, "--peers", c.peers,
		"--api-addr", strings.TrimPrefix(n.apiURL, "http://"), "--raft-addr", n.raft, "--log-level", "warn",
	}
	args = append(append(args, c.args...), extra...)
	cmd := exec.Command(c.bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), c.env...)
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("start %s: %w", n.id, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); _ = logf.Close(); close(exited) }()
	n.cmd, n.exited = cmd, exited
	return nil
}

func (c *procCluster) startAll(extra ...string) error {
	for _, n := range c.nodes {
		if err := c.start(n, extra...); err != nil {
			return err
		}
	}
	return nil
}

// kill sends SIGKILL to n and waits for it to exit.
func (c *procCluster) kill(n *procNode) {
	if !n.running() {
		return
	}
	_ = n.cmd.Process.Kill()
	<-n.exited
}

// stop sends SIGTERM to n and waits up to 30 s for a clean exit, then
// kills it; it reports whether the exit was clean.
func (c *procCluster) stop(n *procNode) bool {
	if !n.running() {
		return true
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
		return n.cmd.ProcessState.Success()
	case <-time.After(30 * time.Second):
		c.kill(n)
		return false
	}
}

// stopAll stops every running node, all at once.
func (c *procCluster) stopAll() error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var unclean []string
	for _, n := range c.nodes {
		wg.Go(func() {
			if !c.stop(n) {
				mu.Lock()
				unclean = append(unclean, n.id)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(unclean) > 0 {
		slices.Sort(unclean)
		return fmt.Errorf("replicas %s did not stop cleanly (see their logs)", strings.Join(unclean, ", "))
	}
	return nil
}

// close kills whatever is still running; for deferred cleanup.
func (c *procCluster) close() {
	for _, n := range c.nodes {
		c.kill(n)
	}
	c.hc.CloseIdleConnections()
}

// retry calls f every interval until it succeeds, ctx ends or timeout
// passes, and returns f's last error in that case.
func retry(ctx context.Context, timeout, interval time.Duration, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := f(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %s: %w", timeout, err)
		case <-time.After(interval):
		}
	}
}

// waitReady waits until every running node answers /ready.
func (c *procCluster) waitReady(ctx context.Context) error {
	var urls []string
	for _, n := range c.nodes {
		if n.running() {
			urls = append(urls, n.apiURL)
		}
	}
	return retry(ctx, 2*time.Minute, 50*time.Millisecond, func(ctx context.Context) error {
		for _, u := range urls {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, u+"/ready", nil)
			if err != nil {
				return err
			}
			resp, err := c.hc.Do(req)
			if err != nil {
				return err
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s/ready: %s", u, resp.Status)
			}
		}
		return nil
	})
}

func (c *procCluster) status(ctx context.Context, n *procNode) (*concordv1.StatusResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := n.cluster.Status(ctx, connect.NewRequest(&concordv1.StatusRequest{}))
	if err != nil {
		return nil, fmt.Errorf("status of %s: %w", n.id, err)
	}
	return resp.Msg, nil
}

// leaderStatus waits until a running node says it leads and returns it
// with its status; a busy replica may answer slowly, so it retries.
func (c *procCluster) leaderStatus(ctx context.Context) (*procNode, *concordv1.StatusResponse, error) {
	var (
		leader *procNode
		st     *concordv1.StatusResponse
	)
	err := retry(ctx, 2*time.Minute, 50*time.Millisecond, func(ctx context.Context) error {
		var err error
		for _, n := range c.nodes {
			if !n.running() {
				continue
			}
			if st, err = c.status(ctx, n); err == nil && st.GetState() == "leader" {
				leader = n
				return nil
			}
		}
		return errors.Join(errors.New("no running replica leads"), err)
	})
	return leader, st, err
}

// leader waits until a running node says it leads.
func (c *procCluster) leader(ctx context.Context) (*procNode, error) {
	n, _, err := c.leaderStatus(ctx)
	return n, err
}

// waitApplied waits until every running node has applied the leader's
// commit index as it was on entry.
func (c *procCluster) waitApplied(ctx context.Context) error {
	_, st, err := c.leaderStatus(ctx)
	if err != nil {
		return err
	}
	target := st.GetCommitIndex()
	return retry(ctx, 5*time.Minute, 100*time.Millisecond, func(ctx context.Context) error {
		for _, n := range c.nodes {
			if !n.running() {
				continue
			}
			st, err := c.status(ctx, n)
			if err != nil {
				return err
			}
			if st.GetAppliedIndex() < target {
				return fmt.Errorf("%s applied %d of %d", n.id, st.GetAppliedIndex(), target)
			}
		}
		return nil
	})
}

// load writes keys 0..keys-1 through the SDK in bulk puts of batch keys,
// with writers concurrent writers, and returns how long it took.
func (c *procCluster) load(ctx context.Context, l Load, writers int) (time.Duration, error) {
	d, err := newSDKDriver(ctx, c.endpoints(), "strong")
	if err != nil {
		return 0, err
	}
	defer func() { _ = d.Close() }()
	v := value(l.ValueSize)
	batches := make(chan int)
	errs := make(chan error, writers)
	start := time.Now()
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			keys := make([]string, 0, l.BatchSize)
			for first := range batches {
				keys = keys[:0]
				for i := first; i < min(first+l.BatchSize, l.Keys); i++ {
					keys = append(keys, Key(i, l.KeySize))
				}
				if err := d.PutMany(ctx, keys, v); err != nil {
					errs <- fmt.Errorf("load keys %d..: %w", first, err)
					return
				}
			}
		})
	}
	var loadErr error
feed:
	for first := 0; first < l.Keys; first += l.BatchSize {
		select {
		case batches <- first:
		case loadErr = <-errs:
			break feed
		case <-ctx.Done():
			loadErr = ctx.Err()
			break feed
		}
	}
	close(batches)
	wg.Wait()
	if loadErr == nil {
		select {
		case loadErr = <-errs:
		default:
		}
	}
	return time.Since(start), loadErr
}

// diskUsage is a replica's data directory: the Raft log (wal/ or raft.db) and the
// snapshots.
type diskUsage struct {
	log, snapshots int64
}

func dataDirUsage(dir string) (diskUsage, error) {
	var u diskUsage
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if strings.HasPrefix(rel, "snapshots"+string(filepath.Separator)) {
			u.snapshots += info.Size()
		} else {
			u.log += info.Size()
		}
		return nil
	})
	return u, err
}

// latestSnapshotIndex returns the Raft index of the newest snapshot in a
// replica's data directory (0 if none).
func latestSnapshotIndex(dataDir string) (uint64, error) {
	metas, err := filepath.Glob(filepath.Join(dataDir, "snapshots", "*", "meta.json"))
	if err != nil {
		return 0, err
	}
	var best uint64
	for _, m := range metas {
		b, err := os.ReadFile(m)
		if err != nil {
			continue // being written or removed
		}
		var meta struct{ Index uint64 }
		if json.Unmarshal(b, &meta) == nil {
			best = max(best, meta.Index)
		}
	}
	return best, nil
}

// rssBytes returns a process's resident set size from /proc (Linux).
func rssBytes(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}

// cpuTime returns the user+system CPU time a process has used so far, from
// /proc/<pid>/stat (Linux; clock ticks taken as 100 Hz).
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: count from its ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// gcLine matches the runtime's GODEBUG=gctrace=1 line: the GC number and
// the live heap (marked) in MB at the end of that cycle.
var gcLine = regexp.MustCompile(`^gc (\d+) @[\d.]+s .*, \d+->\d+->(\d+) MB,`)

// lastGC returns the number and live heap (bytes) of the last GC cycle
// the node's log reports (0, 0 if none yet).
func lastGC(logPath string) (num int, liveHeap int64, err error) {
	f, err := os.Open(logPath)
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if m := gcLine.FindStringSubmatch(sc.Text()); m != nil {
			num, _ = strconv.Atoi(m[1])
			mb, _ := strconv.ParseInt(m[2], 10, 64)
			liveHeap = mb << 20
		}
	}
	return num, liveHeap, sc.Err()
}

// quantiles returns the minimum, median and maximum of xs.
func quantiles(xs []float64) (lo, med, hi float64) {
	if len(xs) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	med = s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[0], med, s[len(s)-1]
}

func printJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}
