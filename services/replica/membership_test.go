package replica_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	concordv1 "github.com/concord-kv/concord/proto/gen/go/concord/v1"
	"github.com/concord-kv/concord/services/replica"
	"github.com/concord-kv/concord/services/replica/replicatest"
)

// loader writes fresh keys through the given replicas until stopped and
// remembers every acknowledged write. A write that fails is not retried
// (its key is never reused), so an unacknowledged write can only be absent
// or present, and only acknowledged ones are checked.
type loader struct {
	t    *testing.T
	stop chan struct{}
	wg   sync.WaitGroup

	mu     sync.Mutex
	addrs  []string
	acks   map[string]write
	failed int
}

func startLoad(t *testing.T, prefix string, writers int, addrs []string) *loader {
	t.Helper()
	l := &loader{t: t, stop: make(chan struct{}), addrs: addrs, acks: map[string]write{}}
	for w := range writers {
		l.wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				l.mu.Lock()
				addr := l.addrs[rand.IntN(len(l.addrs))]
				l.mu.Unlock()
				key := fmt.Sprintf("%s%d/%06d", prefix, w, i)
				value := "v-" + key
				resp, err := kvClient(addr).Put(timeout(t, 10*time.Second), connect.NewRequest(&concordv1.PutRequest{Key: key, Value: []byte(value)}))
				l.mu.Lock()
				if err == nil {
					l.acks[key] = write{value, resp.Msg.GetHeader().GetRevision()}
				} else {
					l.failed++
				}
				l.mu.Unlock()
				if err != nil {
					time.Sleep(20 * time.Millisecond) // the replica may be gone
				}
			}
		})
	}
	t.Cleanup(l.halt)
	return l
}

// setAddrs changes the replicas the writers use.
func (l *loader) setAddrs(addrs []string) {
	l.mu.Lock()
	l.addrs = addrs
	l.mu.Unlock()
}

func (l *loader) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acks)
}

// progress waits until n more writes have been acknowledged: the cluster
// accepts writes at this point.
func (l *loader) progress(n int) {
	l.t.Helper()
	want := l.count() + n
	waitFor(l.t, 60*time.Second, fmt.Sprintf("%d acknowledged writes", want), func() error {
		if got := l.count(); got < want {
			return fmt.Errorf("%d", got)
		}
		return nil
	})
}

func (l *loader) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// finish stops the writers and returns the acknowledged writes.
func (l *loader) finish() map[string]write {
	l.halt()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.t.Logf("load: %d writes acknowledged, %d failed", len(l.acks), l.failed)
	return l.acks
}

func members(t *testing.T, addr string) []*concordv1.Member {
	t.Helper()
	resp, err := clusterClient(addr).Members(timeout(t, 10*time.Second), connect.NewRequest(&concordv1.MembersRequest{}))
	if err != nil {
		t.Fatalf("members from %s: %v", addr, err)
	}
	return resp.Msg.GetMembers()
}

