package cli

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// Lines written in pieces by concurrent writers come out whole, each with
// its writer's prefix.
func TestPrefixWriterWholeLines(t *testing.T) {
	var out bytes.Buffer
	var mu sync.Mutex
	const lines = 200
	var wg sync.WaitGroup
	for _, name := range []string{"web.1", "web.2", "db.1"} {
		w := newPrefixWriter(&out, &mu, name+" | ")
		wg.Go(func() {
			var text strings.Builder
			for i := range lines {
				fmt.Fprintf(&text, "%s line %d of some length\n", name, i)
			}
			s := text.String()
			for len(s) > 0 { // odd-sized pieces cut lines anywhere
				n := min(7, len(s))
				if _, err := w.Write([]byte(s[:n])); err != nil {
					t.Error(err)
				}
				s = s[n:]
			}
			if err := w.Flush(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(got) != 3*lines {
		t.Fatalf("got %d lines, want %d", len(got), 3*lines)
	}
	next := map[string]int{}
	for _, l := range got {
		name, rest, ok := strings.Cut(l, " | ")
		if want := fmt.Sprintf("%s line %d of some length", name, next[name]); !ok || rest != want {
			t.Fatalf("line %q, want %q with its prefix", l, want)
		}
		next[name]++
	}
}

func TestPrefixWriterPartialAndLongLines(t *testing.T) {
	var out bytes.Buffer
	w := newPrefixWriter(&out, &sync.Mutex{}, "web.1 | ")
	_, _ = w.Write([]byte("hel"))
	if out.Len() != 0 {
		t.Fatalf("a partial line was written: %q", out.String())
	}
	_, _ = w.Write([]byte("lo\nwor"))
	if got := out.String(); got != "web.1 | hello\n" {
		t.Fatalf("after one line: %q", got)
	}
	_ = w.Flush()
	if got := out.String(); got != "web.1 | hello\nweb.1 | wor\n" {
		t.Fatalf("after Flush: %q", got)
	}

	// A line longer than maxLine is printed in pieces, not held forever.
	out.Reset()
	long := strings.Repeat("x", maxLine+10)
	if n, err := w.Write([]byte(long)); n != len(long) || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if !strings.HasPrefix(out.String(), "web.1 | xxx") {
		t.Errorf("a line over maxLine was held back (%d bytes written)", out.Len())
	}
}
