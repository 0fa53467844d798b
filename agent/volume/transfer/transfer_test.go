package transfer

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestFullCopy(t *testing.T) {
	p := newPair(t)
	src := t.TempDir()
	wantSent := makeTree(t, src)
	var progress []Progress
	st, err := p.send.Round(context.Background(), p.srv.URL, "vol1", src, func(pr Progress) { progress = append(progress, pr) })
	if err != nil {
		t.Fatal(err)
	}
	entries := len(scanAll(t, src).entries)
	if st.Round != 1 || st.Files != entries || st.FilesSent != entries || st.BytesSent != wantSent || st.Resent != 0 {
		t.Errorf("first round: %+v, want round 1, %d files all sent, %d bytes sent", st, entries, wantSent)
	}
	if most := 4 + int(st.Duration/progressEvery); len(progress) > most {
		t.Errorf("%d progress calls in %v, want at most %d", len(progress), st.Duration, most)
	}
	last := progress[len(progress)-1]
	if last.Phase != "done" || last.Files != entries || last.FilesTotal != entries || last.Bytes != last.BytesTotal || last.BytesSent != wantSent {
		t.Errorf("last progress %+v", last)
	}
	assertSameTree(t, src, p.staging("vol1"))

	// The zero chunk was not sent and is a hole on the target.
	var sp unix.Stat_t
	if err := unix.Stat(filepath.Join(p.staging("vol1"), "sparse.bin"), &sp); err != nil {
		t.Fatal(err)
	}
	if sp.Blocks*512 > sparseSize-ChunkSize {
		t.Errorf("sparse.bin uses %d bytes on disk, want at most %d", sp.Blocks*512, sparseSize-ChunkSize)
	}

	// Nothing changed: nothing sent.
	st = p.round("vol1", src)
	if st.Round != 2 || st.FilesSent != 0 || st.BytesSent != 0 || st.Deleted != 0 {
		t.Errorf("idle round: %+v, want nothing sent", st)
	}
	p.commit("vol1", src)
}

func TestDeltaRoundSendsOnlyChanges(t *testing.T) {
	p := newPair(t)
	src := t.TempDir()
	makeTree(t, src)
	p.round("vol1", src)

	patch(t, filepath.Join(src, "big.bin"), 2*ChunkSize+100, []byte("changed bytes"))
	writeFile(t, filepath.Join(src, "a/new.txt"), randBytes(3, 5000), 0o600)
	must(t, os.Remove(filepath.Join(src, "exec.sh")))
	must(t, os.RemoveAll(filepath.Join(src, "a/b")))
	must(t, os.Chmod(filepath.Join(src, "empty"), 0o640))
	must(t, os.Remove(filepath.Join(src, "link-dangling")))
	symlink(t, "somewhere-else", filepath.Join(src, "link-dangling"))
	patch(t, filepath.Join(src, "sparse.bin"), 0, make([]byte, ChunkSize)) // a hole now: costs nothing

	st := p.round("vol1", src)
	if st.BytesSent != ChunkSize+5000 {
		t.Errorf("delta round sent %d bytes, want one chunk and the new file: %d", st.BytesSent, ChunkSize+5000)
	}
	if st.Deleted != 2 { // exec.sh, a/b (with what it held)
		t.Errorf("deleted %d paths, want 2", st.Deleted)
	}
	// big.bin, new.txt, empty, link-dangling, sparse.bin, and the
	// directories whose contents changed (".", "a").
	if st.FilesSent != 7 {
		t.Errorf("sent %d entries, want 7", st.FilesSent)
	}
	assertSameTree(t, src, p.staging("vol1"))
	p.commit("vol1", src)
}

