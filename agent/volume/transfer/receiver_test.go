package transfer

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestHostileVolumeNames(t *testing.T) {
	base := t.TempDir()
	p := newPairAt(t, base, nil)
	dirs := p.recv.Dirs
	p.recv.Dirs = func(vol string) (string, string, error) {
		t.Errorf("Dirs called with %q", vol)
		return dirs(vol)
	}
	for _, name := range []string{"%2e%2e", "a%2Fb", "..%2F..%2Fetc", ".hidden", "-rf", "a%00b", strings.Repeat("x", 300)} {
		for _, req := range []struct{ method, suffix string }{
			{http.MethodGet, "/manifest"}, {http.MethodPost, "/round"}, {http.MethodPost, "/commit"}, {http.MethodDelete, ""},
		} {
			r, err := http.NewRequest(req.method, p.srv.URL+"/v1/transfer/"+name+req.suffix, strings.NewReader(""))
			must(t, err)
			resp, err := http.DefaultClient.Do(r)
			must(t, err)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("%s %s: %d, want 400", req.method, name+req.suffix, resp.StatusCode)
			}
		}
	}
	if _, err := p.send.Round(context.Background(), p.srv.URL, "../x", t.TempDir(), nil); err == nil {
		t.Error("the sender took a bad volume name")
	}
}

func TestHostileStreams(t *testing.T) {
	file := func(path string) func(t *testing.T, fw *frameWriter) {
		return func(t *testing.T, fw *frameWriter) {
			entryFrame(t, fw, entry{Path: path, Type: typeFile, Mode: 0o644, Size: 5})
			must(t, fw.chunk(0, hashChunk([]byte("pwned")), []byte("pwned")))
			must(t, fw.small(frameEOF, nil))
		}
	}
	outside := t.TempDir()
	writeFile(t, filepath.Join(outside, "target.txt"), []byte("keep"), 0o644)
	for _, tc := range []struct {
		name   string
		frames func(t *testing.T, fw *frameWriter)
		want   string
	}{
		{"dot-dot", file("../evil"), "bad path"},
		{"absolute", file("/etc/evil"), "bad path"},
		{"dot-dot inside", file("a/../../evil"), "bad path"},
		{"empty element", file("a//b"), "bad path"},
		{"root as a file", file("."), "the root must be a directory"},
		{"through a symlink", func(t *testing.T, fw *frameWriter) {
			entryFrame(t, fw, entry{Path: "ln", Type: typeSymlink, Target: outside})
			file("ln/evil")(t, fw)
		}, "ln: not a directory"},
		{"delete the root", func(t *testing.T, fw *frameWriter) {
			must(t, fw.json(frameDelete, map[string]string{"p": "."}))
		}, "delete: bad path"},
		{"delete outside", func(t *testing.T, fw *frameWriter) {
			must(t, fw.json(frameDelete, map[string]string{"p": "../x"}))
		}, "delete: bad path"},
		{"chunk past the end", func(t *testing.T, fw *frameWriter) {
			entryFrame(t, fw, entry{Path: "f", Type: typeFile, Mode: 0o644, Size: 5})
			must(t, fw.chunk(7, hashChunk([]byte("pwned")), []byte("pwned")))
		}, "f: chunk 7 of 1"},
		{"short chunk", func(t *testing.T, fw *frameWriter) {
			entryFrame(t, fw, entry{Path: "f", Type: typeFile, Mode: 0o644, Size: 9})
			must(t, fw.chunk(0, hashChunk([]byte("pwned")), []byte("pwned")))
		}, "chunk 0 of 5 bytes, want 9"},
		{"bad mode", func(t *testing.T, fw *frameWriter) {
			entryFrame(t, fw, entry{Path: "f", Type: typeFile, Mode: 0o170644})
		}, "bad mode"},
		{"unknown frame", func(t *testing.T, fw *frameWriter) {
			must(t, fw.small('X', nil))
		}, "unexpected frame"},
		{"corrupt frame header", func(t *testing.T, fw *frameWriter) {
			must(t, fw.w.WriteByte(frameEntry))
			must(t, fw.w.WriteByte(0))
			_, err := fw.w.Write([]byte{0, 0, 2, 0, 0, 0, 0, '{', '}'})
			must(t, err)
		}, "corrupt header"},
		{"cut short", func(t *testing.T, fw *frameWriter) {
			entryFrame(t, fw, entry{Path: "d", Type: typeDir, Mode: 0o755})
		}, "stream ended before the end of the round"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t)
			status, body := rawRound(t, p.srv.URL, "vol1", func(fw *frameWriter) { tc.frames(t, fw) })
			if status != http.StatusBadRequest || !strings.Contains(body, tc.want) || strings.Contains(body, "\n") {
				t.Errorf("answer %d %q, want 400 and one line with %q", status, body, tc.want)
			}
			if _, err := os.Lstat(filepath.Join(outside, "evil")); err == nil {
				t.Error("a file was written outside the staging copy")
			}
		})
	}
}

