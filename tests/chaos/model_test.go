package chaos

import (
	"math"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// op builds an operation of client 0 from call to ret (ret < 0: unknown
// outcome, open forever).
func op(client int, call, ret int64, in Input, out Output) porcupine.Operation {
	if ret < 0 {
		ret = math.MaxInt64
	}
	return porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret}
}

func get(k string) Input    { return Input{Op: OpGet, Key: k} }
func put(k, v string) Input { return Input{Op: OpPut, Key: k, Value: v} }
func cas(k, ev string, r uint64, v string) Input {
	return Input{Op: OpCAS, Key: k, ExpValue: ev, ExpRev: r, Value: v}
}
func absent(k, v string) Input { return Input{Op: OpPutAbsent, Key: k, Value: v} }
func del(k string) Input       { return Input{Op: OpDelete, Key: k} }
func touch(k string) Input     { return Input{Op: OpTouch, Key: k, TTL: 60} }
func casDel(k, ev string, r uint64) Input {
	return Input{Op: OpCASDelete, Key: k, ExpValue: ev, ExpRev: r}
}

var (
	okAt     = func(rev uint64) Output { return Output{Status: StatusOK, Rev: rev} }
	read     = func(v string, rev uint64) Output { return Output{Status: StatusOK, Value: v, Rev: rev} }
	notFound = Output{Status: StatusNotFound}
	conflict = Output{Status: StatusConflict}
	unknown  = Output{Status: StatusUnknown}
	deleted  = func(rev uint64, d bool) Output { return Output{Status: StatusOK, Rev: rev, Deleted: d} }
)

func TestRegisterModel(t *testing.T) {
	tests := []struct {
		name string
		ops  []porcupine.Operation
		want bool
	}{
		{"empty read", []porcupine.Operation{op(0, 0, 1, get("a"), notFound)}, true},
		{"read own write", []porcupine.Operation{
			op(0, 0, 1, put("a", "x"), okAt(5)),
			op(0, 2, 3, get("a"), read("x", 5)),
		}, true},
		{"stale read", []porcupine.Operation{
			op(0, 0, 1, put("a", "x"), okAt(5)),
			op(0, 2, 3, put("a", "y"), okAt(6)),
			op(1, 4, 5, get("a"), read("x", 5)),
		}, false},
		{"lost acknowledged write", []porcupine.Operation{
			op(0, 0, 1, put("a", "x"), okAt(5)),
			op(1, 2, 3, get("a"), notFound),
		}, false},
		{"concurrent read may see either", []porcupine.Operation{
			op(0, 0, 1, put("a", "x"), okAt(5)),
			op(0, 2, 6, put("a", "y"), okAt(6)),
			op(1, 3, 4, get("a"), read("x", 5)),
		}, true},
		{"revision must match the write", []porcupine.Operation{
			op(0, 0, 1, put("a", "x"), okAt(5)),
			op(1, 2, 3, get("a"), read("x", 7)),
		}, false},
		{"revisions grow with the order of writes", []porcupine.Operation{
			op(0, 0, 1, put("a", "x"), okAt(9)),
			op(0, 2, 3, put("a", "y"), okAt(6)),
		}, false},
		{"unknown write may apply later", []porcupine.Operation{
			op(0, 0, -1, put("a", "x"), unknown),
			op(1, 2, 3, get("a"), notFound),
			op(1, 4, 5, get("a"), read("x", 5)),
		}, true},
		{"unknown write may never apply", []porcupine.Operation{
			op(0, 0, -1, put("a", "x"), unknown),
			op(1, 2, 3, get("a"), notFound),
		}, true},
		{"value never written", []porcupine.Operation{
			op(1, 0, 1, get("a"), read("ghost", 3)),
		}, false},
		{"cas succeeds on the value read", []porcupine.Operation{
			op(0, 0, 1, put("a", "x"), okAt(5)),
			op(1, 2, 3, get("a"), read("x", 5)),
			op(1, 4, 5, cas("a", "x", 5, "y"), okAt(8)),
			op(1, 6, 7, get("a"), read("y", 8)),
		}, true},
		{"cas conflict although the value is current", []porcupine.Operation{
			op(0, 0, 1, put("a", "x"), okAt(5)),
			op(1, 2, 3, cas("a", "x", 5, "y"), conflict),
		}, false},
		{"cas succeeds on a value overwritten before", []porcupine.Operation{
			op(0, 0, 1, put("a", "x"), okAt(5)),
			op(0, 2, 3, put("a", "z"), okAt(6)),
			op(1, 4, 5, cas("a", "x", 5, "y"), okAt(8)),
		}, false},
		{"cas against an unknown write's value learns its revision", []porcupine.Operation{
			op(0, 0, -1, put("a", "x"), unknown),
			op(1, 2, 3, get("a"), read("x", 5)),
			op(1, 4, 5, cas("a", "x", 5, "y"), okAt(9)),
			op(1, 6, 7, get("a"), read("y", 9)),
		}, true},
		{"put if absent twice", []porcupine.Operation{
			op(0, 0, 1, absent("a", "x"), okAt(5)),
			op(1, 2, 3, absent("a", "y"), okAt(6)),
		}, false},
		{"put if absent conflict after delete", []porcupine.Operation{
			op(0, 0, 1, absent("a", "x"), okAt(5)),
			op(0, 2, 3, del("a"), deleted(6, true)),
			op(1, 4, 5, absent("a", "y"), conflict),
		}, false},
		{"delete reports whether the key existed", []porcupine.Operation{
			op(0, 0, 1, del("a"), deleted(4, true)),
		}, false},
		{"cas delete then read", []porcupine.Operation{
			op(0, 0, 1, put("a", "x"), okAt(5)),
			op(0, 2, 3, casDel("a", "x", 5), deleted(6, true)),
			op(1, 4, 5, get("a"), notFound),
		}, true},
		{"touch of an existing key", []porcupine.Operation{
			op(0, 0, 1, put("a", "x"), okAt(5)),
			op(1, 2, 3, touch("a"), okAt(6)),
			op(1, 4, 5, get("a"), read("x", 5)),
		}, true},
		{"touch of a missing key", []porcupine.Operation{
			op(0, 0, 1, touch("a"), notFound),
		}, true},
		{"touch finds a key that was never written", []porcupine.Operation{
			op(0, 0, 1, touch("a"), okAt(3)),
		}, false},
		{"touch misses an acknowledged key", []porcupine.Operation{
			op(0, 0, 1, put("a", "x"), okAt(5)),
			op(1, 2, 3, touch("a"), notFound),
		}, false},
		{"touch applied before the write it follows", []porcupine.Operation{
			op(0, 0, 1, put("a", "x"), okAt(5)),
			op(1, 2, 3, touch("a"), okAt(4)),
		}, false},
		{"unknown touch has no visible effect", []porcupine.Operation{
			op(0, 0, -1, touch("a"), unknown),
			op(1, 2, 3, get("a"), notFound),
		}, true},
		{"keys are independent", []porcupine.Operation{
			op(0, 0, 1, put("a", "x"), okAt(5)),
			op(1, 2, 3, get("b"), notFound),
			op(1, 4, 5, get("a"), read("x", 5)),
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := porcupine.CheckOperations(RegisterModel, tt.ops); got != tt.want {
				t.Errorf("linearizable = %t, want %t", got, tt.want)
			}
		})
	}
}

