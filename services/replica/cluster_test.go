package replica_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	concordv1 "github.com/concord-kv/concord/proto/gen/go/concord/v1"
	"github.com/concord-kv/concord/proto/gen/go/concord/v1/concordv1connect"
	"github.com/concord-kv/concord/services/replica"
	"github.com/concord-kv/concord/services/replica/replicatest"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	raftwal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
)

const (
	eventual = concordv1.Consistency_CONSISTENCY_EVENTUAL
	leader   = concordv1.Consistency_CONSISTENCY_LEADER
	strong   = concordv1.Consistency_CONSISTENCY_STRONG
)

func clusterClient(addr string) concordv1connect.ClusterServiceClient {
	return concordv1connect.NewClusterServiceClient(http.DefaultClient, addr)
}

// timeout is a request context for one call.
func timeout(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it returns nil or the timeout passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %v after %v", what, err, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func codeOf(err error) connect.Code {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce.Code()
	}
	return 0
}

func storageSize(t *testing.T, addr string) (uint64, error) {
	t.Helper()
	resp, err := clusterClient(addr).Status(timeout(t, 5*time.Second), connect.NewRequest(&concordv1.StatusRequest{}))
	if err != nil {
		return 0, err
	}
	return resp.Msg.GetStorage().GetSize(), nil
}

// readAll reads keys from addr at the given level (eventual reads wait for
// minRevision) and returns key -> value and key -> mod_revision.
func readAll(t *testing.T, addr string, keys []string, cons concordv1.Consistency, minRevision uint64) (map[string]string, map[string]uint64) {
	t.Helper()
	values := map[string]string{}
	revs := map[string]uint64{}
	for start := 0; start < len(keys); start += 500 {
		chunk := keys[start:min(start+500, len(keys))]
		resp, err := kvClient(addr).BatchGet(timeout(t, 20*time.Second), connect.NewRequest(&concordv1.BatchGetRequest{
			Keys: chunk, Consistency: cons, MinRevision: minRevision,
		}))
		if err != nil {
			t.Fatalf("batch get from %s: %v", addr, err)
		}
		if len(resp.Msg.GetMissing()) > 0 {
			t.Fatalf("%s is missing %d acknowledged keys, e.g. %q", addr, len(resp.Msg.GetMissing()), resp.Msg.GetMissing()[0])
		}
		for _, kv := range resp.Msg.GetKvs() {
			values[kv.GetKey()] = string(kv.GetValue())
			revs[kv.GetKey()] = kv.GetModRevision()
		}
	}
	return values, revs
}

// write is one acknowledged write.
type write struct {
	value string
	rev   uint64
}

