package chaos

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/gofrs/flock"
)

// Two clusters never share an address block, and a block is free again once
// its cluster is closed.
func TestClaimBlockExcludesOtherClusters(t *testing.T) {
	a, lockA, err := claimBlock()
	if err != nil {
		t.Fatal(err)
	}
	b, lockB, err := claimBlock()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = lockB.Unlock() }()
	if a == b {
		t.Fatalf("two clusters claimed block %d", a)
	}
	for _, block := range []int{a, b} {
		if block < 2 || block > 2*blocks || block%2 != 0 {
			t.Fatalf("block %d: want an even block in [2, %d]", block, 2*blocks)
		}
	}

	// What another test process would try for block a.
	other := flock.New(filepath.Join(os.TempDir(), "concord-chaos-blocks", fmt.Sprintf("%d.lock", a)))
	if ok, err := other.TryLock(); err != nil || ok {
		t.Fatalf("another process locked claimed block %d: ok=%v err=%v", a, ok, err)
	}
	if err := lockA.Unlock(); err != nil {
		t.Fatal(err)
	}
	ok, err := other.TryLock()
	if err != nil || !ok {
		t.Fatalf("block %d after its cluster closed: ok=%v err=%v", a, ok, err)
	}
	_ = other.Unlock()
}
