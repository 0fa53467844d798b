package transfer

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

func TestReadAheadDeliversEverythingInOrder(t *testing.T) {
	want := randBytes(3, 5*readAheadBlock+123)
	ra := newReadAhead(iotest.HalfReader(bytes.NewReader(want)))
	defer ra.Close()
	got, err := io.ReadAll(iotest.OneByteReader(io.LimitReader(ra, 1000)))
	if err != nil || !bytes.Equal(got, want[:1000]) {
		t.Fatalf("first 1000 bytes: %v", err)
	}
	rest, err := io.ReadAll(ra)
	if err != nil || !bytes.Equal(rest, want[1000:]) {
		t.Fatalf("the rest: %d bytes, %v", len(rest), err)
	}
}

func TestReadAheadPassesTheSourcesError(t *testing.T) {
	boom := errors.New("boom")
	ra := newReadAhead(io.MultiReader(bytes.NewReader([]byte("abc")), iotest.ErrReader(boom)))
	defer ra.Close()
	got, err := io.ReadAll(ra)
	if string(got) != "abc" || !errors.Is(err, boom) {
		t.Fatalf("read %q, %v; want abc then boom", got, err)
	}
}

func TestReadAheadCloseStopsTheReader(t *testing.T) {
	pr, pw := io.Pipe()
	ra := newReadAhead(pr)
	go func() { _, _ = pw.Write(make([]byte, 100*readAheadBlock)) }() // more than it holds
	b := make([]byte, 10)
	if _, err := ra.Read(b); err != nil {
		t.Fatal(err)
	}
	ra.Close()
	pr.Close() // as the server closes the body
	for range ra.full {
	} // the goroutine ends: full is closed
}