// writeMany puts n keys named prefix%04d with writers goroutines spread over
// every running replica (but those excluded) and returns the acknowledged
// writes.
func writeMany(t *testing.T, c *replicatest.Cluster, prefix string, n, writers int) map[string]write {
	t.Helper()
	var (
		mu   sync.Mutex
		acks = map[string]write{}
		wg   sync.WaitGroup
	)
	var addrs []string
	for i := range c.Len() {
		if c.Node(i) != nil && !c.Excluded(i) {
			addrs = append(addrs, c.Addr(i))
		}
	}
	for w := range writers {
		wg.Go(func() {
			kv := kvClient(addrs[w%len(addrs)])
			for i := w; i < n; i += writers {
				key := fmt.Sprintf("%s%04d", prefix, i)
				value := fmt.Sprintf("value-%d-%s", i, strings.Repeat("v", i%50))
				resp, err := kv.Put(timeout(t, 20*time.Second), connect.NewRequest(&concordv1.PutRequest{Key: key, Value: []byte(value)}))
				if err != nil {
					t.Errorf("put %s: %v", key, err)
					return
				}
				mu.Lock()
				acks[key] = write{value, resp.Msg.GetHeader().GetRevision()}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return acks
}

func maxRev(acks map[string]write) uint64 {
	var m uint64
	for _, w := range acks {
		m = max(m, w.rev)
	}
	return m
}

func keysOf(acks map[string]write) []string {
	keys := make([]string, 0, len(acks))
	for k := range acks {
		keys = append(keys, k)
	}
	return keys
}

// checkAcks fails unless addr serves every acknowledged write with its value
// and revision.
func checkAcks(t *testing.T, addr string, acks map[string]write, cons concordv1.Consistency) {
	t.Helper()
	values, revs := readAll(t, addr, keysOf(acks), cons, maxRev(acks))
	for k, w := range acks {
		if values[k] != w.value || revs[k] != w.rev {
			t.Fatalf("%s serves %s = %q at revision %d, want %q at %d", addr, k, values[k], revs[k], w.value, w.rev)
		}
	}
}

// latestSnapshotIndex is the highest raft index of a finished snapshot in a
// replica's data directory (0 if none).
func latestSnapshotIndex(t *testing.T, dataDir string) uint64 {
	t.Helper()
	dirs, _ := os.ReadDir(filepath.Join(dataDir, "snapshots"))
	var best uint64
	for _, d := range dirs {
		if !d.IsDir() || strings.HasSuffix(d.Name(), ".tmp") {
			continue
		}
		// Snapshots may be reaped while we look: skip what vanished.
		data, err := os.ReadFile(filepath.Join(dataDir, "snapshots", d.Name(), "meta.json"))
		if err != nil {
			continue
		}
		var meta struct{ Index uint64 }
		if err := json.Unmarshal(data, &meta); err != nil {
			t.Fatalf("snapshot meta %s: %v", d.Name(), err)
		}
		best = max(best, meta.Index)
	}
	return best
}

// firstLogIndex opens a stopped replica's raft log and returns its first index.
func firstLogIndex(t *testing.T, dataDir string) (first, last uint64) {
	t.Helper()
	var db interface {
		FirstIndex() (uint64, error)
		LastIndex() (uint64, error)
		Close() error
	}
	var err error
	if _, serr := os.Stat(filepath.Join(dataDir, "wal")); serr == nil {
		// WAL.Close leaves the meta database (and its file lock) open: the
		// test closes it, or the replica restarted next would wait on it.
		meta := &metadb.BoltMetaDB{}
		defer func() { _ = meta.Close() }()
		db, err = raftwal.Open(filepath.Join(dataDir, "wal"), raftwal.WithMetaStore(meta))
	} else {
		db, err = raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dataDir, "raft.db")})
	}
	if err != nil {
		t.Fatalf("open raft log: %v", err)
	}
	defer func() { _ = db.Close() }()
	if first, err = db.FirstIndex(); err != nil {
		t.Fatal(err)
	}
	if last, err = db.LastIndex(); err != nil {
		t.Fatal(err)
	}
	return first, last
}

// waitExpired waits until a strong read through kv finds key gone: a key
// expires at the first entry stamped past its expiry (the reaper's Expire
// on an idle cluster), a moment after the clock passes it.
func waitExpired(t *testing.T, kv concordv1connect.KVServiceClient, key string) {
	t.Helper()
	waitFor(t, 10*time.Second, key+" expires", func() error {
		_, err := get(t, kv, key, strong)
		switch {
		case err == nil:
			return errors.New("a strong get still finds it")
		case codeOf(err) != connect.CodeNotFound:
			return fmt.Errorf("strong get: %w", err)
		}
		return nil
	})
}

func TestTTLExpiresEverywhereAndIsReaped(t *testing.T) {
	var clk replicatest.Clock
	c := replicatest.Start(t, 3, replicatest.WithClock(&clk))
	l := c.WaitLeader(10 * time.Second)
	kv := kvClient(c.Addr((l + 1) % 3))
	resp, err := kv.Put(timeout(t, 10*time.Second), connect.NewRequest(&concordv1.PutRequest{Key: "session:1", Value: []byte("alive"), TtlSeconds: 30}))
	if err != nil {
		t.Fatal(err)
	}
	ttlRev := resp.Msg.GetHeader().GetRevision()
	rev := put(t, kv, "config", "stays")
	for i := range 3 {
		got, err := kvClient(c.Addr(i)).Get(timeout(t, 10*time.Second), connect.NewRequest(&concordv1.GetRequest{
			Key: "session:1", Consistency: eventual, MinRevision: rev, WithTtl: true,
		}))
		if err != nil {
			t.Fatalf("replica %d before expiry: %v", i, err)
		}
		if kv := got.Msg.GetKv(); kv.GetTtlSeconds() <= 0 || kv.GetTtlSeconds() > 30 || kv.GetModRevision() != ttlRev {
			t.Fatalf("replica %d: ttl %d rev %d, want 1..30 at %d", i, kv.GetTtlSeconds(), kv.GetModRevision(), ttlRev)
		}
		if size, err := storageSize(t, c.Addr(i)); err != nil || size != 2 {
			t.Fatalf("replica %d stores %d entries (%v), want 2", i, size, err)
		}
	}

	clk.Advance(31 * time.Second)

	// The key expires at one log index everywhere: the first entry stamped
	// past its expiry, here the reaper's Expire (store/DESIGN.md, "TTL").
	// Once a strong read finds it gone, every replica that has applied that
	// read's index does too.
	waitExpired(t, kvClient(c.Addr(l)), "session:1")
	idx := put(t, kvClient(c.Addr(l)), "marker", "after the expiry")
	for i := range 3 {
		for _, cons := range []concordv1.Consistency{eventual, leader, strong} {
			_, err := kvClient(c.Addr(i)).Get(timeout(t, 10*time.Second), connect.NewRequest(&concordv1.GetRequest{Key: "session:1", Consistency: cons, MinRevision: idx}))
			wantCode(t, err, connect.CodeNotFound)
		}
		list, err := kvClient(c.Addr(i)).List(timeout(t, 10*time.Second), connect.NewRequest(&concordv1.ListRequest{Consistency: eventual, KeysOnly: true}))
		if err != nil {
			t.Fatal(err)
		}
		if kvs := list.Msg.GetKvs(); len(kvs) != 2 || kvs[0].GetKey() != "config" || kvs[1].GetKey() != "marker" {
			t.Fatalf("replica %d lists %v, want config and marker", i, kvs)
		}
	}
	// The leader's reaper removes the key through raft, so every replica's
	// memory is reclaimed.
	for i := range 3 {
		waitFor(t, 10*time.Second, fmt.Sprintf("replica %d reaps the expired key", i), func() error {
			size, err := storageSize(t, c.Addr(i))
			if err == nil && size != 2 {
				err = fmt.Errorf("%d entries", size)
			}
			return err
		})
	}
	got, err := get(t, kvClient(c.Addr(l)), "config", strong)
	if err != nil || string(got.GetKv().GetValue()) != "stays" {
		t.Fatalf("the key without TTL: %v %v", got, err)
	}
}

func TestRemainingTTLSurvivesLeaderChange(t *testing.T) {
	var clk replicatest.Clock
	c := replicatest.Start(t, 3, replicatest.WithClock(&clk))
	l := c.WaitLeader(10 * time.Second)
	if _, err := kvClient(c.Addr(l)).Put(timeout(t, 10*time.Second), connect.NewRequest(&concordv1.PutRequest{
		Key: "lease", Value: []byte("holder-1"), TtlSeconds: 60,
	})); err != nil {
		t.Fatal(err)
	}
	clk.Advance(10 * time.Second)
	c.Kill(l)
	nl := c.WaitLeader(10 * time.Second)
	resp, err := kvClient(c.Addr(nl)).GetTTL(timeout(t, 10*time.Second), connect.NewRequest(&concordv1.GetTTLRequest{Key: "lease", Consistency: strong}))
	if err != nil {
		t.Fatalf("GetTTL on the new leader: %v", err)
	}
	// The expiry was fixed by the old leader's stamp; 10 s of the 60 have
	// passed, so at most 50 remain whatever the new leader's term start.
	if ttl := resp.Msg.TtlSeconds; ttl == nil || *ttl <= 0 || *ttl > 50 {
		t.Fatalf("remaining ttl %v on the new leader, want 1..50", resp.Msg.TtlSeconds)
	}
	clk.Advance(51 * time.Second)
	waitExpired(t, kvClient(c.Addr(nl)), "lease")
}

func TestStrongReadOnPartitionedLeaderFails(t *testing.T) {
	c := replicatest.Start(t, 3)
	old := c.WaitLeader(10 * time.Second)
	put(t, kvClient(c.Addr(old)), "k", "v1")
	oldKV := kvClient(c.Addr(old))

	c.Partition(old)
	type result struct {
		resp *connect.Response[concordv1.GetResponse]
		err  error
	}
	strongRead := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer cancel()
		resp, err := oldKV.Get(ctx, connect.NewRequest(&concordv1.GetRequest{Key: "k", Consistency: strong}))
		strongRead <- result{resp, err}
	}()
	staleWrite := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer cancel()
		_, err := oldKV.Put(ctx, connect.NewRequest(&concordv1.PutRequest{Key: "k", Value: []byte("from-old-leader")}))
		staleWrite <- err
	}()

	nl := c.WaitLeader(10 * time.Second)
	if nl == old {
		t.Fatal("the partitioned replica is still the leader of the majority")
	}
	rev := put(t, kvClient(c.Addr(nl)), "k", "v2")

	r := <-strongRead
	if r.err == nil {
		t.Fatalf("strong read on the partitioned old leader returned %q", r.resp.Msg.GetKv().GetValue())
	}
	if code := codeOf(r.err); code != connect.CodeUnavailable && code != connect.CodeDeadlineExceeded {
		t.Fatalf("strong read on the partitioned old leader: %v, want Unavailable or DeadlineExceeded", r.err)
	}
	if err := <-staleWrite; err == nil {
		t.Fatal("write through the partitioned old leader succeeded")
	}
	// Still cut off: still no strong read.
	_, err := oldKV.Get(timeout(t, time.Second), connect.NewRequest(&concordv1.GetRequest{Key: "k", Consistency: strong}))
	if code := codeOf(err); code != connect.CodeUnavailable && code != connect.CodeDeadlineExceeded {
		t.Fatalf("second strong read while partitioned: %v", err)
	}

	c.Heal(old)
	c.WaitLeader(20 * time.Second)
	for _, cons := range []concordv1.Consistency{strong, leader} {
		got, err := get(t, oldKV, "k", cons)
		if err != nil {
			t.Fatalf("%v read on the healed old leader: %v", cons, err)
		}
		if string(got.GetKv().GetValue()) != "v2" || got.GetKv().GetModRevision() != rev {
			t.Fatalf("%v read on the healed old leader: %q at %d, want v2 at %d", cons, got.GetKv().GetValue(), got.GetKv().GetModRevision(), rev)
		}
	}
}