// memberSet renders members as "id:voter" / "id:nonvoter", sorted.
func memberSet(ms []*concordv1.Member) string {
	out := make([]string, len(ms))
	for i, m := range ms {
		s := "voter"
		if m.GetSuffrage() == concordv1.Suffrage_SUFFRAGE_NONVOTER {
			s = "nonvoter"
		}
		out[i] = m.GetId() + ":" + s
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

// voters is the member set of the given replicas, all voters.
func voters(c *replicatest.Cluster, idx ...int) string {
	ms := make([]*concordv1.Member, len(idx))
	for i, x := range idx {
		ms[i] = &concordv1.Member{Id: c.ID(x), Suffrage: concordv1.Suffrage_SUFFRAGE_VOTER}
	}
	return memberSet(ms)
}

// waitJoined waits until replica i's join has finished and the leader lists
// the member set want.
func waitJoined(t *testing.T, c *replicatest.Cluster, i int, want string) {
	t.Helper()
	select {
	case <-c.Node(i).Joined():
	case <-time.After(2 * time.Minute):
		t.Fatalf("replica %d did not join", i)
	}
	l := c.WaitLeader(20 * time.Second)
	if got := memberSet(members(t, c.Addr(l))); got != want {
		t.Fatalf("members after %s joined: %s, want %s", c.ID(i), got, want)
	}
}

func addrsOf(c *replicatest.Cluster, idx ...int) []string {
	out := make([]string, len(idx))
	for i, x := range idx {
		out[i] = c.Addr(x)
	}
	return out
}

func removeMember(t *testing.T, addr, id string) error {
	t.Helper()
	_, err := clusterClient(addr).RemoveMember(timeout(t, 30*time.Second), connect.NewRequest(&concordv1.RemoveMemberRequest{Id: id}))
	return err
}

func TestGrowAndShrinkUnderWriteLoad(t *testing.T) {
	c := replicatest.Start(t, 1)
	c.WaitLeader(10 * time.Second)
	load := startLoad(t, "load/", 3, addrsOf(c, 0))
	load.progress(20)

	// 1 -> 3 -> 5, one replica at a time, each joining by itself.
	for n := 1; n < 5; n++ {
		i := c.Add()
		idx := make([]int, n+1)
		for j := range idx {
			idx[j] = j
		}
		waitJoined(t, c, i, voters(c, idx...))
		load.setAddrs(addrsOf(c, idx...))
		load.progress(20)
	}

	// 5 -> 3: remove the leader (through a follower, which forwards it) and
	// one follower (through the new leader), stopping each once removed.
	l := c.WaitLeader(20 * time.Second)
	f := (l + 1) % 5
	if err := removeMember(t, c.Addr(f), c.ID(l)); err != nil {
		t.Fatalf("remove the leader %s: %v", c.ID(l), err)
	}
	c.Exclude(l)
	var rest []int
	for i := range 5 {
		if i != l {
			rest = append(rest, i)
		}
	}
	load.setAddrs(addrsOf(c, rest...))
	c.Kill(l)
	l2 := c.WaitLeader(20 * time.Second)
	if l2 == l {
		t.Fatal("the removed leader still leads")
	}
	gone := rest[0]
	if gone == l2 {
		gone = rest[1]
	}
	if err := removeMember(t, c.Addr(l2), c.ID(gone)); err != nil {
		t.Fatalf("remove %s: %v", c.ID(gone), err)
	}
	rest = slices.DeleteFunc(rest, func(i int) bool { return i == gone })
	load.setAddrs(addrsOf(c, rest...))
	c.Kill(gone)
	load.progress(20)

	acks := load.finish()
	l = c.WaitLeader(20 * time.Second)
	if got := memberSet(members(t, c.Addr(l))); got != voters(c, rest...) {
		t.Fatalf("members after shrinking: %s, want %s", got, voters(c, rest...))
	}
	// The removed replicas' API addresses are forgotten too.
	waitFor(t, 10*time.Second, "API addresses of removed members pruned", func() error {
		st, err := clusterClient(c.Addr(l)).Status(timeout(t, 5*time.Second), connect.NewRequest(&concordv1.StatusRequest{}))
		if err != nil {
			return err
		}
		for _, m := range st.Msg.GetMembers() {
			if m.GetApiAddress() == "" {
				return fmt.Errorf("%s has no API address", m.GetId())
			}
		}
		return nil
	})
	for _, i := range rest {
		checkAcks(t, c.Addr(i), acks, eventual)
	}
	checkAcks(t, c.Addr(rest[0]), acks, strong)
}

func TestReplaceFailedMemberWithEmptyDataDir(t *testing.T) {
	c := replicatest.Start(t, 3, snapshotOften)
	l := c.WaitLeader(10 * time.Second)
	before := writeMany(t, c, "before/", 300, 8)
	victim := (l + 1) % 3
	c.Kill(victim)

	// Dead-member removal: the leader has been failing to reach it. A guard
	// of an hour refuses; one of a second removes it once that has passed.
	leaderAPI := c.Addr(l)
	waitFor(t, 20*time.Second, "the leader sees the dead member unreachable for 1s", func() error {
		for _, m := range members(t, leaderAPI) {
			if m.GetId() == c.ID(victim) {
				if m.GetState() != concordv1.MemberState_MEMBER_STATE_UNKNOWN || m.GetUnreachableMs() < 1000 {
					return fmt.Errorf("state %v, unreachable for %d ms", m.GetState(), m.GetUnreachableMs())
				}
				return nil
			}
		}
		return fmt.Errorf("%s is not a member", c.ID(victim))
	})
	remove := func(seconds int64) error {
		_, err := clusterClient(leaderAPI).RemoveMember(timeout(t, 20*time.Second), connect.NewRequest(&concordv1.RemoveMemberRequest{
			Id: c.ID(victim), IfUnreachableForSeconds: seconds,
		}))
		return err
	}
	wantCode(t, remove(3600), connect.CodeFailedPrecondition)
	if err := remove(1); err != nil {
		t.Fatalf("remove the dead member: %v", err)
	}
	survivors := []int{l, (l + 2) % 3}
	if got := memberSet(members(t, leaderAPI)); got != voters(c, survivors...) {
		t.Fatalf("members after removal: %s", got)
	}
	during := writeMany(t, c, "during/", 100, 4)

	// A new machine takes its place: same id and addresses, empty data dir.
	c.Replace(victim)
	waitJoined(t, c, victim, voters(c, 0, 1, 2))
	after := writeMany(t, c, "after/", 50, 4)
	for _, acks := range []map[string]write{before, during, after} {
		checkAcks(t, c.Addr(victim), acks, eventual)
		checkAcks(t, c.Addr(victim), acks, strong)
	}
}

func TestRemovedMemberCannotDisrupt(t *testing.T) {
	c := replicatest.Start(t, 3)
	l := c.WaitLeader(10 * time.Second)
	victim := (l + 1) % 3
	c.Kill(victim)
	if err := removeMember(t, c.Addr(l), c.ID(victim)); err != nil {
		t.Fatal(err)
	}
	acks := writeMany(t, c, "before/", 50, 4)
	status := func(addr string) *concordv1.StatusResponse {
		t.Helper()
		st, err := clusterClient(addr).Status(timeout(t, 5*time.Second), connect.NewRequest(&concordv1.StatusRequest{}))
		if err != nil {
			t.Fatalf("status of %s: %v", addr, err)
		}
		return st.Msg
	}
	st := status(c.Addr(l))
	leaderID, term := st.GetLeaderId(), st.GetTerm()

	// It comes back with its old data: it still believes it is a voter of
	// the old configuration, hears from no leader and campaigns.
	c.Restart(victim)
	c.Exclude(victim)
	waitFor(t, 30*time.Second, "the removed replica campaigns", func() error {
		if s := status(c.Addr(victim)).GetState(); s != "candidate" {
			return fmt.Errorf("state %s", s)
		}
		return nil
	})
	// Writes keep succeeding for many election timeouts of its campaign.
	survivors := []int{l, (l + 2) % 3}
	more := map[string]write{}
	for round, start := 0, time.Now(); time.Since(start) < 5*time.Second; round++ {
		maps.Copy(more, writeMany(t, c, fmt.Sprintf("during-%d/", round), 10, 2))
	}
	for _, i := range survivors {
		st := status(c.Addr(i))
		if st.GetLeaderId() != leaderID || st.GetTerm() != term {
			t.Fatalf("replica %s sees leader %s in term %d, want %s in term %d", c.ID(i), st.GetLeaderId(), st.GetTerm(), leaderID, term)
		}
		if got := memberSet(st.GetMembers()); got != voters(c, survivors...) {
			t.Fatalf("replica %s lists members %s: the removed replica came back", c.ID(i), got)
		}
		for _, m := range st.GetMembers() {
			if m.GetId() == c.ID(victim) {
				t.Fatalf("removed member %s listed by %s", c.ID(victim), c.ID(i))
			}
		}
	}
	if st := status(c.Addr(victim)); st.GetLeaderId() != "" || st.GetState() == "leader" {
		t.Fatalf("the removed replica is %s with leader %q", st.GetState(), st.GetLeaderId())
	}
	for _, i := range survivors {
		checkAcks(t, c.Addr(i), acks, strong)
		checkAcks(t, c.Addr(i), more, eventual)
	}
}

func TestNonvoterReceivesDataButDoesNotCountForQuorum(t *testing.T) {
	c := replicatest.Start(t, 2)
	l := c.WaitLeader(10 * time.Second)
	nv := c.Add(replicatest.WithConfig(func(_ int, cfg *replica.Config) { cfg.Nonvoter = true }))
	waitJoined(t, c, nv, voters(c, 0, 1)+" "+c.ID(nv)+":nonvoter")
	acks := writeMany(t, c, "k/", 100, 4) // through every replica, the non-voter too
	checkAcks(t, c.Addr(nv), acks, eventual)

	// One of the two voters down: no quorum, although two of three replicas
	// run. Writes fail, through the leader and through the non-voter.
	other := 1 - l
	c.Kill(other)
	for _, i := range []int{l, nv} {
		_, err := kvClient(c.Addr(i)).Put(timeout(t, 3*time.Second), connect.NewRequest(&concordv1.PutRequest{Key: "no-quorum", Value: []byte("x")}))
		if code := codeOf(err); code != connect.CodeUnavailable && code != connect.CodeDeadlineExceeded {
			t.Fatalf("write through %s without quorum: %v, want Unavailable or DeadlineExceeded", c.ID(i), err)
		}
	}
	waitFor(t, 20*time.Second, "the leader steps down", func() error {
		if c.Node(l).IsLeader() || c.Node(nv).IsLeader() {
			return fmt.Errorf("a leader without quorum")
		}
		return nil
	})
	// The non-voter still serves what it has.
	checkAcks(t, c.Addr(nv), acks, eventual)

	// The voter comes back: writes resume and reach the non-voter.
	c.Restart(other)
	c.WaitLeader(20 * time.Second)
	more := writeMany(t, c, "after/", 20, 2)
	checkAcks(t, c.Addr(nv), more, eventual)
}

func TestTransferLeadership(t *testing.T) {
	c := replicatest.Start(t, 3)
	l := c.WaitLeader(10 * time.Second)
	target, via := (l+1)%3, (l+2)%3
	transfer := func(addr, id string) (*concordv1.TransferLeadershipResponse, error) {
		resp, err := clusterClient(addr).TransferLeadership(timeout(t, 30*time.Second), connect.NewRequest(&concordv1.TransferLeadershipRequest{Id: id}))
		if err != nil {
			return nil, err
		}
		return resp.Msg, nil
	}
	// To a named replica, asked through a follower that forwards it.
	resp, err := transfer(c.Addr(via), c.ID(target))
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetPreviousLeaderId() != c.ID(l) {
		t.Fatalf("previous leader %q, want %s", resp.GetPreviousLeaderId(), c.ID(l))
	}
	if got := c.WaitLeader(20 * time.Second); got != target {
		t.Fatalf("leader %s after the transfer to %s", c.ID(got), c.ID(target))
	}
	put(t, kvClient(c.Addr(l)), "after-transfer", "1")

	// Without a name: any other voter.
	if _, err := transfer(c.Addr(target), ""); err != nil {
		t.Fatal(err)
	}
	if got := c.WaitLeader(20 * time.Second); got == target {
		t.Fatalf("%s still leads after handing leadership over", c.ID(target))
	}

	t.Run("to the leader itself changes nothing", func(t *testing.T) {
		l := c.WaitLeader(10 * time.Second)
		resp, err := transfer(c.Addr(l), c.ID(l))
		if err != nil || resp.GetLeaderId() != c.ID(l) {
			t.Fatalf("%v %v", resp, err)
		}
	})
	t.Run("to a stranger", func(t *testing.T) {
		_, err := transfer(c.Addr(0), "nobody")
		wantCode(t, err, connect.CodeNotFound)
	})
}

func TestMembershipChangeErrors(t *testing.T) {
	c := replicatest.Start(t, 3)
	l := c.WaitLeader(10 * time.Second)
	f := (l + 1) % 3
	add := func(req *concordv1.AddMemberRequest) (*concordv1.AddMemberResponse, error) {
		resp, err := clusterClient(c.Addr(f)).AddMember(timeout(t, 20*time.Second), connect.NewRequest(req))
		if err != nil {
			return nil, err
		}
		return resp.Msg, nil
	}
	for _, tc := range []struct {
		name string
		req  *concordv1.AddMemberRequest
		want connect.Code
	}{
		{"no id", &concordv1.AddMemberRequest{RaftAddress: "127.0.0.1:1"}, connect.CodeInvalidArgument},
		{"bad raft address", &concordv1.AddMemberRequest{Id: "x", RaftAddress: "nowhere"}, connect.CodeInvalidArgument},
		{"bad api address", &concordv1.AddMemberRequest{Id: "x", RaftAddress: "127.0.0.1:1", ApiAddress: "::"}, connect.CodeInvalidArgument},
		{"another member's raft address", &concordv1.AddMemberRequest{Id: "x", RaftAddress: c.RaftAddr(l)}, connect.CodeFailedPrecondition},
		{"a member under another address", &concordv1.AddMemberRequest{Id: c.ID(l), RaftAddress: "127.0.0.1:1"}, connect.CodeFailedPrecondition},
		{"a voter as a non-voter", &concordv1.AddMemberRequest{Id: c.ID(l), RaftAddress: c.RaftAddr(l), Nonvoter: true}, connect.CodeFailedPrecondition},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := add(tc.req)
			wantCode(t, err, tc.want)
		})
	}
	t.Run("a member again changes nothing", func(t *testing.T) {
		resp, err := add(&concordv1.AddMemberRequest{Id: c.ID(l), RaftAddress: c.RaftAddr(l)})
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetHeader().GetRevision() != 0 || resp.GetMember().GetId() != c.ID(l) || resp.GetMember().GetSuffrage() != concordv1.Suffrage_SUFFRAGE_VOTER {
			t.Fatalf("got %v", resp)
		}
	})
	t.Run("remove a stranger", func(t *testing.T) {
		wantCode(t, removeMember(t, c.Addr(f), "nobody"), connect.CodeNotFound)
	})
	t.Run("remove a reachable member if unreachable", func(t *testing.T) {
		_, err := clusterClient(c.Addr(f)).RemoveMember(timeout(t, 10*time.Second), connect.NewRequest(&concordv1.RemoveMemberRequest{Id: c.ID(f), IfUnreachableForSeconds: 1}))
		wantCode(t, err, connect.CodeFailedPrecondition)
	})
	t.Run("remove the only voter", func(t *testing.T) {
		one := replicatest.Start(t, 1)
		one.WaitLeader(10 * time.Second)
		wantCode(t, removeMember(t, one.Addr(0), one.ID(0)), connect.CodeFailedPrecondition)
	})
	if got := memberSet(members(t, c.Addr(l))); got != voters(c, 0, 1, 2) {
		t.Fatalf("members changed: %s", got)
	}
}

