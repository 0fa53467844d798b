package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"

	"github.com/clusterctl/clusterctl/bench/internal/benchtar"
)

// changeTree overwrites n bytes of the tree, 1 MiB in each of n/1MiB
// files picked by seed: what a database writes between a pre-copy and
// the final sync.
func changeTree(dir string, n int64, seed int) error {
	files, err := filepath.Glob(filepath.Join(dir, "d*", "f*"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("change %s: no files (%v)", dir, err)
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 7))
	patch := make([]byte, 1<<20)
	for _, i := range rng.Perm(len(files))[:min(len(files), int(n>>20))] {
		for j := range patch {
			patch[j] = byte(rng.Uint32())
		}
		f, err := os.OpenFile(files[i], os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		_, err = f.WriteAt(patch, rng.Int64N(benchtar.TreeFile-int64(len(patch))))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("change %s: %w", files[i], err)
		}
	}
	return nil
}

// hostPath is path as the root namespace reaches it inside a host's mount
// namespace (where block volumes are mounted): through its dockerd.
func (b *bench) hostPath(host, path string) (string, error) {
	h, ok := b.hosts[host]
	if !ok {
		return "", fmt.Errorf("no lab host %s", host)
	}
	return filepath.Join("/proc", strconv.Itoa(h.PID), "root", path), nil
}