// snapshotOften makes replicas snapshot and truncate their logs every few
// dozen entries.
var snapshotOften = replicatest.WithConfig(func(_ int, cfg *replica.Config) {
	cfg.SnapshotThreshold = 64
	cfg.SnapshotInterval = 50 * time.Millisecond
	cfg.TrailingLogs = 16
})

// withLogStore runs every replica on the given Raft log store.
func withLogStore(kind string) replicatest.Option {
	return replicatest.WithConfig(func(_ int, cfg *replica.Config) { cfg.LogStore = kind })
}

// logStores are the Raft log stores a replica can run on.
var logStores = []string{replica.LogStoreBolt, replica.LogStoreWAL}

func TestSnapshotsTruncateLogAndRestartRecovers(t *testing.T) {
	for _, kind := range logStores {
		t.Run(kind, func(t *testing.T) { testSnapshotsTruncateLogAndRestartRecovers(t, kind) })
	}
}

func testSnapshotsTruncateLogAndRestartRecovers(t *testing.T, kind string) {
	c := replicatest.Start(t, 3, snapshotOften, withLogStore(kind))
	l := c.WaitLeader(10 * time.Second)
	acks := map[string]write{}
	// Rounds of writes, each waiting for a snapshot that covers most of it,
	// so the cluster takes several snapshots and truncates several times.
	var snapshots []uint64
	for round := range 4 {
		for k, w := range writeMany(t, c, fmt.Sprintf("r%d/", round), 100, 8) {
			acks[k] = w
		}
		want := maxRev(acks) - 64
		waitFor(t, 20*time.Second, fmt.Sprintf("round %d snapshot", round), func() error {
			for i := range 3 {
				if got := latestSnapshotIndex(t, c.Config(i).DataDir); got < want {
					return fmt.Errorf("replica %d snapshot at %d, want >= %d", i, got, want)
				}
			}
			return nil
		})
		snapshots = append(snapshots, latestSnapshotIndex(t, c.Config(l).DataDir))
	}
	for i := 1; i < len(snapshots); i++ {
		if snapshots[i] <= snapshots[i-1] {
			t.Fatalf("snapshot indexes %v do not grow", snapshots)
		}
	}

	f := (l + 1) % 3
	c.WaitApplied(timeout(t, 10*time.Second), maxRev(acks))
	c.Kill(f)
	first, last := firstLogIndex(t, c.Config(f).DataDir)
	if first <= snapshots[0] || last < maxRev(acks) {
		t.Fatalf("follower log holds %d..%d: want it truncated past %d and reaching %d", first, last, snapshots[0], maxRev(acks))
	}
	c.Restart(f)
	c.WaitLeader(10 * time.Second)
	checkAcks(t, c.Addr(f), acks, eventual)
	checkAcks(t, c.Addr(f), acks, strong)

	// The whole cluster down and up again: every acknowledged write is back,
	// rebuilt from the snapshot plus the log tail.
	for i := range 3 {
		c.Kill(i)
	}
	for i := range 3 {
		c.Restart(i)
	}
	c.WaitLeader(20 * time.Second)
	more := writeMany(t, c, "after/", 20, 4)
	for i := range 3 {
		checkAcks(t, c.Addr(i), acks, strong)
		checkAcks(t, c.Addr(i), more, eventual)
	}
}