// TestRegisterModelExpiry: a key with a TTL may be seen alive until its
// window ends and gone once it has begun; once seen gone it stays gone.
func TestRegisterModelExpiry(t *testing.T) {
	const s = int64(time.Second)
	putTTL := func(k, v string, ttl int64) Input { return Input{Op: OpPut, Key: k, Value: v, TTL: ttl} }
	absentTTL := func(k, v string, ttl int64) Input { return Input{Op: OpPutAbsent, Key: k, Value: v, TTL: ttl} }
	touchTTL := func(k string, ttl int64) Input { return Input{Op: OpTouch, Key: k, TTL: ttl} }
	tests := []struct {
		name string
		ops  []porcupine.Operation
		want bool
	}{
		{"alive before the TTL", []porcupine.Operation{
			op(0, 0, s/10, putTTL("a", "x", 2), okAt(5)),
			op(1, s, s+s/10, get("a"), read("x", 5)),
		}, true},
		{"gone after the TTL", []porcupine.Operation{
			op(0, 0, s/10, putTTL("a", "x", 2), okAt(5)),
			op(1, 3*s, 3*s+s/10, get("a"), notFound),
		}, true},
		{"gone before the TTL", []porcupine.Operation{
			op(0, 0, s/10, putTTL("a", "x", 2), okAt(5)),
			op(1, s, s+s/10, get("a"), notFound),
		}, false},
		{"alive long after the TTL", []porcupine.Operation{
			op(0, 0, s/10, putTTL("a", "x", 2), okAt(5)),
			op(1, 8*s, 8*s+s/10, get("a"), read("x", 5)),
		}, false},
		{"a read across the expiry may see either", []porcupine.Operation{
			op(0, 0, s/10, putTTL("a", "x", 2), okAt(5)),
			op(1, 2*s-s/10, 2*s+s/5, get("a"), read("x", 5)),
			op(2, 2*s-s/10, 2*s+s/5, get("a"), notFound),
		}, true},
		{"seen gone, then alive again", []porcupine.Operation{
			op(0, 0, s/10, putTTL("a", "x", 2), okAt(5)),
			op(1, 2*s-s/10, 2*s+s/5, get("a"), notFound),
			op(1, 2*s+s/4, 2*s+s/3, get("a"), read("x", 5)),
		}, false},
		{"put if absent after the expiry", []porcupine.Operation{
			op(0, 0, s/10, putTTL("a", "x", 1), okAt(5)),
			op(1, 2*s, 2*s+s/10, absent("a", "y"), okAt(8)),
			op(1, 3*s, 3*s+s/10, get("a"), read("y", 8)),
		}, true},
		{"put if absent before the expiry", []porcupine.Operation{
			op(0, 0, s/10, absentTTL("a", "x", 2), okAt(5)),
			op(1, s, s+s/10, absent("a", "y"), okAt(8)),
		}, false},
		{"cas fails on an expired key", []porcupine.Operation{
			op(0, 0, s/10, putTTL("a", "x", 1), okAt(5)),
			op(1, 2*s, 2*s+s/10, cas("a", "x", 5, "y"), conflict),
		}, true},
		{"cas succeeds on an expired key", []porcupine.Operation{
			op(0, 0, s/10, putTTL("a", "x", 1), okAt(5)),
			op(1, 7*s, 7*s+s/10, cas("a", "x", 5, "y"), okAt(9)),
		}, false},
		{"delete of an expired key deletes nothing", []porcupine.Operation{
			op(0, 0, s/10, putTTL("a", "x", 1), okAt(5)),
			op(1, 2*s, 2*s+s/10, del("a"), deleted(7, false)),
		}, true},
		{"delete of an expired key reports it deleted", []porcupine.Operation{
			op(0, 0, s/10, putTTL("a", "x", 1), okAt(5)),
			op(1, 7*s, 7*s+s/10, del("a"), deleted(7, true)),
		}, false},
		{"a touch extends the TTL", []porcupine.Operation{
			op(0, 0, s/10, putTTL("a", "x", 1), okAt(5)),
			op(1, s/2, s/2+s/10, touchTTL("a", 5), okAt(6)),
			op(1, 7*s, 7*s+s/10, get("a"), read("x", 5)),
		}, true},
		{"a touch with no TTL removes the expiry", []porcupine.Operation{
			op(0, 0, s/10, putTTL("a", "x", 1), okAt(5)),
			op(1, s/2, s/2+s/10, touchTTL("a", 0), okAt(6)),
			op(1, 9*s, 9*s+s/10, get("a"), read("x", 5)),
		}, true},
		{"a touch that shortens the TTL", []porcupine.Operation{
			op(0, 0, s/10, putTTL("a", "x", 60), okAt(5)),
			op(1, s/2, s/2+s/10, touchTTL("a", 1), okAt(6)),
			op(1, 7*s, 7*s+s/10, get("a"), read("x", 5)),
		}, false},
		{"an unknown touch may have extended the TTL", []porcupine.Operation{
			op(0, 0, s/10, putTTL("a", "x", 1), okAt(5)),
			op(1, s/2, -1, touchTTL("a", 5), unknown),
			op(2, 7*s, 7*s+s/10, get("a"), read("x", 5)),
		}, true},
		{"an unknown touch may have been lost", []porcupine.Operation{
			op(0, 0, s/10, putTTL("a", "x", 1), okAt(5)),
			op(1, s/2, -1, touchTTL("a", 5), unknown),
			op(2, 3*s, 3*s+s/10, get("a"), notFound),
		}, true},
		{"an unknown put with a TTL may expire from its call on", []porcupine.Operation{
			op(0, 0, -1, putTTL("a", "x", 1), unknown),
			op(1, s/2, s/2+s/10, get("a"), read("x", 5)),
			op(1, 2*s, 2*s+s/10, get("a"), notFound),
		}, true},
		{"a write without a TTL never expires", []porcupine.Operation{
			op(0, 0, s/10, put("a", "x"), okAt(5)),
			op(1, 9*s, 9*s+s/10, get("a"), notFound),
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := porcupine.CheckOperations(RegisterModel, tt.ops); got != tt.want {
				t.Errorf("linearizable = %t, want %t", got, tt.want)
			}
		})
	}
}