func TestSymlinkInStagingIsReplacedNotFollowed(t *testing.T) {
	p := newPair(t)
	outside := t.TempDir()
	victim := filepath.Join(outside, "target.txt")
	writeFile(t, victim, []byte("keep"), 0o644)
	status, body := rawRound(t, p.srv.URL, "vol1", func(fw *frameWriter) {
		entryFrame(t, fw, entry{Path: "ln", Type: typeSymlink, Target: victim})
		entryFrame(t, fw, entry{Path: "ln", Type: typeFile, Mode: 0o644, Size: 5})
		must(t, fw.chunk(0, hashChunk([]byte("pwned")), []byte("pwned")))
		must(t, fw.small(frameEOF, nil))
		must(t, fw.small(frameEnd, nil))
	})
	if status != http.StatusOK || lastEvent(t, body).Done == nil {
		t.Fatalf("answer %d %q, want a done event", status, body)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep" {
		t.Errorf("the symlink's target was written: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(p.staging("vol1"), "ln")); string(b) != "pwned" {
		t.Errorf("staging ln holds %q, want the file", b)
	}
}

func TestDiskFull(t *testing.T) {
	requireRoot(t, "mount a small tmpfs")
	base := t.TempDir()
	if err := unix.Mount("tmpfs", base, "tmpfs", 0, "size=2m"); err != nil {
		t.Fatalf("mount a 2 MiB tmpfs to fill up: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(base, unix.MNT_DETACH) })
	p := newPairAt(t, base, nil)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "small"), []byte("fits"), 0o644)
	writeFile(t, filepath.Join(src, "dir/big.bin"), randBytes(7, 4*ChunkSize), 0o644)
	ageTree(t, src)
	before := scanAll(t, src)

	_, err := p.send.Round(context.Background(), p.srv.URL, "vol1", src, nil)
	if !errors.Is(err, ErrTargetFull) || !strings.Contains(err.Error(), "disk full writing dir/big.bin") {
		t.Fatalf("round: %v, want the target's disk full writing dir/big.bin", err)
	}
	t.Log(err)
	after := scanAll(t, src)
	if d := firstDifference(before, after, nil); d != "" {
		t.Errorf("source changed: %s", d)
	}
	// Room made (another volume moved away): the transfer goes on.
	must(t, p.send.Abort(context.Background(), p.srv.URL, "vol1"))
	must(t, os.Remove(filepath.Join(src, "dir/big.bin")))
	p.round("vol1", src)
	p.commit("vol1", src)
}

func TestStagingInTheWay(t *testing.T) {
	p := newPair(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "f"), []byte("data"), 0o644)
	// The staging path's parent is a file: the receiver cannot use it.
	writeFile(t, filepath.Join(p.base, "vol1"), []byte("in the way"), 0o644)
	_, err := p.send.Round(context.Background(), p.srv.URL, "vol1", src, nil)
	var re *RemoteError
	if !errors.As(err, &re) || re.Status != http.StatusInternalServerError || !strings.Contains(err.Error(), "vol1/staging") {
		t.Fatalf("round: %v, want a 500 naming the staging directory", err)
	}
}

func TestWriteErrorAbortsRound(t *testing.T) {
	requireRoot(t, "make a directory immutable")
	p := newPair(t)
	src := t.TempDir()
	makeTree(t, src)
	p.round("vol1", src)
	dir := filepath.Join(p.staging("vol1"), "a/b")
	if err := setImmutable(dir, true); err != nil {
		t.Fatalf("make %s immutable (FS_IOC_SETFLAGS; the file system must support it): %v", dir, err)
	}
	t.Cleanup(func() { _ = setImmutable(dir, false) })
	writeFile(t, filepath.Join(src, "a/b/new.txt"), []byte("new"), 0o644)
	before := scanAll(t, src)

	_, err := p.send.Round(context.Background(), p.srv.URL, "vol1", src, nil)
	var re *RemoteError
	if !errors.As(err, &re) || re.Status != http.StatusInternalServerError ||
		!strings.Contains(err.Error(), "creating a/b/new.txt: operation not permitted") {
		t.Fatalf("round: %v, want a 500 about creating a/b/new.txt", err)
	}
	if d := firstDifference(before, scanAll(t, src), nil); d != "" {
		t.Errorf("source changed: %s", d)
	}
	must(t, setImmutable(dir, false))
	p.round("vol1", src)
	p.commit("vol1", src)
}

// fsImmutableFL is FS_IMMUTABLE_FL of linux/fs.h (not in x/sys/unix).
const fsImmutableFL = 0x10

// setImmutable sets or clears a directory's immutable flag (chattr +i),
// which stops even root from changing what it holds.
func setImmutable(dir string, on bool) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	flags, err := unix.IoctlGetInt(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if err != nil {
		return err
	}
	if on {
		flags |= fsImmutableFL
	} else {
		flags &^= fsImmutableFL
	}
	return unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, flags)
}