// TestFollowerCatchesUpAfterDowntime forces an InstallSnapshot, on each log
// store. On raft-wal it is also B7's regression test: raft-wal (v0.4.2)
// still serves entries below its first index until their 64 MiB segment is
// deleted, and before the leader treated those as gone it sent them instead
// of a snapshot.
func TestFollowerCatchesUpAfterDowntime(t *testing.T) {
	for _, kind := range logStores {
		t.Run(kind, func(t *testing.T) { followerCatchesUpAfterDowntime(t, kind) })
	}
}

func followerCatchesUpAfterDowntime(t *testing.T, kind string) {
	c := replicatest.Start(t, 3, snapshotOften, withLogStore(kind))
	l := c.WaitLeader(10 * time.Second)
	early := writeMany(t, c, "early/", 10, 2)
	c.WaitApplied(timeout(t, 10*time.Second), maxRev(early))
	f := (l + 1) % 3
	downAt := c.Node(f).AppliedIndex()
	c.Kill(f)

	acks := writeMany(t, c, "while-down/", 400, 8)
	// Wait until the leader has truncated its log past what the follower
	// has, so the follower can only catch up with InstallSnapshot.
	need := downAt + 16 + 2
	waitFor(t, 20*time.Second, "leader snapshot past the follower", func() error {
		if got := latestSnapshotIndex(t, c.Config(l).DataDir); got < need {
			return fmt.Errorf("leader snapshot at %d, want >= %d", got, need)
		}
		return nil
	})
	leaderSnap := latestSnapshotIndex(t, c.Config(l).DataDir)

	c.Restart(f)
	checkAcks(t, c.Addr(f), early, eventual)
	checkAcks(t, c.Addr(f), acks, eventual)
	if got := latestSnapshotIndex(t, c.Config(f).DataDir); got < leaderSnap {
		t.Fatalf("follower's newest snapshot is at %d, want >= the leader's %d (installed)", got, leaderSnap)
	}
	// And it keeps up with new writes.
	rev := put(t, kvClient(c.Addr(l)), "after", "restart")
	resp, err := kvClient(c.Addr(f)).Get(timeout(t, 10*time.Second), connect.NewRequest(&concordv1.GetRequest{Key: "after", Consistency: eventual, MinRevision: rev}))
	if err != nil || string(resp.Msg.GetKv().GetValue()) != "restart" {
		t.Fatalf("write after catch-up: %v %v", resp, err)
	}
}

