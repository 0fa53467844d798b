package tarstream

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	src := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(src, "a/b"), 0o750))
	must(t, os.WriteFile(filepath.Join(src, "a/b/f"), []byte("hello"), 0o640))
	must(t, os.Symlink("b/f", filepath.Join(src, "a/link")))
	var buf bytes.Buffer
	must(t, Write(&buf, src))
	dst := filepath.Join(t.TempDir(), "out")
	must(t, Extract(&buf, dst))
	got, err := os.ReadFile(filepath.Join(dst, "a/b/f"))
	if err != nil || string(got) != "hello" {
		t.Fatalf("file: %q, %v", got, err)
	}
	if st, err := os.Stat(filepath.Join(dst, "a/b/f")); err != nil || st.Mode().Perm() != 0o640 {
		t.Fatalf("mode: %v, %v", st.Mode(), err)
	}
	if l, err := os.Readlink(filepath.Join(dst, "a/link")); err != nil || l != "b/f" {
		t.Fatalf("symlink: %q, %v", l, err)
	}
}

func TestExtractStaysInside(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	must(t, tw.WriteHeader(&tar.Header{Name: "../../escape", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}))
	_, err := tw.Write([]byte("x"))
	must(t, err)
	must(t, tw.Close())
	base := t.TempDir()
	dst := filepath.Join(base, "sub")
	must(t, Extract(&buf, dst))
	if _, err := os.Stat(filepath.Join(dst, "escape")); err != nil {
		t.Fatalf("the entry did not land inside: %v", err)
	}
	if _, err := os.Stat(filepath.Join(base, "..", "escape")); err == nil {
		t.Fatal("an entry climbed out of the directory")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
