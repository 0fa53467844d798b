package store

import (
	"strconv"
	"testing"
)

func TestInternerIsBounded(t *testing.T) {
	in := newInterner()
	for i := range internMax + 10 {
		in.intern("v" + strconv.Itoa(i))
	}
	if n := len(in.m); n > internMax || n == 0 {
		t.Fatalf("interner holds %d strings, want 1..%d", n, internMax)
	}
	if got := in.intern(""); got != "" || len(in.m) > internMax {
		t.Fatalf("empty string interned as %q", got)
	}
}
