package chaos

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
	concord "github.com/concord-kv/concord/sdk/go"
)

// Scenario is a cluster shape, a workload and a nemesis.
type Scenario struct {
	Name    string
	Nodes   int
	Args    []string // extra replica flags
	Nemesis Nemesis
	// Bug names the bug this scenario is the regression test of, if any
	// (see README.md, "Bugs found").
	Bug string
	// Failpoints runs the failpoint build of the replica (RunConfig.FailpointBin),
	// for the disk-fault and clock-jump nemeses.
	Failpoints bool
	// TTL puts this TTL on half of the register puts and on every set add
	// (Workload.TTL), and checks every acknowledged set element's expiry
	// (CheckExpiry).
	TTL time.Duration
	// ShortTTL puts TTLs of 1 s to ShortTTL on half of the register puts
	// and touches (Workload.ShortTTL): keys expire under the nemesis and
	// the linearizability check covers when. Not with clock jumps.
	ShortTTL time.Duration
	// Keys is the number of register keys (default 5). The ttl-* scenarios
	// use many, so that a key often goes untouched past its TTL.
	Keys int
	// APIProxies puts chaos proxies in front of the API ports too
	// (ClusterConfig.APIProxies), for the API-partition nemeses.
	APIProxies bool
	// RichOps adds touch, batch put, batch get and leader reads to the
	// workload (Workload.RichOps).
	RichOps bool
}

// Default fault spells: a fault is held 1–4 s after 0.5–2.5 s of quiet.
func spells(inject Inject) Nemesis {
	return Nemesis{Inject: inject, QuietMin: 500 * time.Millisecond, QuietMax: 2500 * time.Millisecond,
		HoldMin: time.Second, HoldMax: 4 * time.Second}
}

// slowSpells leaves the cluster longer between faults that take it all
// down, so that it serves load in between.
func slowSpells(inject Inject) Nemesis {
	n := spells(inject)
	n.QuietMin, n.QuietMax = 2*time.Second, 5*time.Second
	return n
}

// rapidSpells kills or cuts often and briefly.
func rapidSpells(inject Inject) Nemesis {
	return Nemesis{Inject: inject, QuietMin: 800 * time.Millisecond, QuietMax: 2 * time.Second,
		HoldMin: 300 * time.Millisecond, HoldMax: time.Second}
}

// lagSpells holds a fault long enough for a follower to fall more than a
// snapshot behind.
func lagSpells(inject Inject) Nemesis {
	return Nemesis{Inject: inject, QuietMin: time.Second, QuietMax: 2500 * time.Millisecond,
		HoldMin: 2 * time.Second, HoldMax: 5 * time.Second}
}

// installSnapshots snapshots every 64 entries and keeps only 16 after a
// snapshot, so a follower that missed more than that catches up by
// InstallSnapshot.
var installSnapshots = []string{"--snapshot-threshold", "64", "--snapshot-interval", "500ms", "--trailing-logs", "16"}

// fastElections makes followers call an election after 300 ms without the
// leader (hashicorp/raft's default is 1 s).
var fastElections = []string{"--heartbeat-timeout", "300ms", "--election-timeout", "300ms", "--leader-lease-timeout", "150ms"}

// tinySnapshots makes replicas snapshot every 64 entries, so snapshots are
// written (and restored on restart) many times per run.
var tinySnapshots = []string{"--snapshot-threshold", "64", "--snapshot-interval", "500ms"}

// onBolt runs the replicas on hashicorp/raft-boltdb, the log store data
// directories created before the WAL became the default hold, with args.
func onBolt(args ...string) []string {
	return append([]string{"--log-store", "bolt"}, args...)
}

