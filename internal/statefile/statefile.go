// Package statefile keeps a daemon's small local state as a JSON file,
// written atomically (aside, then renamed), so that a crash leaves the old
// state or the new, never half of one.
package statefile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/google/renameio/v2"
)

// Save writes v to file as JSON, readable by root only.
func Save(file string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", file, err)
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return fmt.Errorf("save %s: %w", file, err)
	}
	if err := renameio.WriteFile(file, b, 0o600); err != nil {
		return fmt.Errorf("save %s: %w", file, err)
	}
	return nil
}

// Load reads file into v; a file that does not exist leaves v alone and
// is no error.
func Load(file string, v any) error {
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", file, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("read %s: %w", file, err)
	}
	return nil
}