func TestGroupCommitConcurrentWriters(t *testing.T) {
	c := replicatest.Start(t, 3)
	c.WaitLeader(10 * time.Second)
	const writers = 64
	start := make(chan struct{})
	type ack struct {
		key string
		rev uint64
		err error
	}
	acks := make(chan ack, writers)
	for w := range writers {
		go func() {
			key := fmt.Sprintf("writer/%02d", w)
			<-start
			resp, err := kvClient(c.Addr(w%3)).Put(timeout(t, 20*time.Second), connect.NewRequest(&concordv1.PutRequest{Key: key, Value: []byte(key)}))
			var rev uint64
			if err == nil {
				rev = resp.Msg.GetHeader().GetRevision()
			}
			acks <- ack{key, rev, err}
		}()
	}
	close(start)
	revs := map[uint64]string{}
	written := map[string]write{}
	for range writers {
		a := <-acks
		if a.err != nil {
			t.Fatalf("put %s: %v", a.key, a.err)
		}
		if other, dup := revs[a.rev]; dup {
			t.Fatalf("%s and %s were both given revision %d", a.key, other, a.rev)
		}
		revs[a.rev] = a.key
		written[a.key] = write{a.key, a.rev}
	}
	if len(revs) != writers {
		t.Fatalf("%d distinct revisions for %d writes", len(revs), writers)
	}
	for i := range 3 {
		checkAcks(t, c.Addr(i), written, eventual)
	}
	checkAcks(t, c.Addr(0), written, strong)
}