// Scenarios is every scenario, in the order the suite runs them.
func Scenarios() []Scenario {
	return []Scenario{
		{Name: "none", Nodes: 3},
		{Name: "kill-leader", Nodes: 3, Nemesis: spells(KillLeader)},
		{Name: "kill-follower", Nodes: 3, Nemesis: spells(KillFollower)},
		{Name: "kill-all", Nodes: 3, Nemesis: slowSpells(KillAll)},
		{Name: "pause-leader", Nodes: 3, Nemesis: spells(PauseLeader)},
		{Name: "partition-leader", Nodes: 3, Nemesis: spells(PartitionLeader)},
		{Name: "partition-leader-oneway", Nodes: 3, Nemesis: spells(PartitionLeaderOneWay)},
		{Name: "partition-minority", Nodes: 5, Nemesis: spells(PartitionMinority)},
		{Name: "partition-halves", Nodes: 5, Nemesis: spells(PartitionHalves)},
		{Name: "partition-bridge", Nodes: 5, Nemesis: spells(PartitionBridge)},
		{Name: "flaky-links", Nodes: 3, Nemesis: spells(FlakyLinks)},
		{Name: "disk-error", Nodes: 3, Nemesis: spells(DiskError), Failpoints: true, Args: tinySnapshots},
		{Name: "disk-slow", Nodes: 3, Nemesis: spells(DiskSlow), Failpoints: true, Args: tinySnapshots},
		{Name: "disk-panic", Nodes: 3, Nemesis: spells(DiskPanic), Failpoints: true, Args: tinySnapshots},
		{Name: "clock-jump", Nodes: 3, Nemesis: spells(ClockJump), Failpoints: true, TTL: 2 * MaxClockJump},
		{Name: "membership", Nodes: 3, Nemesis: slowSpells(ReplaceFollower)},
		{Name: "snapshot-restart", Nodes: 3, Nemesis: slowSpells(KillRandom), Args: tinySnapshots},
		{
			Name: "mixed", Nodes: 5, Nemesis: spells(Mixed),
			Args: []string{"--snapshot-threshold", "128", "--snapshot-interval", "1s"},
		},
		{
			Name: "install-snapshot", Nodes: 3, Nemesis: lagSpells(LagFollower), Args: installSnapshots, RichOps: true,
		},
		{Name: "api-partition", Nodes: 3, Nemesis: spells(APIPartition), APIProxies: true, RichOps: true},
		{Name: "fast-elections", Nodes: 3, Nemesis: rapidSpells(RaftPartitions), Args: fastElections, RichOps: true},
		{Name: "sigterm", Nodes: 3, Nemesis: spells(TermRandom), RichOps: true},
		// Keys that expire during the run (TTLs of 1–2 s over 200 keys, so a
		// key often outlives its TTL untouched), checked by the
		// model: across leader changes, and through snapshots and restarts.
		{Name: "ttl-kill-leader", Nodes: 3, Nemesis: spells(KillLeader), RichOps: true, ShortTTL: 2 * time.Second, Keys: 200},
		{
			Name: "ttl-snapshot-restart", Nodes: 3, Nemesis: slowSpells(KillRandom), Args: tinySnapshots, RichOps: true,
			ShortTTL: 2 * time.Second, Keys: 200,
		},
		// The bolt log store (--log-store bolt; the others run on the
		// default, the WAL) under the faults that touch the log most:
		// whole-cluster crashes, lagging followers (which catch up by
		// InstallSnapshot), restarts from snapshots, panics in the log
		// store.
		{Name: "bolt-kill-all", Nodes: 3, Nemesis: slowSpells(KillAll), Args: onBolt()},
		{
			Name: "bolt-install-snapshot", Nodes: 3, Nemesis: lagSpells(LagFollower), Args: onBolt(installSnapshots...), RichOps: true,
		},
		{Name: "bolt-snapshot-restart", Nodes: 3, Nemesis: slowSpells(KillRandom), Args: onBolt(tinySnapshots...)},
		{Name: "bolt-disk-panic", Nodes: 3, Nemesis: spells(DiskPanic), Failpoints: true, Args: onBolt(tinySnapshots...)},
		// Regression scenarios: one per bug found (README.md, "Bugs found").
		{
			Name: "regress-sdk-ambiguous-write-error", Nodes: 3, Nemesis: rapidSpells(KillLeader),
			Bug: "B1: a write whose outcome is unknown also matches ErrNoLeader",
		},
		{
			Name: "regress-raft-follower-overcommit", Nodes: 3, Nemesis: spells(LeaderLogError), Failpoints: true,
			Bug: "B2: a follower commits its divergent suffix (hashicorp/raft's commit index rule)",
		},
		{
			Name: "regress-raft-replace-member", Nodes: 3, Args: installSnapshots,
			Nemesis: Nemesis{Inject: ReplaceDeadFollower, QuietMin: 2 * time.Second, QuietMax: 5 * time.Second,
				HoldMin: 200 * time.Millisecond, HoldMax: 1500 * time.Millisecond},
			Bug: "B10: a member replaced by an empty one at the same address never catches up",
		},
	}
}