func TestMembersReportStateAndContact(t *testing.T) {
	c := replicatest.Start(t, 3)
	l := c.WaitLeader(10 * time.Second)
	f, down := (l+1)%3, (l+2)%3
	byID := func(ms []*concordv1.Member) map[string]*concordv1.Member {
		out := map[string]*concordv1.Member{}
		for _, m := range ms {
			out[m.GetId()] = m
		}
		return out
	}
	type want struct {
		state   concordv1.MemberState
		contact bool // last contact known
	}
	check := func(addr string, wants map[string]want) error {
		ms := byID(members(t, addr))
		for id, w := range wants {
			m := ms[id]
			if m.GetState() != w.state || (m.LastContactMs != nil) != w.contact {
				return fmt.Errorf("%s says %s is %v with last contact %v, want %v (known: %t)", addr, id, m.GetState(), m.LastContactMs, w.state, w.contact)
			}
		}
		return nil
	}
	leaderView := map[string]want{
		c.ID(l):    {concordv1.MemberState_MEMBER_STATE_LEADER, true},
		c.ID(f):    {concordv1.MemberState_MEMBER_STATE_FOLLOWER, true},
		c.ID(down): {concordv1.MemberState_MEMBER_STATE_FOLLOWER, true},
	}
	waitFor(t, 10*time.Second, "the leader's view", func() error { return check(c.Addr(l), leaderView) })
	if err := check(c.Addr(f), map[string]want{
		c.ID(l):    {concordv1.MemberState_MEMBER_STATE_LEADER, true},
		c.ID(f):    {concordv1.MemberState_MEMBER_STATE_FOLLOWER, true},
		c.ID(down): {concordv1.MemberState_MEMBER_STATE_UNKNOWN, false},
	}); err != nil {
		t.Fatal(err)
	}

	c.Kill(down)
	leaderView[c.ID(down)] = want{concordv1.MemberState_MEMBER_STATE_UNKNOWN, true}
	waitFor(t, 10*time.Second, "the leader sees the dead member", func() error {
		if err := check(c.Addr(l), leaderView); err != nil {
			return err
		}
		if m := byID(members(t, c.Addr(l)))[c.ID(down)]; m.GetUnreachableMs() <= 0 {
			return fmt.Errorf("unreachable for %d ms", m.GetUnreachableMs())
		}
		return nil
	})
	// Status carries the same member views.
	st, err := clusterClient(c.Addr(l)).Status(timeout(t, 5*time.Second), connect.NewRequest(&concordv1.StatusRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if m := byID(st.Msg.GetMembers())[c.ID(down)]; m.GetState() != concordv1.MemberState_MEMBER_STATE_UNKNOWN {
		t.Fatalf("status lists the dead member as %v", m.GetState())
	}

	c.Restart(down)
	leaderView[c.ID(down)] = want{concordv1.MemberState_MEMBER_STATE_FOLLOWER, true}
	waitFor(t, 20*time.Second, "the member is back", func() error { return check(c.Addr(l), leaderView) })
}

func TestBootstrapExpectAndJoinValidation(t *testing.T) {
	base := replica.DefaultConfig()
	base.NodeID, base.DataDir = "a", t.TempDir()
	three := []replica.Peer{{ID: "a", RaftAddress: "h:1"}, {ID: "b", RaftAddress: "h:2"}, {ID: "c", RaftAddress: "h:3"}}
	for _, tc := range []struct {
		name string
		edit func(*replica.Config)
		want string // "" for valid
	}{
		{"expect matches", func(c *replica.Config) { c.Bootstrap, c.Peers, c.BootstrapExpect = true, three, 3 }, ""},
		{"expect more", func(c *replica.Config) { c.Bootstrap, c.Peers, c.BootstrapExpect = true, three[:2], 3 }, "bootstrap expects 3 members but the peer list has 2 [a, b]"},
		{"expect fewer", func(c *replica.Config) { c.Bootstrap, c.Peers, c.BootstrapExpect = true, three, 1 }, "expects 1"},
		{"expect with no peers", func(c *replica.Config) { c.Bootstrap, c.BootstrapExpect = true, 3 }, "has 0"},
		{"negative expect", func(c *replica.Config) { c.BootstrapExpect = -1 }, "negative"},
		{"peers without this node", func(c *replica.Config) { c.Bootstrap, c.Peers = true, three[1:] }, "does not include this node (a)"},
		{"join and peers", func(c *replica.Config) { c.Join, c.Peers = []string{"http://h:1"}, three }, "exclude each other"},
		{"join not a URL", func(c *replica.Config) { c.Join = []string{"h:1"} }, "not an http(s) URL"},
		{"join", func(c *replica.Config) {
			c.Bootstrap, c.Join, c.Nonvoter = true, []string{"http://h:1", "https://h:2"}, true
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.edit(&cfg)
			err := cfg.Validate()
			if tc.want == "" && err != nil {
				t.Fatalf("rejected: %v", err)
			}
			if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
