package transfer

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// pair is a receiver behind a test server and a sender talking to it.
type pair struct {
	t    testing.TB
	base string // the receiver's volumes: base/VOLUME/{staging,data}
	recv *Receiver
	srv  *httptest.Server
	send *Sender
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func newPair(t testing.TB) *pair {
	t.Helper()
	return newPairAt(t, t.TempDir(), nil)
}

// newPairAt serves a receiver whose volumes live under base; client (nil:
// the sender's own) lets a test put a transport in the way.
func newPairAt(t testing.TB, base string, client *http.Client) *pair {
	t.Helper()
	recv := &Receiver{Log: quiet, Dirs: func(vol string) (string, string, error) {
		return filepath.Join(base, vol, "staging"), filepath.Join(base, vol, "data"), nil
	}}
	mux := http.NewServeMux()
	mux.Handle("/v1/transfer/", recv.Handler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	send := NewSender(client)
	send.Log = quiet
	t.Cleanup(send.Client.CloseIdleConnections)
	return &pair{t: t, base: base, recv: recv, srv: srv, send: send}
}

func (p *pair) staging(vol string) string { return filepath.Join(p.base, vol, "staging") }
func (p *pair) live(vol string) string    { return filepath.Join(p.base, vol, "data") }

// round runs a round that must succeed.
func (p *pair) round(vol, src string) RoundStats {
	p.t.Helper()
	st, err := p.send.Round(context.Background(), p.srv.URL, vol, src, nil)
	if err != nil {
		p.t.Fatalf("round: %v", err)
	}
	return st
}

// commit commits and checks the live copy equals src.
func (p *pair) commit(vol, src string) {
	p.t.Helper()
	if err := p.send.Commit(context.Background(), p.srv.URL, vol, src); err != nil {
		p.t.Fatalf("commit: %v", err)
	}
	assertSameTree(p.t, src, p.live(vol))
	for _, leftover := range []string{p.staging(vol), p.staging(vol) + ".manifest", p.staging(vol) + ".journal"} {
		if _, err := os.Lstat(leftover); err == nil {
			p.t.Errorf("%s left after commit", leftover)
		}
	}
}

// assertSameTree fails unless two trees are equal in everything a
// transfer keeps, times included.
func assertSameTree(t testing.TB, want, got string) {
	t.Helper()
	a, errA := TreeChecksum(want)
	b, errB := TreeChecksum(got)
	if errA != nil || errB != nil {
		t.Fatalf("checksums: %v, %v", errA, errB)
	}
	if a != b {
		t.Errorf("tree checksums differ: %s (source) vs %s", a, b)
	}
	mw, mg := scanAll(t, want), scanAll(t, got)
	if d := firstDifference(mw, mg, nil); d != "" {
		t.Errorf("trees differ: %s", d)
	}
	for _, e := range mw.entries {
		if g := mg.get(e.Path); g != nil && g.MTime != e.MTime {
			t.Errorf("%s: mtime %v, want %v", e.Path, time.Unix(0, g.MTime), time.Unix(0, e.MTime))
		}
	}
}

func scanAll(t testing.TB, dir string) *manifest {
	t.Helper()
	sc := scanner{hash: true}
	m, err := sc.scan(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// randBytes returns n reproducible random bytes.
func randBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	_, _ = r.Read(b)
	return b
}

func writeFile(t testing.TB, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

func mkdir(t testing.TB, path string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func symlink(t testing.TB, target, path string) {
	t.Helper()
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
}

// Sizes in the test tree.
const (
	bigSize    = 3*ChunkSize + ChunkSize/2
	sparseSize = 3 * ChunkSize
)

// makeTree fills dir with a bit of everything: nested directories with
// odd modes, empty and executable files, a multi-chunk file, a file with
// a chunk of zeros, symlinks (relative, absolute, dangling, to a parent),
// and old times everywhere. It returns the chunk bytes a full copy sends.
func makeTree(t testing.TB, dir string) int64 {
	t.Helper()
	mkdir(t, filepath.Join(dir, "a/b/c"), 0o700)
	mkdir(t, filepath.Join(dir, "a"), 0o750)
	mkdir(t, filepath.Join(dir, "shared"), 0o2775)
	writeFile(t, filepath.Join(dir, "a/b/c/deep.txt"), []byte("deep\n"), 0o644)
	writeFile(t, filepath.Join(dir, "empty"), nil, 0o600)
	writeFile(t, filepath.Join(dir, "exec.sh"), []byte("#!/bin/sh\necho hi\n"), 0o755)
	writeFile(t, filepath.Join(dir, "readonly"), []byte("ro"), 0o444)
	writeFile(t, filepath.Join(dir, "shared/setuid"), []byte("su"), 0o4755)
	writeFile(t, filepath.Join(dir, "big.bin"), randBytes(1, bigSize), 0o640)
	sparse := randBytes(2, sparseSize)
	clear(sparse[ChunkSize : 2*ChunkSize])
	writeFile(t, filepath.Join(dir, "sparse.bin"), sparse, 0o644)
	symlink(t, "a/b/c/deep.txt", filepath.Join(dir, "link-rel"))
	symlink(t, "/etc/passwd", filepath.Join(dir, "link-abs"))
	symlink(t, "nowhere", filepath.Join(dir, "link-dangling"))
	symlink(t, "..", filepath.Join(dir, "a/up"))
	if os.Geteuid() == 0 {
		if err := os.Lchown(filepath.Join(dir, "shared/setuid"), 1234, 5678); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, "shared/setuid"), 0o4755); err != nil { // chown cleared it
			t.Fatal(err)
		}
		if err := os.Lchown(filepath.Join(dir, "link-rel"), 4321, 8765); err != nil {
			t.Fatal(err)
		}
	}
	ageTree(t, dir)
	return int64(len("deep\n") + len("#!/bin/sh\necho hi\n") + len("ro") + len("su") + bigSize + sparseSize - ChunkSize)
}

// ageTree sets every time in dir to distinct moments a day ago, deepest
// first, so the copy's times can be told from "now".
func ageTree(t testing.TB, dir string) {
	t.Helper()
	var paths []string
	_ = filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		paths = append(paths, p)
		return err
	})
	base := time.Now().Add(-24 * time.Hour)
	for i := len(paths) - 1; i >= 0; i-- {
		ts := unix.NsecToTimespec(base.Add(time.Duration(i) * 1234567 * time.Nanosecond).UnixNano())
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, paths[i], []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			t.Fatal(err)
		}
	}
}

