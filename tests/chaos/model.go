package chaos

import (
	"fmt"
	"hash/fnv"
	"math"
	"strconv"
	"time"

	"github.com/anishathalye/porcupine"
)

// OpKind is a register operation.
type OpKind int

// The register operations.
const (
	// OpGet is a strong Get.
	OpGet OpKind = iota
	// OpPut is an unconditional Put.
	OpPut
	// OpCAS is a Put with IfModRevision(ExpRev) of a value (ExpValue)
	// that an earlier read saw at that revision.
	OpCAS
	// OpPutAbsent is a Put with IfAbsent.
	OpPutAbsent
	// OpDelete is an unconditional Delete.
	OpDelete
	// OpCASDelete is a Delete with IfModRevision(ExpRev), ExpValue as for OpCAS.
	OpCASDelete
	// OpTouch is a Touch (TTL in Input.TTL, 0: none): it needs the key to
	// exist (else not-found) and changes neither value nor ModRevision.
	OpTouch
)

func (k OpKind) String() string {
	switch k {
	case OpGet:
		return "get"
	case OpPut:
		return "put"
	case OpCAS:
		return "cas"
	case OpPutAbsent:
		return "put-absent"
	case OpDelete:
		return "delete"
	case OpCASDelete:
		return "cas-delete"
	case OpTouch:
		return "touch"
	}
	return "op" + strconv.Itoa(int(k))
}

// Input is a register operation as called.
type Input struct {
	Op       OpKind `json:"op"`
	Key      string `json:"key"`
	Value    string `json:"value,omitempty"`
	ExpValue string `json:"exp_value,omitempty"`
	ExpRev   uint64 `json:"exp_rev,omitempty"`
	// TTL (seconds) of a put or touch, 0 for none. The model knows when
	// such a key may have expired (regState): from the call plus the TTL
	// to the return plus the TTL, give or take expirySlack.
	TTL int64 `json:"ttl,omitempty"`
	// Batch, if not 0, names the PutMany or GetMany this operation is one
	// key of (ops.go): a multi-key operation is recorded as one operation
	// per key, all with its call and return times.
	Batch int `json:"batch,omitempty"`
	// Call and Return are the operation's times (porcupine.Operation's),
	// copied in by RegisterModel.Partition for the expiry rules.
	Call   int64 `json:"-"`
	Return int64 `json:"-"`
}

// Status is how an operation ended.
type Status int

// The outcomes.
const (
	// StatusOK: applied (writes) or found (reads).
	StatusOK Status = iota
	// StatusNotFound: a read found no key, or a touch found none (a
	// definite outcome: the touch was applied as a no-op).
	StatusNotFound
	// StatusConflict: a conditional write certainly failed its condition.
	StatusConflict
	// StatusUnknown: a write that may or may not have been applied.
	StatusUnknown
	// StatusFailed: a write that certainly was not applied. Such writes
	// are left out of the history.
	StatusFailed
)

func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusNotFound:
		return "not-found"
	case StatusConflict:
		return "conflict"
	case StatusUnknown:
		return "unknown"
	case StatusFailed:
		return "failed"
	}
	return "status" + strconv.Itoa(int(s))
}

// Output is what an operation returned.
type Output struct {
	Status  Status `json:"status"`
	Value   string `json:"value,omitempty"`
	Rev     uint64 `json:"rev,omitempty"` // write: its revision; get: the key's ModRevision
	Deleted bool   `json:"deleted,omitempty"`
	Node    string `json:"node,omitempty"`
	Err     string `json:"err,omitempty"`
	// Resolved marks a write of unknown outcome that a read showed was
	// applied (see Reduce).
	Resolved bool `json:"resolved,omitempty"`
}

