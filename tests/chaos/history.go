package chaos

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"

	"github.com/anishathalye/porcupine"
)

// historyLine is one operation in history.jsonl.
type historyLine struct {
	Call   int64  `json:"call"`
	Client int    `json:"client"`
	Input  Input  `json:"input"`
	Output Output `json:"output"`
	Return int64  `json:"return"`
}

// WriteHistory writes ops as JSON lines in call order.
func WriteHistory(w io.Writer, ops []porcupine.Operation) error {
	sorted := slices.Clone(ops)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Call < sorted[j].Call })
	enc := json.NewEncoder(w)
	for _, op := range sorted {
		if err := enc.Encode(historyLine{Call: op.Call, Client: op.ClientId, Input: op.Input.(Input), Output: op.Output.(Output), Return: op.Return}); err != nil {
			return err
		}
	}
	return nil
}

// ReadHistory reads what WriteHistory wrote, for checking a saved history
// again.
func ReadHistory(r io.Reader) ([]porcupine.Operation, error) {
	var ops []porcupine.Operation
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		var l historyLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		ops = append(ops, porcupine.Operation{ClientId: l.Client, Input: l.Input, Call: l.Call, Output: l.Output, Return: l.Return})
	}
	return ops, sc.Err()
}
