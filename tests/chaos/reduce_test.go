package chaos

import (
	"os"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

func TestReduce(t *testing.T) {
	ops := []porcupine.Operation{
		op(0, 0, -1, put("a", "seen"), unknown),
		op(1, 0, -1, put("a", "unseen"), unknown),
		op(2, 0, -1, del("a"), unknown),
		op(3, 5, 6, get("a"), read("seen", 4)),
		op(3, 7, 8, get("a"), read("seen", 4)),
	}
	resolved, dropped := Reduce(ops)
	if len(resolved) != 5 || len(dropped) != 4 {
		t.Fatalf("got %d resolved and %d dropped operations, want 5 and 4", len(resolved), len(dropped))
	}
	got := resolved[0]
	if out := got.Output.(Output); out.Status != StatusOK || out.Rev != 4 || !out.Resolved || got.Return != 6 {
		t.Errorf("resolved write = %+v returning at %d, want ok@4 resolved, returning at 6 (the first read)", out, got.Return)
	}
	if out := resolved[1].Output.(Output); out.Status != StatusUnknown {
		t.Errorf("unseen write = %+v, want it left unknown", out)
	}
	for _, op := range dropped {
		if op.Input.(Input).Value == "unseen" {
			t.Error("the dropped history still has the write nobody saw")
		}
	}
}

// TestCheckManyUnknownWrites checks a history recorded while the leader was
// killed every second: 25 of its 39 operations are writes of unknown
// outcome. Without Reduce, porcupine did not finish it in 2 minutes.
func TestCheckManyUnknownWrites(t *testing.T) {
	f, err := os.Open("testdata/many-unknown-writes.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	ops, err := ReadHistory(f)
	if err != nil {
		t.Fatal(err)
	}
	if got := CheckKey(ops, time.Minute); got != porcupine.Ok {
		t.Errorf("CheckKey = %s, want Ok", got)
	}
}