// RunConfig is how to run one scenario.
type RunConfig struct {
	Bin string // replica binary
	// FailpointBin is the replica built with -tags failpoints, for the
	// scenarios that set Failpoints.
	FailpointBin string
	Seed         uint64        // this run's seed
	Duration     time.Duration // of the load
	Dir          string        // scratch space: data and logs
	OutDir       string        // where a failing run leaves its evidence
	Logf         func(format string, args ...any)
	// CheckTimeout bounds the linearizability check of one key.
	CheckTimeout time.Duration
}

// Result is the outcome of one scenario run.
type Result struct {
	Scenario string
	Seed     uint64
	Nodes    int
	Ops      int // register operations recorded
	Unknown  int // of which maybe applied
	SetAcked int
	SetMaybe int
	Faults   int
	Terms    int // terms seen with a leader
	// Batches counts the batch puts sent (RichOps only).
	Batches int
	// SnapshotInstalls counts InstallSnapshots the replicas' logs report.
	SnapshotInstalls int
	// FaultExits counts replicas that died of an injected fault (expected).
	FaultExits int
	Elapsed    time.Duration

	// Violations are broken guarantees: non-linearizable keys, two leaders
	// in a term, diverging replicas, phantom or duplicated writes, crashed
	// replicas.
	Violations []string
	// Lost are acknowledged set elements missing from the final read.
	Lost []string
	// Inconclusive lists keys whose check timed out.
	Inconclusive []string
	// Errors are harness failures: the run could not be completed.
	Errors []string
	// Artifacts is the directory with the evidence of a failed run.
	Artifacts string
}

// Failed reports whether the run found anything or could not complete.
func (r *Result) Failed() bool {
	return len(r.Violations)+len(r.Lost)+len(r.Inconclusive)+len(r.Errors) > 0
}

// Line is the one-line summary of the run.
func (r *Result) Line() string {
	verdict := "ok"
	if r.Failed() {
		var why []string
		if n := len(r.Violations); n > 0 {
			why = append(why, fmt.Sprintf("%d violations", n))
		}
		if n := len(r.Lost); n > 0 {
			why = append(why, fmt.Sprintf("%d lost acked writes", n))
		}
		if n := len(r.Inconclusive); n > 0 {
			why = append(why, fmt.Sprintf("%d inconclusive", n))
		}
		if n := len(r.Errors); n > 0 {
			why = append(why, fmt.Sprintf("%d errors", n))
		}
		verdict = "FAIL (" + strings.Join(why, ", ") + ")"
	}
	s := fmt.Sprintf("chaos %-24s seed=%-20d nodes=%d ops=%d maybe=%d set=%d+%d? faults=%d terms=%d %5.1fs %s",
		r.Scenario, r.Seed, r.Nodes, r.Ops, r.Unknown, r.SetAcked, r.SetMaybe, r.Faults, r.Terms, r.Elapsed.Seconds(), verdict)
	if r.FaultExits > 0 {
		s += fmt.Sprintf(" injected-exits=%d", r.FaultExits)
	}
	if r.Batches > 0 {
		s += fmt.Sprintf(" batches=%d", r.Batches)
	}
	if r.SnapshotInstalls > 0 {
		s += fmt.Sprintf(" snapshot-installs=%d", r.SnapshotInstalls)
	}
	if r.Artifacts != "" {
		s += " evidence=" + r.Artifacts
	}
	return s
}

