package chaos

import (
	"time"

	"github.com/anishathalye/porcupine"
)

// Writes of unknown outcome stay open forever (infinite return time), and
// porcupine's search grows exponentially with the number of such writes open
// at once: it tries linearizing each of them early before it finds that
// they took effect late or never. Under a fault that kills the leader every
// second most writes have unknown outcomes. Two rewritings of the history
// keep the check tractable without making it weaker.
//
// Resolve: values are unique, so an unknown put (put, put-absent, cas)
// whose value some read returned certainly took effect, at the revision the
// read saw, before that read returned. Resolve gives it that outcome and
// that return time. Every linearization of the original history has the
// write before the read, so this only adds the constraint that its revision
// grows with the order of writes, which is a guarantee of Concord in its own
// right.
//
// Drop: an unknown put whose value no read returned can be linearized at
// the very end of any linearization (after everything else: its return time
// is infinite, and an unknown write's step always succeeds). So if the
// history without those writes is linearizable, so is the history with
// them. The converse does not hold (such a write may explain a CAS
// conflict), so a failure of the dropped history is only a hint: the
// resolved history is the verdict.

// Reduce returns the history with unknown puts resolved where a read saw
// their value (resolved), and the same without the unknown puts that no read
// saw (dropped).
func Reduce(ops []porcupine.Operation) (resolved, dropped []porcupine.Operation) {
	// The first read that returned each value.
	seen := map[string]porcupine.Operation{}
	for _, op := range ops {
		in, out := op.Input.(Input), op.Output.(Output)
		if in.Op != OpGet || out.Status != StatusOK {
			continue
		}
		if first, ok := seen[out.Value]; !ok || op.Return < first.Return {
			seen[out.Value] = op
		}
	}
	for _, op := range ops {
		in, out := op.Input.(Input), op.Output.(Output)
		isPut := in.Op == OpPut || in.Op == OpPutAbsent || in.Op == OpCAS
		if !isPut || out.Status != StatusUnknown {
			resolved = append(resolved, op)
			dropped = append(dropped, op)
			continue
		}
		read, ok := seen[in.Value]
		if !ok {
			resolved = append(resolved, op)
			continue // dropped
		}
		if read.Return >= op.Call {
			ro := read.Output.(Output)
			out.Status, out.Rev, out.Resolved = StatusOK, ro.Rev, true
			op.Output, op.Return = out, read.Return
		}
		resolved = append(resolved, op)
		dropped = append(dropped, op)
	}
	return resolved, dropped
}

// CheckKey checks the history of one key: the dropped history first (an
// Ok there is an Ok for the whole history), else the resolved one, whose
// verdict stands.
func CheckKey(ops []porcupine.Operation, timeout time.Duration) porcupine.CheckResult {
	resolved, dropped := Reduce(ops)
	if len(dropped) < len(resolved) && porcupine.CheckOperationsTimeout(RegisterModel, dropped, timeout) == porcupine.Ok {
		return porcupine.Ok
	}
	return porcupine.CheckOperationsTimeout(RegisterModel, resolved, timeout)
}
