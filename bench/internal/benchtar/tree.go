package benchtar

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
)

// The benchmark tree: files of TreeFile bytes in 16 directories.
const TreeFile = 4 << 20

// Fill writes size bytes of random (incompressible) data into dir.
func Fill(dir string, size int64) error {
	buf := make([]byte, TreeFile)
	rng := rand.NewChaCha8([32]byte{1})
	for i := range int(size / TreeFile) {
		_, _ = rng.Read(buf)
		p := filepath.Join(dir, "d"+strconv.Itoa(i%16), "f"+strconv.Itoa(i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			return fmt.Errorf("fill %s: %w", dir, err)
		}
	}
	return nil
}