func TestBatchAndValueLimits(t *testing.T) {
	c := replicatest.Start(t, 3)
	l := c.WaitLeader(10 * time.Second)
	kv := kvClient(c.Addr((l + 1) % 3))
	items := func(prefix string, n int) []*concordv1.PutItem {
		out := make([]*concordv1.PutItem, n)
		for i := range out {
			out[i] = &concordv1.PutItem{Key: fmt.Sprintf("%s%03d", prefix, i), Value: []byte(fmt.Sprint(i))}
		}
		return out
	}
	listPrefix := func(t *testing.T, prefix string) int {
		t.Helper()
		resp, err := kv.List(timeout(t, 10*time.Second), connect.NewRequest(&concordv1.ListRequest{Prefix: prefix, Limit: 1000, KeysOnly: true, Consistency: strong}))
		if err != nil {
			t.Fatal(err)
		}
		return len(resp.Msg.GetKvs())
	}

	t.Run("500 items in one revision", func(t *testing.T) {
		resp, err := kv.BatchPut(timeout(t, 20*time.Second), connect.NewRequest(&concordv1.BatchPutRequest{Items: items("ok/", 500)}))
		if err != nil {
			t.Fatal(err)
		}
		rev := resp.Msg.GetHeader().GetRevision()
		acks := map[string]write{}
		for i := range 500 {
			acks[fmt.Sprintf("ok/%03d", i)] = write{fmt.Sprint(i), rev}
		}
		for i := range 3 {
			checkAcks(t, c.Addr(i), acks, eventual)
		}
	})
	t.Run("501 items rejected, nothing written", func(t *testing.T) {
		_, err := kv.BatchPut(timeout(t, 20*time.Second), connect.NewRequest(&concordv1.BatchPutRequest{Items: items("over/", 501)}))
		wantCode(t, err, connect.CodeInvalidArgument)
		if n := listPrefix(t, "over/"); n != 0 {
			t.Fatalf("%d keys of the rejected batch were written", n)
		}
	})
	t.Run("one oversized item rejects the batch", func(t *testing.T) {
		its := items("big-item/", 3)
		its[1].Value = bytes.Repeat([]byte("a"), replica.MaxValueLimit+1)
		_, err := kv.BatchPut(timeout(t, 20*time.Second), connect.NewRequest(&concordv1.BatchPutRequest{Items: its}))
		wantCode(t, err, connect.CodeInvalidArgument)
		if n := listPrefix(t, "big-item/"); n != 0 {
			t.Fatalf("%d keys of the rejected batch were written", n)
		}
	})
	t.Run("value over 1 MiB rejected", func(t *testing.T) {
		_, err := kv.Put(timeout(t, 20*time.Second), connect.NewRequest(&concordv1.PutRequest{Key: "huge", Value: bytes.Repeat([]byte("a"), replica.MaxValueLimit+1)}))
		wantCode(t, err, connect.CodeInvalidArgument)
		_, err = get(t, kv, "huge", strong)
		wantCode(t, err, connect.CodeNotFound)
	})
	t.Run("value of exactly 1 MiB accepted", func(t *testing.T) {
		value := bytes.Repeat([]byte("0123456789abcdef"), replica.MaxValueLimit/16)
		_, err := kv.Put(timeout(t, 20*time.Second), connect.NewRequest(&concordv1.PutRequest{
			Key: "max", Value: value, Compress: concordv1.CompressMode_COMPRESS_MODE_OFF,
		}))
		if err != nil {
			t.Fatal(err)
		}
		got, err := get(t, kvClient(c.Addr(l)), "max", strong)
		if err != nil || !bytes.Equal(got.GetKv().GetValue(), value) {
			t.Fatalf("1 MiB value read back: %v", err)
		}
	})
}