func TestFilesGrowAndShrink(t *testing.T) {
	p := newPair(t)
	src := t.TempDir()
	data := randBytes(4, 3*ChunkSize)
	writeFile(t, filepath.Join(src, "shrinks"), data, 0o644)
	writeFile(t, filepath.Join(src, "grows"), data[:2*ChunkSize], 0o644)
	writeFile(t, filepath.Join(src, "grows-mid-chunk"), data[:ChunkSize+ChunkSize/2], 0o644)
	p.round("vol1", src)

	must(t, os.Truncate(filepath.Join(src, "shrinks"), 2*ChunkSize+ChunkSize/2))
	writeFile(t, filepath.Join(src, "grows"), data[:2*ChunkSize+ChunkSize/2], 0o644)
	writeFile(t, filepath.Join(src, "grows-mid-chunk"), data[:2*ChunkSize+ChunkSize/2], 0o644)
	// shrinks: its last chunk, now half; grows: a new half chunk;
	// grows-mid-chunk: its half chunk, now whole, and a new half.
	want := int64(ChunkSize/2 + ChunkSize/2 + ChunkSize + ChunkSize/2)
	if st := p.round("vol1", src); st.BytesSent != want || st.Resent != 0 {
		t.Errorf("round sent %d bytes (%d resent), want %d", st.BytesSent, st.Resent, want)
	}
	assertSameTree(t, src, p.staging("vol1"))
	p.commit("vol1", src)
}

func TestCacheSkipsUnchangedFiles(t *testing.T) {
	p := newPair(t)
	p.send.racy = -1 // the files were just written: trust their stat anyway
	src := t.TempDir()
	makeTree(t, src)
	st := p.round("vol1", src)
	if st.BytesRead != st.Bytes {
		t.Errorf("first round read %d bytes, want the whole tree: %d", st.BytesRead, st.Bytes)
	}
	patch(t, filepath.Join(src, "big.bin"), 5, []byte("x"))
	st = p.round("vol1", src)
	if st.BytesRead != bigSize || st.BytesSent != ChunkSize {
		t.Errorf("second round read %d and sent %d bytes, want to read big.bin (%d) and send one chunk", st.BytesRead, st.BytesSent, bigSize)
	}
	p.commit("vol1", src)
}

func TestCorruptedChunkIsResent(t *testing.T) {
	var corrupted atomic.Int32
	rw := &rewriter{base: http.DefaultTransport, chunk: func(path string, idx int, data []byte) error {
		if path == "big.bin" && idx == 1 && corrupted.Add(1) == 1 {
			data[12345] ^= 0x40
		}
		return nil
	}}
	p := newPairAt(t, t.TempDir(), &http.Client{Transport: rw})
	src := t.TempDir()
	wantSent := makeTree(t, src)
	st := p.round("vol1", src)
	if st.Resent != 1 || st.BytesSent != wantSent+ChunkSize {
		t.Errorf("round: resent %d chunks, sent %d bytes; want 1 chunk resent, %d bytes", st.Resent, st.BytesSent, wantSent+ChunkSize)
	}
	p.commit("vol1", src)
}

