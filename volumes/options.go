// Package volumes is the managers' side of cluster volumes: it creates
// them, hands out their leases (a host may mount a volume only while it
// holds the lease, and every attach bumps the lease generation) and
// removes them with their data. Agents serve the Docker plugin and do the
// work on their hosts; the store is the only record of who holds what.
package volumes

import (
	"maps"
	"regexp"
	"slices"
	"strings"

	units "github.com/docker/go-units"

	"github.com/clusterctl/clusterctl/store"
)

// DefaultBlockSize is a block volume's size when none is given.
const DefaultBlockSize = 1 << 30

// Block volume size bounds: ext4 needs some room for itself, and the
// image is a sparse file whose size is a promise, not a reservation.
const (
	MinBlockSize = 16 << 20
	MaxBlockSize = 16 << 40
)

// validName is Docker's rule for volume names, at most 128 characters.
var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)

// ValidateName refuses names that are not Docker volume names or that
// could walk out of a directory ("..").
func ValidateName(name string) error {
	if !validName.MatchString(name) || strings.Contains(name, "..") {
		return store.Refuse(store.ErrInvalid, "invalid volume name %q: letters, digits, '_', '.', '-', starting with a letter or digit, no '..'", name)
	}
	return nil
}

// Options are a volume's parsed driver options.
type Options struct {
	Backend   string
	SizeBytes int64 // block only
}

// knownOptions are the driver options a volume accepts.
var knownOptions = []string{"backend", "size"}

// ParseOptions reads driver options (Compose's driver_opts, docker volume
// create -o), refusing unknown keys and values.
func ParseOptions(opts map[string]string) (Options, error) {
	for k := range opts {
		if !slices.Contains(knownOptions, k) {
			return Options{}, store.Refuse(store.ErrInvalid, "unknown volume option %q (known: %s)", k, strings.Join(knownOptions, ", "))
		}
	}
	o := Options{Backend: opts["backend"]}
	switch o.Backend {
	case "":
		o.Backend = store.VolumeCopy
	case store.VolumeCopy, store.VolumeBlock:
	default:
		return Options{}, store.Refuse(store.ErrInvalid, "unknown volume backend %q (copy or block)", o.Backend)
	}
	size, hasSize := opts["size"]
	if o.Backend == store.VolumeCopy {
		if hasSize {
			return Options{}, store.Refuse(store.ErrInvalid, "option size is for block volumes (a copy volume grows with its data)")
		}
		return o, nil
	}
	o.SizeBytes = DefaultBlockSize
	if hasSize {
		n, err := units.RAMInBytes(size)
		if err != nil || n < MinBlockSize || n > MaxBlockSize {
			return Options{}, store.Refuse(store.ErrInvalid, "invalid volume size %q: between %s and %s, e.g. 1GiB", size,
				units.BytesSize(MinBlockSize), units.BytesSize(MaxBlockSize))
		}
		o.SizeBytes = n
	}
	return o, nil
}

// sameOptions says whether a create asks for the volume as it exists.
func sameOptions(v store.Volume, opts map[string]string) bool {
	return maps.Equal(v.Options, opts) || (len(v.Options) == 0 && len(opts) == 0)
}
