package lincheck

import (
	"errors"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// history builds operations with explicit times.
func op(client int, in Input, out Output, call, ret int64) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Input: in, Output: out, Call: call, Return: ret}
}

func TestModelAcceptsLinearizable(t *testing.T) {
	ops := []porcupine.Operation{
		op(0, Input{Write: true, Key: "x", Value: "1"}, Output{}, 0, 10),
		op(1, Input{Key: "x"}, Output{Value: "1", Found: true}, 11, 20),
		// Concurrent with the write of 2: may see 1 or 2.
		op(0, Input{Write: true, Key: "x", Value: "2"}, Output{}, 21, 40),
		op(1, Input{Key: "x"}, Output{Value: "1", Found: true}, 22, 30),
		op(2, Input{Key: "y"}, Output{}, 0, 5),
	}
	if !porcupine.CheckOperations(Model, ops) {
		t.Fatal("a linearizable history was rejected")
	}
}

func TestModelRejectsStaleRead(t *testing.T) {
	ops := []porcupine.Operation{
		op(0, Input{Write: true, Key: "x", Value: "1"}, Output{}, 0, 10),
		op(0, Input{Write: true, Key: "x", Value: "2"}, Output{}, 11, 20),
		// Starts after the write of 2 finished, yet sees 1: a stale read.
		op(1, Input{Key: "x"}, Output{Value: "1", Found: true}, 21, 30),
	}
	if porcupine.CheckOperations(Model, ops) {
		t.Fatal("a stale read passed")
	}
}

func TestModelRejectsLostWrite(t *testing.T) {
	ops := []porcupine.Operation{
		op(0, Input{Write: true, Key: "x", Value: "1"}, Output{}, 0, 10),
		op(1, Input{Key: "x"}, Output{}, 11, 20), // acknowledged write not found
	}
	if porcupine.CheckOperations(Model, ops) {
		t.Fatal("a lost acknowledged write passed")
	}
}

func TestHistoryKeepsUnknownWritesOpen(t *testing.T) {
	h := NewHistory()
	// A write that failed may have happened: a later read that sees it is fine.
	h.Call(0, Input{Write: true, Key: "x", Value: "1"})(Output{}, errors.New("timeout"))
	h.Call(1, Input{Key: "x"})(Output{Value: "1", Found: true}, nil)
	// A failed read is dropped.
	h.Call(1, Input{Key: "x"})(Output{Value: "garbage", Found: true}, errors.New("503"))
	if h.Len() != 2 {
		t.Fatalf("history has %d operations, want 2", h.Len())
	}
	if res, _ := h.Check(5 * time.Second); res != porcupine.Ok {
		t.Fatalf("check = %v, want Ok", res)
	}
}