func TestCorruptedChunkIsNeverWritten(t *testing.T) {
	rw := &rewriter{base: http.DefaultTransport, chunk: func(path string, idx int, data []byte) error {
		if path == "big.bin" && idx == 1 {
			data[0] ^= 1 // every time: a broken network
		}
		return nil
	}}
	p := newPairAt(t, t.TempDir(), &http.Client{Transport: rw})
	src := t.TempDir()
	makeTree(t, src)
	_, err := p.send.Round(context.Background(), p.srv.URL, "vol1", src, nil)
	if err == nil || !strings.Contains(err.Error(), "chunk 1 of big.bin arrived corrupted 4 times") {
		t.Fatalf("round: %v, want chunk 1 of big.bin given up on", err)
	}
	got, err := os.ReadFile(filepath.Join(p.staging("vol1"), "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	want := randBytes(1, bigSize)
	if !bytes.Equal(got[:ChunkSize], want[:ChunkSize]) || !bytes.Equal(got[2*ChunkSize:], want[2*ChunkSize:]) {
		t.Error("the good chunks of big.bin were not written")
	}
	if !bytes.Equal(got[ChunkSize:2*ChunkSize], make([]byte, ChunkSize)) {
		t.Error("the corrupted chunk was written")
	}
	// The staging manifest knows chunk 1 is missing: a clean network
	// finishes the job with that chunk alone.
	p.send.Client = http.DefaultClient
	if st := p.round("vol1", src); st.BytesSent != ChunkSize {
		t.Errorf("repair round sent %d bytes, want one chunk", st.BytesSent)
	}
	p.commit("vol1", src)
}

func TestInterruptedRoundResumes(t *testing.T) {
	src := t.TempDir()
	const fileSize = ChunkSize + 1000
	for i := range 8 {
		writeFile(t, filepath.Join(src, "f", string(rune('a'+i))), randBytes(uint64(10+i), fileSize), 0o644)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var sent atomic.Int64
	rw := &rewriter{base: http.DefaultTransport, chunk: func(_ string, _ int, data []byte) error {
		if sent.Add(int64(len(data))) > 5*ChunkSize+5000 {
			cancel() // the cable is cut at the sixth file: nothing more arrives
			return errors.New("cut")
		}
		return nil
	}}
	p := newPairAt(t, t.TempDir(), &http.Client{Transport: rw})
	if _, err := p.send.Round(ctx, p.srv.URL, "vol1", src, nil); err == nil {
		t.Fatal("the cut round succeeded")
	}
	p.send.Client = http.DefaultClient
	st := p.round("vol1", src)
	// Five files got through (the last of them perhaps not whole).
	if st.BytesSent < 3*fileSize || st.BytesSent > 4*fileSize {
		t.Errorf("resumed round sent %d bytes, want the three files cut off: %d", st.BytesSent, 3*fileSize)
	}
	p.commit("vol1", src)
}

func TestCommitRefusesTamperedStaging(t *testing.T) {
	p := newPair(t)
	src := t.TempDir()
	makeTree(t, src)
	p.round("vol1", src)
	for _, tc := range []struct {
		name, want string
		tamper     func(staging string)
		repair     int64 // bytes the next round sends
	}{
		{"content", "big.bin: checksum mismatch in bytes 2097152-3145727", func(s string) {
			f := filepath.Join(s, "big.bin")
			var st unix.Stat_t
			must(t, unix.Lstat(f, &st))
			patch(t, f, 2*ChunkSize+7, []byte{0})
			must(t, unix.UtimesNano(f, []unix.Timespec{st.Atim, st.Mtim})) // hide it from the stat
		}, ChunkSize},
		{"mode", "a/b/c/deep.txt: mode 0666, want 0644", func(s string) {
			must(t, os.Chmod(filepath.Join(s, "a/b/c/deep.txt"), 0o666))
		}, 0},
		{"extra", "a/intruder: not in the source", func(s string) {
			writeFile(t, filepath.Join(s, "a/intruder"), []byte("x"), 0o644)
		}, 0},
		{"missing", "link-abs: missing", func(s string) {
			must(t, os.Remove(filepath.Join(s, "link-abs")))
		}, 0},
		{"fifo", "a/fifo: a device, fifo or socket", func(s string) {
			must(t, unix.Mkfifo(filepath.Join(s, "a/fifo"), 0o644))
		}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.tamper(p.staging("vol1"))
			err := p.send.Commit(context.Background(), p.srv.URL, "vol1", src)
			var re *RemoteError
			if !errors.As(err, &re) || re.Status != http.StatusConflict || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("commit: %v, want a 409 naming %q", err, tc.want)
			}
			if _, err := os.Lstat(p.live("vol1")); err == nil {
				t.Fatal("a refused commit switched the staging copy in")
			}
			// The refusal told the receiver what is really there: the
			// next round repairs it.
			if st := p.round("vol1", src); st.BytesSent != tc.repair {
				t.Errorf("repair round sent %d bytes, want %d", st.BytesSent, tc.repair)
			}
			assertSameTree(t, src, p.staging("vol1"))
		})
	}
	p.commit("vol1", src)
}

func TestCommitReplacesStaleLiveCopy(t *testing.T) {
	p := newPair(t)
	src := t.TempDir()
	makeTree(t, src)
	writeFile(t, filepath.Join(p.live("vol1"), "stale/old.txt"), []byte("old"), 0o644)
	p.round("vol1", src)
	p.commit("vol1", src)
	assertSameTree(t, src, p.live("vol1"))
	// The stale copy is removed after the commit answered.
	var names []os.DirEntry
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var err error
		if names, err = os.ReadDir(filepath.Dir(p.live("vol1"))); err != nil {
			t.Fatal(err)
		}
		if len(names) == 1 && names[0].Name() == "data" {
			return
		}
	}
	t.Errorf("volume directory holds %v, want only data", names)
}

