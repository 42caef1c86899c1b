package chaos

import (
	"fmt"
	"hash/fnv"
	"strconv"

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
	// TTL (seconds) of a put, long enough that the key cannot expire
	// during the run: the model treats it as a put without one.
	TTL int64 `json:"ttl,omitempty"`
	// Batch, if not 0, names the PutMany or GetMany this operation is one
	// key of (ops.go): a multi-key operation is recorded as one operation
	// per key, all with its call and return times.
	Batch int `json:"batch,omitempty"`
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
type regState struct {
	Exists bool
	Value  string
	Rev    uint64
}

// newer reports whether a write at rev may follow state s: revisions are
// Raft indexes, so writes to a key apply in increasing revision order.
func (s regState) newer(rev uint64) bool { return s.Rev == 0 || rev > s.Rev }

// matches reports whether a condition "mod revision is rev" (rev read
// together with value) holds in s. Values are unique, so the key holds the
// value exactly when it holds the write that a read saw at rev.
func (s regState) matches(value string, rev uint64) bool {
	return s.Exists && s.Value == value && (s.Rev == 0 || s.Rev == rev)
}

// step is the sequential specification of one key.
func step(s regState, in Input, out Output) (bool, regState) {
	switch in.Op {
	case OpGet:
		if out.Status == StatusNotFound {
			return !s.Exists, s
		}
		if !s.Exists || s.Value != out.Value || (s.Rev != 0 && s.Rev != out.Rev) {
			return false, s
		}
		s.Rev = out.Rev
		return true, s
	case OpPut:
		return write(s, true, in, out, regState{Exists: true, Value: in.Value})
	case OpCAS:
		return write(s, s.matches(in.ExpValue, in.ExpRev), in, out, regState{Exists: true, Value: in.Value})
	case OpPutAbsent:
		return write(s, !s.Exists, in, out, regState{Exists: true, Value: in.Value})
	case OpDelete:
		if out.Status == StatusOK && out.Deleted != s.Exists {
			return false, s
		}
		return write(s, true, in, out, regState{})
	case OpCASDelete:
		ok := s.matches(in.ExpValue, in.ExpRev)
		if out.Status == StatusOK && !out.Deleted {
			return false, s
		}
		return write(s, ok, in, out, regState{})
	case OpTouch:
		switch out.Status {
		case StatusNotFound:
			return !s.Exists, s
		case StatusOK:
			// Applied at its own revision, after the last write.
			return s.Exists && s.newer(out.Rev), s
		case StatusUnknown:
			return true, s // no effect the model can see either way
		}
	}
	return false, s
}

// write steps a (conditional) write whose condition is cond in s and which
// leaves next (without its revision) when applied.
func write(s regState, cond bool, in Input, out Output, next regState) (bool, regState) {
	switch out.Status {
	case StatusOK:
		if !cond || !s.newer(out.Rev) || (in.ExpRev != 0 && out.Rev <= in.ExpRev) {
			return false, s
		}
		next.Rev = out.Rev
		return true, next
	case StatusConflict:
		return !cond, s
	case StatusUnknown:
		if !cond {
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
			k := op.Input.(Input).Key
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
		_, _ = fmt.Fprintf(h, "%t/%s/%d", s.Exists, s.Value, s.Rev)
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
