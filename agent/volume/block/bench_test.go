package block

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkDetachAttach measures one move of a volume: detach from one
// mountpoint, attach at another, as the source and target hosts would. The
// time must not grow with the size. Before each move, outside the timer,
// 1 MiB is written into the volume, so that the detach flushes real dirty
// data as it would after a container stopped. create-ms is how long Create
// took for the size (mkfs.ext4 on a sparse file).
func BenchmarkDetachAttach(b *testing.B) {
	for _, c := range []struct {
		name string
		size int64
	}{{"1GiB", 1 << 30}, {"10GiB", 10 << 30}} {
		b.Run(c.name, func(b *testing.B) { benchMove(b, c.size) })
	}
}

func benchMove(b *testing.B, size int64) {
	ctx := context.Background()
	dir := diskTempDir(b)
	img := filepath.Join(dir, "vol.img")
	requireLoop(b)
	start := time.Now()
	if err := Create(ctx, img, size); err != nil {
		b.Fatal(err)
	}
	created := time.Since(start)
	cleanupImage(b, img)
	mps := [2]string{filepath.Join(dir, "host1"), filepath.Join(dir, "host2")}
	if err := Attach(ctx, img, mps[0]); err != nil {
		b.Fatal(err)
	}
	dirty := make([]byte, 1<<20)
	var detach, attach time.Duration
	moves := 0
	for i := 0; b.Loop(); i++ {
		from, to := mps[i%2], mps[(i+1)%2]
		b.StopTimer()
		rand.Read(dirty)
		if err := os.WriteFile(filepath.Join(from, "dirty"), dirty, 0o644); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		t0 := time.Now()
		if err := Detach(ctx, img, from); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := Attach(ctx, img, to); err != nil {
			b.Fatal(err)
		}
		detach, attach = detach+t1.Sub(t0), attach+time.Since(t1)
		moves++
	}
	n := float64(moves)
	b.ReportMetric(float64(created.Microseconds())/1000, "create-ms")
	b.ReportMetric(float64(detach.Microseconds())/1000/n, "detach-ms/op")
	b.ReportMetric(float64(attach.Microseconds())/1000/n, "attach-ms/op")
}