func TestCommitWithoutRoundIsRefused(t *testing.T) {
	p := newPair(t)
	src := t.TempDir()
	makeTree(t, src)
	err := p.send.Commit(context.Background(), p.srv.URL, "vol1", src)
	var re *RemoteError
	if !errors.As(err, &re) || re.Status != http.StatusNotFound {
		t.Fatalf("commit: %v, want 404", err)
	}
}

func TestAbortDropsStaging(t *testing.T) {
	p := newPair(t)
	src := t.TempDir()
	wantSent := makeTree(t, src)
	p.round("vol1", src)
	for range 2 { // idempotent
		if err := p.send.Abort(context.Background(), p.srv.URL, "vol1"); err != nil {
			t.Fatal(err)
		}
	}
	for _, path := range []string{p.staging("vol1"), p.staging("vol1") + ".manifest"} {
		if _, err := os.Lstat(path); err == nil {
			t.Errorf("%s left after abort", path)
		}
	}
	if st := p.round("vol1", src); st.Round != 1 || st.BytesSent != wantSent {
		t.Errorf("round after abort: %+v, want a fresh full copy", st)
	}
}

func TestFlush(t *testing.T) {
	p := newPair(t)
	ctx := context.Background()
	if err := p.send.Flush(ctx, p.srv.URL, "vol1"); err != nil {
		t.Fatalf("flush before any round: %v", err)
	}
	src := t.TempDir()
	makeTree(t, src)
	p.round("vol1", src)
	if err := p.send.Flush(ctx, p.srv.URL, "vol1"); err != nil {
		t.Fatalf("flush: %v", err)
	}
	if st := p.round("vol1", src); st.BytesSent != 0 {
		t.Errorf("a flush changed the staging copy: the next round sent %d bytes", st.BytesSent)
	}
	p.commit("vol1", src)
	assertSameTree(t, src, p.live("vol1"))
}

// A staging copy removed behind the receiver's back (by hand, or a file
// system unmounted under it) is noticed: the next round sends it all
// again and the commit succeeds, rather than failing on a stale manifest.
func TestStagingRemovedBehindTheReceiversBack(t *testing.T) {
	p := newPair(t)
	src := t.TempDir()
	wantSent := makeTree(t, src)
	p.round("vol1", src)
	for _, path := range []string{p.staging("vol1"), p.staging("vol1") + ".manifest"} {
		must(t, os.RemoveAll(path))
	}
	if st := p.round("vol1", src); st.BytesSent != wantSent {
		t.Errorf("round after staging vanished sent %d bytes, want everything again: %d", st.BytesSent, wantSent)
	}
	p.commit("vol1", src)
	assertSameTree(t, src, p.live("vol1"))
}

func TestReceiverRestartKeepsStaging(t *testing.T) {
	base := t.TempDir()
	src := t.TempDir()
	makeTree(t, src)
	newPairAt(t, base, nil).round("vol1", src)

	p := newPairAt(t, base, nil) // the agent restarted
	if st := p.round("vol1", src); st.BytesSent != 0 || st.FilesSent != 0 {
		t.Errorf("round after restart: %+v, want nothing sent", st)
	}
	p.commit("vol1", src)
}

