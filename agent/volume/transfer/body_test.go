package transfer

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestStreamBodyWritesItselfOrThroughRead(t *testing.T) {
	write := func(w io.Writer) error { _, err := io.WriteString(w, "frames"); return err }
	var sb strings.Builder
	b := newStreamBody(write)
	if n, err := b.WriteTo(&sb); err != nil || n != 6 || sb.String() != "frames" {
		t.Fatalf("WriteTo: %d, %v, %q", n, err, sb.String())
	}
	<-b.done
	b = newStreamBody(write)
	got, err := io.ReadAll(b)
	if err != nil || string(got) != "frames" {
		t.Fatalf("Read: %q, %v", got, err)
	}
	<-b.done
}

func TestStreamBodyClosedBeforeUseNeverWrites(t *testing.T) {
	b := newStreamBody(func(io.Writer) error { t.Error("the writer ran"); return nil })
	b.Close()
	<-b.done // closes without the writer
	if _, err := b.WriteTo(io.Discard); !errors.Is(err, errRoundOver) {
		t.Errorf("WriteTo after Close: %v", err)
	}
	if _, err := b.Read(make([]byte, 1)); !errors.Is(err, errRoundOver) {
		t.Errorf("Read after Close: %v", err)
	}
}