func TestCompressionIsTransparent(t *testing.T) {
	algos := []concordv1.CompressionAlgorithm{
		concordv1.CompressionAlgorithm_COMPRESSION_ALGORITHM_ZLIB,
		concordv1.CompressionAlgorithm_COMPRESSION_ALGORITHM_GZIP,
		concordv1.CompressionAlgorithm_COMPRESSION_ALGORITHM_ZSTD,
	}
	// Each replica compresses what enters through it with another
	// algorithm; every replica must read every value.
	c := replicatest.Start(t, 3, replicatest.WithConfig(func(i int, cfg *replica.Config) {
		cfg.CompressionAlgorithm = []string{"zlib", "gzip", "zstd"}[i]
		cfg.CompressionLevel = -1
	}))
	c.WaitLeader(10 * time.Second)
	var doc strings.Builder
	for i := 0; doc.Len() < 64<<10; i++ {
		fmt.Fprintf(&doc, `{"user":"user-%d","plan":"pro","flags":{"beta":true,"dark_mode":false}}`+"\n", i)
	}
	big := []byte(doc.String())

	type stored struct {
		key  string
		algo concordv1.CompressionAlgorithm
		mode concordv1.CompressMode
		want []byte
	}
	var keys []stored
	var last uint64
	for i := range 3 {
		for _, tc := range []stored{
			{key: fmt.Sprintf("big/%d", i), algo: algos[i], want: big},
			{key: fmt.Sprintf("raw/%d", i), algo: concordv1.CompressionAlgorithm_COMPRESSION_ALGORITHM_NONE, mode: concordv1.CompressMode_COMPRESS_MODE_OFF, want: big},
			{key: fmt.Sprintf("small/%d", i), algo: concordv1.CompressionAlgorithm_COMPRESSION_ALGORITHM_NONE, want: []byte(`{"tiny":true}`)},
			{key: fmt.Sprintf("forced/%d", i), algo: algos[i], mode: concordv1.CompressMode_COMPRESS_MODE_FORCE, want: bytes.Repeat([]byte("ab"), 100)},
		} {
			resp, err := kvClient(c.Addr(i)).Put(timeout(t, 10*time.Second), connect.NewRequest(&concordv1.PutRequest{
				Key: tc.key, Value: tc.want, Compress: tc.mode, ContentType: "application/json",
			}))
			if err != nil {
				t.Fatalf("put %s: %v", tc.key, err)
			}
			last = max(last, resp.Msg.GetHeader().GetRevision())
			keys = append(keys, tc)
		}
	}
	for i := range 3 {
		kv := kvClient(c.Addr(i))
		for _, tc := range keys {
			resp, err := kv.Get(timeout(t, 10*time.Second), connect.NewRequest(&concordv1.GetRequest{Key: tc.key, Consistency: eventual, MinRevision: last}))
			if err != nil {
				t.Fatalf("replica %d get %s: %v", i, tc.key, err)
			}
			got := resp.Msg.GetKv()
			if !bytes.Equal(got.GetValue(), tc.want) || got.GetContentType() != "application/json" || got.GetCompression() != tc.algo {
				t.Fatalf("replica %d %s: %d bytes, content type %q, algorithm %v; want %d bytes stored with %v",
					i, tc.key, len(got.GetValue()), got.GetContentType(), got.GetCompression(), len(tc.want), tc.algo)
			}
			st, err := kv.CompressionStats(timeout(t, 10*time.Second), connect.NewRequest(&concordv1.CompressionStatsRequest{
				Source: &concordv1.CompressionStatsRequest_Key{Key: tc.key},
			}))
			if err != nil {
				t.Fatalf("replica %d stats %s: %v", i, tc.key, err)
			}
			m := st.Msg
			if m.GetAlgorithm() != tc.algo || m.GetOriginalSize() != uint64(len(tc.want)) {
				t.Fatalf("replica %d stats %s: %v", i, tc.key, m)
			}
			if tc.key[:4] == "big/" && (m.GetCompressedSize() >= m.GetOriginalSize() || m.GetSavingsPercent() <= 50) {
				t.Fatalf("replica %d stats %s: compressed %d of %d (%.2f%% saved)", i, tc.key, m.GetCompressedSize(), m.GetOriginalSize(), m.GetSavingsPercent())
			}
		}
		list, err := kv.List(timeout(t, 10*time.Second), connect.NewRequest(&concordv1.ListRequest{Prefix: "big/", Consistency: strong}))
		if err != nil || len(list.Msg.GetKvs()) != 3 {
			t.Fatalf("replica %d list: %v %v", i, list, err)
		}
		for _, got := range list.Msg.GetKvs() {
			if !bytes.Equal(got.GetValue(), big) {
				t.Fatalf("replica %d lists %s with a value that differs", i, got.GetKey())
			}
		}
	}
	st, err := kvClient(c.Addr(0)).CompressionStats(timeout(t, 10*time.Second), connect.NewRequest(&concordv1.CompressionStatsRequest{
		Source: &concordv1.CompressionStatsRequest_Value{Value: bytes.Repeat([]byte("x"), 10_000)},
	}))
	if err != nil {
		t.Fatal(err)
	}
	if m := st.Msg; m.GetOriginalSize() != 10_000 || m.GetSavingsPercent() <= 90 || m.GetSavingsBytes() != int64(m.GetOriginalSize()-m.GetCompressedSize()) {
		t.Fatalf("stats of 10,000 x: %v", m)
	}
}