func TestReceiverRecoversAfterCrash(t *testing.T) {
	base := t.TempDir()
	src := t.TempDir()
	makeTree(t, src)
	p := newPairAt(t, base, nil)
	p.round("vol1", src)

	// The agent died mid-round: a journal is left, and a file it was
	// writing differs from what the manifest says.
	writeFile(t, p.staging("vol1")+".journal", nil, 0o600)
	patch(t, filepath.Join(p.staging("vol1"), "sparse.bin"), 3, []byte("garbage"))

	p = newPairAt(t, base, nil)
	if st := p.round("vol1", src); st.BytesSent != ChunkSize {
		t.Errorf("round after crash: sent %d bytes, want the damaged chunk", st.BytesSent)
	}
	p.commit("vol1", src)
}

func TestTypeChanges(t *testing.T) {
	p := newPair(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "was-file"), []byte("f"), 0o644)
	writeFile(t, filepath.Join(src, "was-dir/inner/x"), []byte("x"), 0o644)
	symlink(t, "x", filepath.Join(src, "was-link"))
	writeFile(t, filepath.Join(src, "becomes-link"), []byte("y"), 0o644)
	p.round("vol1", src)

	must(t, os.Remove(filepath.Join(src, "was-file")))
	writeFile(t, filepath.Join(src, "was-file/now-inside"), []byte("in"), 0o644)
	must(t, os.RemoveAll(filepath.Join(src, "was-dir")))
	writeFile(t, filepath.Join(src, "was-dir"), []byte("now a file"), 0o644)
	must(t, os.Remove(filepath.Join(src, "was-link")))
	writeFile(t, filepath.Join(src, "was-link"), []byte("z"), 0o644)
	must(t, os.Remove(filepath.Join(src, "becomes-link")))
	symlink(t, "/tmp", filepath.Join(src, "becomes-link"))
	p.round("vol1", src)
	p.commit("vol1", src)
}

func TestSpecialFilesAndHardLinks(t *testing.T) {
	p := newPair(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "one"), []byte("linked"), 0o644)
	must(t, os.Link(filepath.Join(src, "one"), filepath.Join(src, "two")))
	must(t, unix.Mkfifo(filepath.Join(src, "fifo"), 0o644))
	st := p.round("vol1", src)
	if st.Special != 1 {
		t.Errorf("%d special files left out, want the fifo", st.Special)
	}
	if err := p.send.Commit(context.Background(), p.srv.URL, "vol1", src); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(p.live("vol1"), "fifo")); err == nil {
		t.Error("the fifo was copied")
	}
	for _, name := range []string{"one", "two"} {
		if b, err := os.ReadFile(filepath.Join(p.live("vol1"), name)); err != nil || string(b) != "linked" {
			t.Errorf("%s: %q, %v", name, b, err)
		}
	}
}

func TestConcurrentVolumes(t *testing.T) {
	p := newPair(t)
	var wg sync.WaitGroup
	for _, vol := range []string{"vol1", "vol2", "vol3"} {
		src := t.TempDir()
		makeTree(t, src)
		wg.Go(func() {
			if _, err := p.send.Round(context.Background(), p.srv.URL, vol, src, nil); err != nil {
				t.Error(err)
				return
			}
			if err := p.send.Commit(context.Background(), p.srv.URL, vol, src); err != nil {
				t.Error(err)
			}
		})
		t.Cleanup(func() { assertSameTree(t, src, p.live(vol)) })
	}
	wg.Wait()
}

func TestSourceIsNeverModified(t *testing.T) {
	p := newPair(t)
	src := t.TempDir()
	makeTree(t, src)
	before := scanAll(t, src)
	p.round("vol1", src)
	p.commit("vol1", src)
	after := scanAll(t, src)
	if d := firstDifference(before, after, nil); d != "" {
		t.Errorf("source changed: %s", d)
	}
	for _, e := range before.entries {
		if after.get(e.Path).MTime != e.MTime {
			t.Errorf("source %s: mtime changed", e.Path)
		}
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