// regState is one key: whether it exists, its value, and the revision of
// the last write to it (its ModRevision while it exists), 0 when that
// write's outcome was unknown and no read has shown its revision since.
//
// A key written or touched with a TTL expires at one point of the log: the
// first entry stamped at or past the leader's stamp plus the TTL (the
// replica reads and writes at the log's clock). The stamp falls between
// the write's call and return, and an entry stamped past the expiry is
// applied soon after it (the workload writes all the time; the leader's
// reaper proposes one when nothing else does). So the expiry happens in
// [ExpLo, ExpHi]: the call plus the TTL, less expirySlack, to the return
// plus the TTL, plus expiryLag. An operation may see the key alive if it
// was called before ExpHi, and gone if it returned after ExpLo. A key
// without a TTL has both at math.MaxInt64.
type regState struct {
	Exists       bool
	Value        string
	Rev          uint64
	ExpLo, ExpHi int64
}

// expirySlack widens an expiry window for the millisecond stamps and for
// the drift between the replicas' wall clock and the run's monotonic one.
// The scenarios with short TTLs jump no clocks (Scenario.ShortTTL).
const expirySlack = 100 * time.Millisecond

// expiryLag bounds how long after its expiry instant a key stays visible:
// until an entry stamped past it is applied where the read is served.
// It is a bound on timing inside a safety check, so it is generous: the
// reaper's Expire command may wait up to 5 s to commit.
const expiryLag = 5 * time.Second

// alive reports whether the key may exist, unexpired, at some point of in.
func (s regState) alive(in Input) bool { return s.Exists && in.Call < s.ExpHi }

// gone reports whether the key may be absent at some point of in: never
// written, deleted, or expired.
func (s regState) gone(in Input) bool { return !s.Exists || in.Return > s.ExpLo }

// expiry is the window [lo, hi] of the expiry of a TTL set by in (none when
// in.TTL is 0).
func expiry(in Input) (lo, hi int64) {
	if in.TTL <= 0 {
		return math.MaxInt64, math.MaxInt64
	}
	ttl := in.TTL * int64(time.Second)
	lo, hi = in.Call+ttl-int64(expirySlack), math.MaxInt64
	if in.Return < math.MaxInt64-ttl-int64(expiryLag) {
		hi = in.Return + ttl + int64(expiryLag)
	}
	return lo, hi
}

// holding is the state of a key just written with in's value and TTL.
func holding(in Input) regState {
	lo, hi := expiry(in)
	return regState{Exists: true, Value: in.Value, ExpLo: lo, ExpHi: hi}
}

// newer reports whether a write at rev may follow state s: revisions are
// Raft indexes, so writes to a key apply in increasing revision order.
func (s regState) newer(rev uint64) bool { return s.Rev == 0 || rev > s.Rev }

// matches reports whether a condition "mod revision is rev" (rev read
// together with value) may hold in s during in. Values are unique, so the
// key holds the value exactly when it holds the write that a read saw at
// rev.
func (s regState) matches(in Input) bool {
	return s.alive(in) && s.Value == in.ExpValue && (s.Rev == 0 || s.Rev == in.ExpRev)
}

// mismatches reports whether that condition may fail during in.
func (s regState) mismatches(in Input) bool {
	return s.gone(in) || s.Value != in.ExpValue || (s.Rev != 0 && s.Rev != in.ExpRev)
}

// step is the sequential specification of one key.
func step(s regState, in Input, out Output) (bool, regState) {
	switch in.Op {
	case OpGet:
		if out.Status == StatusNotFound {
			// Not there: from here on it is gone, expired or not.
			return s.gone(in), regState{}
		}
		if !s.alive(in) || s.Value != out.Value || (s.Rev != 0 && s.Rev != out.Rev) {
			return false, s
		}
		s.Rev = out.Rev
		return true, s
	case OpPut:
		return write(s, true, false, in, out, holding(in))
	case OpCAS:
		return write(s, s.matches(in), s.mismatches(in), in, out, holding(in))
	case OpPutAbsent:
		return write(s, s.gone(in), s.alive(in), in, out, holding(in))
	case OpDelete:
		if out.Status == StatusOK && ((out.Deleted && !s.alive(in)) || (!out.Deleted && !s.gone(in))) {
			return false, s
		}
		return write(s, true, false, in, out, regState{})
	case OpCASDelete:
		if out.Status == StatusOK && !out.Deleted {
			return false, s
		}
		return write(s, s.matches(in), s.mismatches(in), in, out, regState{})
	case OpTouch:
		touched := s
		touched.ExpLo, touched.ExpHi = expiry(in)
		switch out.Status {
		case StatusNotFound:
			return s.gone(in), regState{}
		case StatusOK:
			// Applied at its own revision, after the last write; the value
			// and its revision stay.
			return s.alive(in) && s.newer(out.Rev), touched
		case StatusUnknown:
			// Taken as applied (it may be linearized at the very end).
			if s.alive(in) {
				return true, touched
			}
			return true, s
		}
	}
	return false, s
}

