package transfer

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/clusterctl/clusterctl/internal/tarstream"
)

// The benchmark tree: 16 files of 8 MiB and 1024 of 128 KiB, random
// (incompressible) bytes, 256 MiB in all.
const (
	benchBig, benchBigSize     = 16, 8 << 20
	benchSmall, benchSmallSize = 1024, 128 << 10
	benchTreeSize              = benchBig*benchBigSize + benchSmall*benchSmallSize
)

func makeBenchTree(b *testing.B) string {
	b.Helper()
	src := b.TempDir()
	for i := range benchBig {
		writeFile(b, filepath.Join(src, "big", strconv.Itoa(i)), randBytes(uint64(i), benchBigSize), 0o644)
	}
	for i := range benchSmall {
		dir := filepath.Join(src, "small", strconv.Itoa(i%32))
		writeFile(b, filepath.Join(dir, strconv.Itoa(i)), randBytes(uint64(1000+i), benchSmallSize), 0o644)
	}
	return src
}

// BenchmarkFullCopy copies the tree to a receiver writing to disk, and to
// one writing to a tmpfs (no disk in the way: what the protocol costs).
func BenchmarkFullCopy(b *testing.B) {
	src := makeBenchTree(b)
	for _, where := range []string{"disk", "tmpfs"} {
		b.Run(where, func(b *testing.B) {
			p := newPairAt(b, benchDir(b, where), nil)
			ctx := context.Background()
			b.SetBytes(benchTreeSize)
			for b.Loop() {
				b.StopTimer()
				must(b, p.send.Abort(ctx, p.srv.URL, "bench"))
				b.StartTimer()
				st, err := p.send.Round(ctx, p.srv.URL, "bench", src, nil)
				if err != nil || st.BytesSent != benchTreeSize {
					b.Fatalf("round: %+v, %v", st, err)
				}
			}
		})
	}
}

// benchDir returns an empty directory on disk or on a fresh tmpfs.
func benchDir(b *testing.B, where string) string {
	b.Helper()
	dir := b.TempDir()
	if where == "disk" {
		return dir
	}
	requireRoot(b, "mount a tmpfs")
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1g"); err != nil {
		b.Fatalf("mount a tmpfs: %v", err)
	}
	b.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

func BenchmarkDeltaRound(b *testing.B) {
	src := makeBenchTree(b)
	p := newPairAt(b, b.TempDir(), nil)
	p.send.racy = -1 // the tree was just written: trust the stats anyway
	p.round("bench", src)
	i := 0
	for b.Loop() {
		b.StopTimer()
		patch(b, filepath.Join(src, "big", strconv.Itoa(i%benchBig)), int64(i%8)*ChunkSize+17, []byte(strconv.Itoa(i)))
		i++
		b.StartTimer()
		st := p.round("bench", src)
		if st.BytesSent != ChunkSize || st.BytesRead != benchBigSize {
			b.Fatalf("delta round: %+v", st)
		}
	}
}

// BenchmarkFinalSync is the step a move's downtime is made of: on a
// target holding a flushed pre-copy of the tree, 1% of which changed
// since (one chunk in each of 3 big files), the last round and the commit.
func BenchmarkFinalSync(b *testing.B) {
	src := makeBenchTree(b)
	p := newPairAt(b, b.TempDir(), nil)
	p.send.racy = -1 // the tree was just written: trust the stats anyway
	ctx := context.Background()
	i := 0
	for b.Loop() {
		b.StopTimer()
		p.round("bench", src)
		must(b, p.send.Flush(ctx, p.srv.URL, "bench"))
		for range 3 {
			patch(b, filepath.Join(src, "big", strconv.Itoa(i%benchBig)), int64(i%8)*ChunkSize+17, []byte(strconv.Itoa(i)))
			i++
		}
		b.StartTimer()
		st := p.round("bench", src)
		if st.BytesSent != 3*ChunkSize {
			b.Fatalf("final round: %+v", st)
		}
		if err := p.send.Commit(ctx, p.srv.URL, "bench", src); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTarBaseline is the yardstick: the same tree as a plain tar
// stream over HTTP, unpacked on the other side.
func BenchmarkTarBaseline(b *testing.B) {
	src := makeBenchTree(b)
	for _, where := range []string{"disk", "tmpfs"} {
		b.Run(where, func(b *testing.B) {
			dst := filepath.Join(benchDir(b, where), "dst")
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				if err := tarstream.Extract(req.Body, dst); err != nil {
					http.Error(w, err.Error(), http.StatusInternalServerError)
				}
			}))
			defer srv.Close()
			b.SetBytes(benchTreeSize)
			for b.Loop() {
				b.StopTimer()
				must(b, os.RemoveAll(dst))
				b.StartTimer()
				pr, pw := io.Pipe()
				go func() { pw.CloseWithError(tarstream.Write(pw, src)) }()
				resp, err := http.Post(srv.URL, "application/x-tar", pr)
				if err != nil || resp.StatusCode != http.StatusOK {
					b.Fatalf("tar: %v %v", resp, err)
				}
				resp.Body.Close()
			}
		})
	}
}
