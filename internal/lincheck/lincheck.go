// Package lincheck records histories of reads and writes of a key-value
// register from concurrent clients and checks them for linearizability with
// porcupine. An operation whose outcome is unknown (a write that timed out
// may or may not have happened) is kept with an open end, as Jepsen does;
// a failed read is dropped (it observed nothing).
package lincheck

import (
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// Input is one operation's request.
type Input struct {
	Write bool
	Key   string
	Value string // for writes
}

// Output is what a read saw.
type Output struct {
	Value string
	Found bool
}

// History collects operations from many goroutines.
type History struct {
	mu    sync.Mutex
	start time.Time
	ops   []porcupine.Operation
}

// NewHistory starts an empty history.
func NewHistory() *History { return &History{start: time.Now()} }

func (h *History) now() int64 { return int64(time.Since(h.start)) }

// Call notes that a client starts an operation; the returned function
// records its end: the read's output, or err for an operation that failed.
func (h *History) Call(client int, in Input) func(out Output, err error) {
	call := h.now()
	return func(out Output, err error) {
		ret := h.now()
		if err != nil {
			if !in.Write {
				return // a failed read observed nothing
			}
			ret = math.MaxInt64 // a failed write may still take effect, any time later
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
	}
}

// Len is the number of recorded operations.
func (h *History) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.ops)
}

// Check verifies the history within timeout.
func (h *History) Check(timeout time.Duration) (porcupine.CheckResult, porcupine.LinearizationInfo) {
	h.mu.Lock()
	ops := append([]porcupine.Operation(nil), h.ops...)
	h.mu.Unlock()
	return porcupine.CheckOperationsVerbose(Model, ops, timeout)
}

// Model is a map of registers, checked one key at a time. A key's state is
// its value, or nil if never written.
var Model = porcupine.Model{
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
	Init: func() any { return Output{} },
	Step: func(state, input, output any) (bool, any) {
		st, in := state.(Output), input.(Input)
		if in.Write {
			return true, Output{Value: in.Value, Found: true}
		}
		return output.(Output) == st, st
	},
	DescribeOperation: func(input, output any) string {
		in := input.(Input)
		if in.Write {
			return fmt.Sprintf("put(%s, %s)", in.Key, in.Value)
		}
		out := output.(Output)
		return fmt.Sprintf("get(%s) -> %q found=%v", in.Key, out.Value, out.Found)
	},
}