// write steps a (conditional) write whose condition may hold (canHold) or
// fail (canFail) in s during in, and which leaves next (without its
// revision) when applied. A condition that failed because the key expired
// leaves s as it is: later operations may still find it gone.
func write(s regState, canHold, canFail bool, in Input, out Output, next regState) (bool, regState) {
	switch out.Status {
	case StatusOK:
		if !canHold || !s.newer(out.Rev) || (in.ExpRev != 0 && out.Rev <= in.ExpRev) {
			return false, s
		}
		next.Rev = out.Rev
		return true, next
	case StatusConflict:
		return canFail, s
	case StatusUnknown:
		if !canHold {
			return true, s
		}
		return true, next // Rev 0: not known
	}
	return false, s
}

// RegisterModel is a key-value store of registers with compare-and-set and
// delete, partitioned by key, over Input/Output operations.
var RegisterModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			in := op.Input.(Input)
			in.Call, in.Return = op.Call, op.Return
			op.Input = in
			k := in.Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return regState{} },
	Step: func(state, input, output any) (bool, any) {
		return step(state.(regState), input.(Input), output.(Output))
	},
	Equal: func(a, b any) bool { return a.(regState) == b.(regState) },
	Hash: func(state any) uint64 {
		s := state.(regState)
		h := fnv.New64a()
		_, _ = fmt.Fprintf(h, "%t/%s/%d/%d/%d", s.Exists, s.Value, s.Rev, s.ExpLo, s.ExpHi)
		return h.Sum64()
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(Input), output.(Output)
		var call string
		switch in.Op {
		case OpGet:
			call = fmt.Sprintf("get(%s)", in.Key)
		case OpPut, OpPutAbsent:
			call = fmt.Sprintf("%s(%s, %s)", in.Op, in.Key, in.Value)
		case OpCAS:
			call = fmt.Sprintf("cas(%s, %s@%d → %s)", in.Key, in.ExpValue, in.ExpRev, in.Value)
		case OpDelete:
			call = fmt.Sprintf("delete(%s)", in.Key)
		case OpCASDelete:
			call = fmt.Sprintf("cas-delete(%s, %s@%d)", in.Key, in.ExpValue, in.ExpRev)
		case OpTouch:
			call = fmt.Sprintf("touch(%s, %ds)", in.Key, in.TTL)
		}
		var ret string
		switch {
		case out.Status == StatusOK && in.Op == OpGet && in.Batch != 0:
			ret = fmt.Sprintf("%s@%d (batch get %d)", out.Value, out.Rev, in.Batch)
		case out.Status == StatusOK && in.Op == OpGet:
			ret = fmt.Sprintf("%s@%d", out.Value, out.Rev)
		case out.Status == StatusOK && (in.Op == OpDelete || in.Op == OpCASDelete):
			ret = fmt.Sprintf("ok@%d deleted=%t", out.Rev, out.Deleted)
		case out.Status == StatusOK && in.Batch != 0:
			ret = fmt.Sprintf("ok@%d (batch %d)", out.Rev, in.Batch)
		case out.Status == StatusOK:
			ret = fmt.Sprintf("ok@%d", out.Rev)
		default:
			ret = out.Status.String()
		}
		if out.Resolved {
			ret += " (outcome unknown; a read saw it)"
		}
		if out.Node != "" {
			ret += " [" + out.Node + "]"
		}
		return call + " → " + ret
	},
	DescribeState: func(state any) string {
		s := state.(regState)
		if !s.Exists {
			return fmt.Sprintf("∅ (rev %d)", s.Rev)
		}
		return fmt.Sprintf("%s@%d", s.Value, s.Rev)
	},
}