// patch overwrites bytes of a file in place.
func patch(t testing.TB, path string, off int64, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(data, off); err != nil {
		t.Fatal(err)
	}
}

// rawRound posts a hand-made round stream and returns the status and the
// body (an error line or events).
func rawRound(t testing.TB, url, vol string, frames func(fw *frameWriter)) (int, string) {
	t.Helper()
	var body bytes.Buffer
	fw := newFrameWriter(&body)
	frames(fw)
	if err := fw.flush(); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(url+"/v1/transfer/"+vol+"/round", "application/octet-stream", &body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(out))
}

// entryFrame writes an entry frame.
func entryFrame(t testing.TB, fw *frameWriter, e entry) {
	t.Helper()
	if err := fw.json(frameEntry, e); err != nil {
		t.Fatal(err)
	}
}

// lastEvent decodes the last event line of a round's answer.
func lastEvent(t testing.TB, body string) event {
	t.Helper()
	lines := strings.Split(body, "\n")
	var ev event
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &ev); err != nil {
		t.Fatalf("answer %q: %v", body, err)
	}
	return ev
}

// rewriter is a transport that rewrites the frames of round requests on
// their way to the receiver (a network that corrupts, a cable cut).
type rewriter struct {
	base http.RoundTripper
	// chunk may change a chunk frame of path in place, or cut the stream
	// there with an error.
	chunk func(path string, idx int, data []byte) error
}

func (rw *rewriter) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodPost || !strings.HasSuffix(req.URL.Path, "/round") {
		return rw.base.RoundTrip(req)
	}
	pr, pw := io.Pipe()
	orig := req.Body
	go func() {
		pw.CloseWithError(rw.copy(orig, pw))
		orig.Close()
	}()
	req = req.Clone(req.Context())
	req.Body, req.ContentLength = pr, -1
	return rw.base.RoundTrip(req)
}

// copy copies frames from r to w, handing chunk frames to rw.chunk.
func (rw *rewriter) copy(r io.Reader, w io.Writer) error {
	fr, fw := newFrameReader(r), newFrameWriter(w)
	path := ""
	for {
		f, err := fr.next()
		if err != nil {
			return err
		}
		switch f.typ {
		case frameChunk:
			if err := rw.chunk(path, f.idx, f.data); err != nil {
				return err
			}
			err = fw.chunk(f.idx, f.hash, f.data)
		case frameEntry:
			var e entry
			_ = json.Unmarshal(f.payload, &e)
			path = e.Path
			fallthrough
		default:
			err = fw.small(f.typ, f.payload)
		}
		if err == nil {
			err = fw.flush()
		}
		if err != nil {
			return err
		}
		if f.typ == frameEnd {
			return nil
		}
	}
}

// requireRoot fails (never skips) a test that needs root to do what: CI
// runs the tests as root, and a silent skip would hide that one never ran.
func requireRoot(t testing.TB, what string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("this test needs root to %s: run it as root (sudo go test ./agent/volume/transfer/)", what)
	}
}