func seedFor(seed uint64, name string) uint64 {
	h := fnv.New64a()
	_, _ = io.WriteString(h, name)
	return seed ^ h.Sum64()
}

// Run runs one scenario: start the cluster, load it while the nemesis
// works, heal, and check everything.
func Run(ctx context.Context, sc Scenario, cfg RunConfig) *Result {
	start := time.Now()
	res := &Result{Scenario: sc.Name, Seed: cfg.Seed, Nodes: sc.Nodes}
	defer func() { res.Elapsed = time.Since(start) }()
	fail := func(format string, args ...any) { res.Errors = append(res.Errors, fmt.Sprintf(format, args...)) }
	seed := seedFor(cfg.Seed, sc.Name)
	rng := rand.New(rand.NewPCG(seed, 1))
	logs := &runLog{}
	logf := func(format string, args ...any) {
		logs.printf(format, args...)
		if cfg.Logf != nil {
			cfg.Logf(format, args...)
		}
	}

	bin := cfg.Bin
	if sc.Failpoints {
		if bin = cfg.FailpointBin; bin == "" {
			fail("scenario %s needs the failpoint build of the replica (RunConfig.FailpointBin)", sc.Name)
			return res
		}
	}
	sctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	c, err := StartCluster(sctx, ClusterConfig{
		Bin: bin, Nodes: sc.Nodes, Args: sc.Args, Dir: cfg.Dir, Seed: seed, Logf: logf, Failpoints: sc.Failpoints,
		APIProxies: sc.APIProxies,
	})
	cancel()
	if err != nil {
		fail("start cluster: %v", err)
		return res
	}
	defer c.Close()

	clock := NewClock()
	hist := &History{}
	set := &SetResult{}
	findings := &Findings{}
	tl := &Timeline{}
	ledger := NewLedger()
	w := Workload{
		Keys: cmp.Or(sc.Keys, 5), Clients: 10, SetClients: 4, AnyReplica: 3, OpTimeout: 2 * time.Second, MaxThink: 10 * time.Millisecond,
		KeyPrefix: "reg/", SetPrefix: "set/", Seed: seed, AllEndpoints: c.URLs(), TTL: sc.TTL, ShortTTL: sc.ShortTTL,
		RichOps: sc.RichOps, Ledger: ledger, Generations: c.Generations,
		EndpointsOf: func(_ int, rng *rand.Rand) []string {
			urls := c.URLs()
			rng.Shuffle(len(urls), func(i, j int) { urls[i], urls[j] = urls[j], urls[i] })
			return urls[:2]
		},
	}

	mon := NewLeaderMonitor()
	monCtx, stopMon := context.WithCancel(ctx)
	var monWG sync.WaitGroup
	monWG.Go(func() { mon.Run(monCtx, c, 200*time.Millisecond) })
	defer func() { stopMon(); monWG.Wait() }()

	loadCtx, stopLoad := context.WithTimeout(ctx, cfg.Duration)
	defer stopLoad()
	var nemErr error
	var nemWG sync.WaitGroup
	nemWG.Go(func() { nemErr = sc.Nemesis.Run(loadCtx, c, rng, clock, tl) })
	if err := RunWorkload(loadCtx, w, clock, hist, set, findings); err != nil {
		fail("workload: %v", err)
	}
	stopLoad()
	nemWG.Wait()
	if nemErr != nil {
		fail("nemesis: %v", nemErr)
	}
	res.Faults = len(tl.Events())

	// Heal everything and check.
	if err := c.HealAll(); err != nil {
		fail("heal: %v", err)
	}
	fctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := c.WaitReady(fctx); err != nil {
		fail("after healing: %v", err)
	}
	hc := newHTTPClient()
	defer hc.CloseIdleConnections()
	reader, err := concord.New(fctx, c.URLs(), concord.WithTimeout(10*time.Second), concord.WithHTTPClient(hc))
	if err != nil {
		fail("final client: %v", err)
	} else {
		defer func() { _ = reader.Close() }()
		if err := finalReads(fctx, reader, w, clock, hist, w.Clients+w.SetClients); err != nil {
			fail("%v", err)
		}
		final, err := finalSet(fctx, reader, w.SetPrefix)
		if err != nil {
			fail("%v", err)
		} else {
			lost, phantoms := CheckSet(set, final)
			res.Lost = lost
			for _, k := range phantoms {
				a, _ := set.Add(k)
				res.Violations = append(res.Violations, fmt.Sprintf("set element %s is present but its add (client %d, %v..%v) failed with ErrNoLeader, which promises it was not applied: %s",
					k, a.Client, time.Duration(a.Call), time.Duration(a.Return), a.Err))
			}
		}
		if sc.TTL > 0 {
			bad, err := CheckExpiry(fctx, reader, set, w.SetPrefix, clock, sc.TTL, MaxClockJump)
			if err != nil {
				fail("%v", err)
			}
			res.Violations = append(res.Violations, bad...)
		}
	}
	set.mu.Lock()
	res.SetAcked, res.SetMaybe = len(set.Acked), len(set.Unknown)
	set.mu.Unlock()

	if _, diffs, err := Converge(fctx, c); err != nil {
		fail("%v", err)
	} else {
		res.Violations = append(res.Violations, diffs...)
	}
	stopMon()
	monWG.Wait()
	res.Terms = mon.Terms()
	res.Violations = append(res.Violations, mon.Violations()...)
	res.Violations = append(res.Violations, c.Crashes()...)
	for _, e := range c.FaultExits() {
		res.FaultExits++
		logf("%s", e)
	}
	res.Violations = append(res.Violations, findings.List()...)

	ops := hist.Ops()
	res.Ops = len(ops)
	res.Violations = append(res.Violations, ledger.CheckBatches(ops)...)
	res.Batches = ledger.Batches()
	res.SnapshotInstalls = c.SnapshotInstalls()
	for _, op := range ops {
		if op.Output.(Output).Status == StatusUnknown {
			res.Unknown++
		}
	}
	bad, inconclusive := checkKeys(ops, cfg.CheckTimeout)
	for _, k := range bad {
		res.Violations = append(res.Violations, fmt.Sprintf("history of key %s is not linearizable", k))
	}
	for _, k := range inconclusive {
		res.Inconclusive = append(res.Inconclusive, fmt.Sprintf("linearizability check of key %s timed out after %v", k, cfg.CheckTimeout))
	}

	if res.Failed() && cfg.OutDir != "" {
		dir, err := saveEvidence(cfg, res, c, ops, set, tl, mon, logs)
		if err != nil {
			fail("saving evidence: %v", err)
		}
		res.Artifacts = dir
	}
	return res
}

