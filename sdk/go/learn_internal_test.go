package concord

import (
	"net/http"
	"slices"
	"testing"

	concordv1 "github.com/concord-kv/concord/proto/gen/go/concord/v1"
)

// A Status answer from a replica that has not applied every member's API
// address yet must not shrink the endpoint list the client already knows;
// a member that leaves the configuration does drop out.
func TestLearnKeepsAddressesALaggingReplicaHasNotApplied(t *testing.T) {
	c := &Client{opts: defaultOptions(), http: http.DefaultClient, seeds: []string{"http://a"}}
	member := func(id, api string) *concordv1.Member { return &concordv1.Member{Id: id, ApiAddress: api} }
	status := func(applied uint64, leader string, ms ...*concordv1.Member) *concordv1.StatusResponse {
		return &concordv1.StatusResponse{AppliedIndex: applied, LeaderApiAddress: leader, Members: ms}
	}

	c.learn("http://a", status(10, "http://a", member("n1", "http://a"), member("n2", "http://b/"), member("n3", "http://c")))
	if got, want := c.Endpoints(), []string{"http://a", "http://b", "http://c"}; !slices.Equal(got, want) {
		t.Fatalf("endpoints %v, want %v", got, want)
	}
	// n2 answers before it has applied n3's (and its own) registration.
	c.learn("http://b", status(7, "http://a", member("n1", "http://a"), member("n2", ""), member("n3", "")))
	if got, want := c.Endpoints(), []string{"http://a", "http://b", "http://c"}; !slices.Equal(got, want) {
		t.Errorf("after a lagging answer: endpoints %v, want %v", got, want)
	}
	if !c.incomplete.Load() {
		t.Error("a lagging replica answered, yet the client does not look again soon")
	}
	if c.leader == nil || c.leader.url != "http://a" {
		t.Errorf("leader %v, want http://a", c.leader)
	}
	// n3 is removed; n4 joins and has not registered an address yet.
	c.learn("http://a", status(20, "http://a", member("n1", "http://a"), member("n2", "http://b"), member("n4", "")))
	if got, want := c.Endpoints(), []string{"http://a", "http://b"}; !slices.Equal(got, want) {
		t.Errorf("after n3 left: endpoints %v, want %v", got, want)
	}
	if !c.incomplete.Load() {
		t.Error("n4 has no address, yet the client does not look again soon")
	}
	// n2 comes back on a new address; a replica that has not applied that
	// yet still reports the old one, which must not win.
	c.learn("http://a", status(25, "http://a", member("n1", "http://a"), member("n2", "http://b2")))
	c.learn("http://b2", status(22, "http://a", member("n1", "http://a"), member("n2", "http://b")))
	if got, want := c.Endpoints(), []string{"http://a", "http://b2"}; !slices.Equal(got, want) {
		t.Errorf("after a lagging answer with n2's old address: endpoints %v, want %v", got, want)
	}
	// n2 is removed and re-added under the same id; a replica as far along
	// as the one that gave its old address has none for it yet: the old
	// address is not used.
	c.learn("http://a", status(30, "http://a", member("n1", "http://a"), member("n2", "")))
	if got, want := c.Endpoints(), []string{"http://a"}; !slices.Equal(got, want) {
		t.Errorf("after n2 was re-added without an address: endpoints %v, want %v", got, want)
	}
}
