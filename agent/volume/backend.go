package volume

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/clusterctl/clusterctl/agent/volume/block"
	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/store"
)

// backend does a volume's local work on this host. Every method is
// idempotent: an agent may crash between steps and do them again.
type backend interface {
	// attach makes the volume's data available at path.
	attach(ctx context.Context, vol api.Volume, path string) error
	// detach makes path unused (the data stays where the backend keeps it).
	detach(ctx context.Context, name, path string) error
	// remove deletes the volume's data for good.
	remove(ctx context.Context, name, path string) error
}

// copyBackend keeps a volume's data in a directory on this host: path
// itself. A move streams it to the next owner (agent/volume/transfer).
type copyBackend struct{}

// attach makes the data directory on the first attach ever (generation
// 1). Later, the data must be here already (created here, or moved here):
// making an empty directory instead would hand the container an empty
// volume as if it were the real one.
func (copyBackend) attach(_ context.Context, vol api.Volume, path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("volume %s: %w", vol.Name, err)
	}
	if vol.Generation > 1 {
		return fmt.Errorf("volume %s (lease generation %d): its data is not on this host (%s is missing)", vol.Name, vol.Generation, path)
	}
	if err := os.MkdirAll(path, 0o755); err != nil {
		return fmt.Errorf("volume %s: make data directory: %w", vol.Name, err)
	}
	return nil
}

func (copyBackend) detach(context.Context, string, string) error { return nil }

func (copyBackend) remove(_ context.Context, name, path string) error {
	if err := os.RemoveAll(filepath.Dir(path)); err != nil {
		return fmt.Errorf("volume %s: remove data: %w", name, err)
	}
	return nil
}

// blockBackend keeps a volume as an ext4 image in a directory every host
// reaches (a SAN stand-in), loop-mounted at path on the lease holder.
type blockBackend struct {
	shared string
}

// image is where a block volume's image lives.
func (b blockBackend) image(name string) string { return filepath.Join(b.shared, name+".img") }

// attach makes the image on the first attach ever (generation 1), then
// mounts it; a missing image later is an error, not a fresh filesystem.
func (b blockBackend) attach(ctx context.Context, vol api.Volume, path string) error {
	img := b.image(vol.Name)
	if _, err := os.Lstat(img); errors.Is(err, fs.ErrNotExist) {
		if vol.Generation > 1 {
			return fmt.Errorf("volume %s (lease generation %d): its image %s is missing", vol.Name, vol.Generation, img)
		}
		if err := block.Create(ctx, img, vol.SizeBytes); err != nil {
			return err
		}
	}
	return block.Attach(ctx, img, path)
}

func (b blockBackend) detach(ctx context.Context, name, path string) error {
	return block.Detach(ctx, b.image(name), path)
}

func (b blockBackend) remove(ctx context.Context, name, path string) error {
	img := b.image(name)
	if err := block.Detach(ctx, img, path); err != nil {
		return err
	}
	if err := block.Remove(img); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.RemoveAll(filepath.Dir(path)); err != nil {
		return fmt.Errorf("volume %s: remove mountpoint: %w", name, err)
	}
	return nil
}

// backendOf returns the backend of a volume.
func (d *Driver) backendOf(backendName string) (backend, error) {
	switch backendName {
	case store.VolumeCopy:
		return copyBackend{}, nil
	case store.VolumeBlock:
		return blockBackend{shared: d.cfg.SharedDir}, nil
	}
	return nil, fmt.Errorf("unknown volume backend %q", backendName)
}