// checkKeys checks each key's history on its own (see Reduce); it returns
// the keys that are not linearizable and those whose check timed out.
func checkKeys(ops []porcupine.Operation, timeout time.Duration) (bad, inconclusive []string) {
	byKey := map[string][]porcupine.Operation{}
	for _, op := range ops {
		k := op.Input.(Input).Key
		byKey[k] = append(byKey[k], op)
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch CheckKey(byKey[k], timeout) {
		case porcupine.Illegal:
			bad = append(bad, k)
		case porcupine.Unknown:
			inconclusive = append(inconclusive, k)
		}
	}
	return bad, inconclusive
}

// runLog keeps the harness's log lines of a run.
type runLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *runLog) printf(format string, args ...any) {
	l.mu.Lock()
	l.lines = append(l.lines, time.Now().Format("15:04:05.000 ")+fmt.Sprintf(format, args...))
	l.mu.Unlock()
}

// saveEvidence writes what a failed run leaves behind: porcupine's
// visualization of the whole history with the faults on it, the history as
// JSON lines, the fault timeline, the leaders seen per term, the replica
// logs and a summary.
func saveEvidence(cfg RunConfig, res *Result, c *Cluster, ops []porcupine.Operation, set *SetResult, tl *Timeline, mon *LeaderMonitor, logs *runLog) (string, error) {
	dir := filepath.Join(cfg.OutDir, fmt.Sprintf("%s-seed%d", res.Scenario, res.Seed))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// The visualization: the check again, verbose, of the history as
	// judged (Reduce), with the faults as annotations.
	resolved, _ := Reduce(ops)
	_, info := porcupine.CheckOperationsVerbose(RegisterModel, resolved, 2*cfg.CheckTimeout)
	var notes []porcupine.Annotation
	for _, e := range tl.Events() {
		notes = append(notes, porcupine.Annotation{Tag: "nemesis", Start: e.Start, End: e.End, Description: e.Desc, BackgroundColor: "#fde2e2"})
	}
	info.AddAnnotations(notes)
	html := filepath.Join(dir, "history.html")
	if err := porcupine.VisualizePath(RegisterModel, info, html); err != nil {
		return dir, err
	}

	var b strings.Builder
	if err := WriteHistory(&b, ops); err != nil {
		return dir, err
	}
	if err := os.WriteFile(filepath.Join(dir, "history.jsonl"), []byte(b.String()), 0o644); err != nil {
		return dir, err
	}
	b.Reset()
	set.mu.Lock()
	for _, a := range set.Adds {
		line, _ := json.Marshal(a)
		b.Write(line)
		b.WriteByte('\n')
	}
	set.mu.Unlock()
	if err := os.WriteFile(filepath.Join(dir, "set.jsonl"), []byte(b.String()), 0o644); err != nil {
		return dir, err
	}

	b.Reset()
	fmt.Fprintf(&b, "%s\n\n", res.Line())
	for _, group := range []struct {
		name  string
		items []string
	}{{"violations", res.Violations}, {"lost acknowledged writes", res.Lost}, {"inconclusive", res.Inconclusive}, {"errors", res.Errors}} {
		if len(group.items) > 0 {
			fmt.Fprintf(&b, "%s:\n  %s\n", group.name, strings.Join(group.items, "\n  "))
		}
	}
	b.WriteString("\nfaults (ns on the history clock):\n")
	for _, e := range tl.Events() {
		fmt.Fprintf(&b, "  %d..%d %s\n", e.Start, e.End, e.Desc)
	}
	b.WriteString("\nleaders per term:\n")
	leaders := mon.Leaders()
	terms := make([]uint64, 0, len(leaders))
	for t := range leaders {
		terms = append(terms, t)
	}
	slices.Sort(terms)
	for _, t := range terms {
		fmt.Fprintf(&b, "  %d %v\n", t, leaders[t])
	}
	b.WriteString("\nharness log:\n")
	logs.mu.Lock()
	for _, l := range logs.lines {
		b.WriteString("  " + l + "\n")
	}
	logs.mu.Unlock()
	if err := os.WriteFile(filepath.Join(dir, "summary.txt"), []byte(b.String()), 0o644); err != nil {
		return dir, err
	}
	for _, n := range c.Nodes {
		data, err := os.ReadFile(n.LogPath)
		if err != nil {
			return dir, err
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(n.LogPath)), data, 0o644); err != nil {
			return dir, err
		}
	}
	return dir, nil
}
