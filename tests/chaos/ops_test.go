package chaos

import (
	"strings"
	"testing"

	"github.com/anishathalye/porcupine"
)

func TestCheckBatches(t *testing.T) {
	batchPut := func(l *Ledger, acked uint64) int {
		id := l.newBatch(0, []string{"a", "b"}, []string{"x", "y"})
		if acked > 0 {
			l.ack(id, acked)
		}
		return id
	}
	tests := []struct {
		name  string
		acked uint64
		reads []porcupine.Operation
		bad   bool
	}{
		{"acknowledged, read at its revision", 7, []porcupine.Operation{
			op(1, 2, 3, get("a"), read("x", 7)), op(1, 2, 3, get("b"), read("y", 7)),
		}, false},
		{"unknown, both keys read at one revision", 0, []porcupine.Operation{
			op(1, 2, 3, get("a"), read("x", 9)), op(2, 4, 5, get("b"), read("y", 9)),
		}, false},
		{"unknown, keys read at two revisions", 0, []porcupine.Operation{
			op(1, 2, 3, get("a"), read("x", 9)), op(2, 4, 5, get("b"), read("y", 10)),
		}, true},
		{"acknowledged, read at another revision", 7, []porcupine.Operation{
			op(1, 2, 3, get("b"), read("y", 8)),
		}, true},
		{"other values do not count", 7, []porcupine.Operation{
			op(1, 2, 3, get("a"), read("z", 3)),
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLedger()
			batchPut(l, tt.acked)
			bad := l.CheckBatches(tt.reads)
			if (len(bad) > 0) != tt.bad {
				t.Errorf("CheckBatches = %q, want a violation: %t", bad, tt.bad)
			}
			if len(bad) > 0 && !strings.Contains(bad[0], "not applied at one revision") {
				t.Errorf("violation %q does not say what is wrong", bad[0])
			}
		})
	}
}

func TestLedgerInvoked(t *testing.T) {
	l := NewLedger()
	l.invoke("a", "x")
	l.newBatch(0, []string{"b"}, []string{"y"})
	for v, want := range map[string]string{"x": "a", "y": "b"} {
		if k, ok := l.invokedKey(v); !ok || k != want {
			t.Errorf("invokedKey(%q) = %q, %t; want %q", v, k, ok, want)
		}
	}
	if _, ok := l.invokedKey("ghost"); ok {
		t.Error("invokedKey of a value never invoked reports it")
	}
}
