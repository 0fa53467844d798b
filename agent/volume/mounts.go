package volume

import (
	"fmt"
	"slices"
	"sync"

	"github.com/clusterctl/clusterctl/internal/statefile"
)

// mountTable records which Docker mount IDs use which volume on this
// host, in a file, so that an agent restart does not forget that a volume
// is in use (Docker does not repeat its Mount calls).
type mountTable struct {
	file string
	mu   sync.Mutex
	m    map[string][]string // volume -> mount IDs
}

// loadMounts reads the table from file (empty if there is none).
func loadMounts(file string) (*mountTable, error) {
	mt := &mountTable{file: file, m: map[string][]string{}}
	if err := statefile.Load(file, &mt.m); err != nil {
		return nil, fmt.Errorf("volume mounts: %w", err)
	}
	return mt, nil
}

// add records a mount ID of a volume (again is a no-op).
func (mt *mountTable) add(name, id string) error {
	mt.mu.Lock()
	defer mt.mu.Unlock()
	if slices.Contains(mt.m[name], id) {
		return nil
	}
	mt.m[name] = append(mt.m[name], id)
	return mt.save()
}

// remove forgets a mount ID (unknown is a no-op).
func (mt *mountTable) remove(name, id string) error {
	mt.mu.Lock()
	defer mt.mu.Unlock()
	i := slices.Index(mt.m[name], id)
	if i < 0 {
		return nil
	}
	mt.m[name] = slices.Delete(mt.m[name], i, i+1)
	if len(mt.m[name]) == 0 {
		delete(mt.m, name)
	}
	return mt.save()
}

func (mt *mountTable) count(name string) int { return len(mt.ids(name)) }

func (mt *mountTable) ids(name string) []string {
	mt.mu.Lock()
	defer mt.mu.Unlock()
	return slices.Clone(mt.m[name])
}

func (mt *mountTable) names() []string {
	mt.mu.Lock()
	defer mt.mu.Unlock()
	return sortedKeys(mt.m)
}

// save writes the table atomically, so a crash leaves the old table or
// the new one.
func (mt *mountTable) save() error {
	if err := statefile.Save(mt.file, mt.m); err != nil {
		return fmt.Errorf("volume mounts: %w", err)
	}
	return nil
}
