package main

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// maxKeyLen caps key length well below NAME_MAX (255) because each key is
// a file name.
const maxKeyLen = 200

// tempPrefix names in-progress writes. '~' can never appear in a valid key,
// so a temp file can never be mistaken for (or collide with) a key's file,
// and leftovers from a crash can be removed safely on start.
const tempPrefix = "~tmp-"

// Errors returned by the store; the HTTP layer maps them to status codes.
var (
	// errBadKey rejects keys that are not safe, portable file names.
	errBadKey = errors.New(`invalid key: want 1-200 characters from [A-Za-z0-9._-], not "." or ".."`)
	// errNotFound reports a key with no value, so callers can answer 404.
	errNotFound = errors.New("key not found")
	// errNotInteger reports an incr on a value that is not a decimal integer.
	errNotInteger = errors.New("current value is not a decimal integer")
	// errOverflow reports an incr that would exceed the int64 range.
	errOverflow = errors.New("counter would overflow int64")
)

// store keeps one file per key in dir. Every mutation is made durable
// (temp file, fsync, rename, fsync dir) before it returns, so an
// acknowledged write survives a crash or a container being killed.
type store struct {
	dir string
	// mu serializes mutations so incr's read-modify-write is atomic.
	// Reads need no lock: rename makes each value change atomic.
	mu sync.Mutex
}

// validateKey enforces the key alphabet so a key is always a plain file name
// inside the data dir (no separators, no "." or "..", no temp prefix).
func validateKey(key string) error {
	if len(key) == 0 || len(key) > maxKeyLen || key == "." || key == ".." {
		return errBadKey
	}
	for _, c := range []byte(key) {
		if !isKeyByte(c) {
			return errBadKey
		}
	}
	return nil
}

// isKeyByte reports whether c belongs to the key alphabet [A-Za-z0-9._-].
func isKeyByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return c == '.' || c == '_' || c == '-'
}

// openStore creates dir if needed, removes temp files left by an earlier
// crash and checks that the directory is writable, so the server only starts
// (and reports healthy) with a usable data dir.
func openStore(dir string) (*store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	s := &store{dir: dir}
	if err := s.removeTemps(); err != nil {
		return nil, err
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	return s, nil
}

// removeTemps deletes leftover temp files; they hold writes that were never
// acknowledged, so dropping them loses nothing.
func (s *store) removeTemps() error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("list data dir: %w", err)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), tempPrefix) {
			continue
		}
		if err := os.Remove(filepath.Join(s.dir, e.Name())); err != nil {
			return fmt.Errorf("remove leftover temp file: %w", err)
		}
	}
	return nil
}

// check verifies the data dir is still usable by creating and removing a
// temp file; /healthz uses it so a read-only or vanished volume is reported.
func (s *store) check() error {
	f, err := os.CreateTemp(s.dir, tempPrefix+"check-*")
	if err != nil {
		return fmt.Errorf("data dir %s not writable: %w", s.dir, err)
	}
	f.Close()
	if err := os.Remove(f.Name()); err != nil {
		return fmt.Errorf("data dir %s: remove probe file: %w", s.dir, err)
	}
	return nil
}

// path returns the file holding key; callers must have validated key.
func (s *store) path(key string) string {
	return filepath.Join(s.dir, key)
}

// get returns the value of key, or an error wrapping errNotFound.
func (s *store) get(key string) ([]byte, error) {
	if err := validateKey(key); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(s.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("get %s: %w", key, errNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	return b, nil
}

// put durably stores val under key.
func (s *store) put(key string, val []byte) error {
	if err := validateKey(key); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.write(key, val)
}

// del durably removes key, or returns an error wrapping errNotFound.
func (s *store) del(key string) error {
	if err := validateKey(key); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	err := os.Remove(s.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", key, errNotFound)
	}
	if err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return s.syncDir()
}

// incr adds one to the decimal integer stored under key (absent counts as
// 0), stores the result durably and returns it.
func (s *store) incr(key string) (int64, error) {
	if err := validateKey(key); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.counter(key)
	if err != nil {
		return 0, err
	}
	if n == math.MaxInt64 {
		return 0, fmt.Errorf("incr %s: %w", key, errOverflow)
	}
	n++
	if err := s.write(key, []byte(strconv.FormatInt(n, 10))); err != nil {
		return 0, err
	}
	return n, nil
}

// counter reads key as a decimal integer, treating an absent key as 0.
// Surrounding whitespace is tolerated so values written with a trailing
// newline (echo 5 | curl -T -) still count.
func (s *store) counter(key string) (int64, error) {
	b, err := s.get(key)
	if errors.Is(err, errNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("incr %s: %w", key, errNotInteger)
	}
	return n, nil
}

// write atomically and durably replaces key's file with val: temp file in
// the same dir, fsync, rename over the key's file, fsync the dir. Callers
// must hold s.mu.
func (s *store) write(key string, val []byte) (err error) {
	f, err := os.CreateTemp(s.dir, tempPrefix+"*")
	if err != nil {
		return fmt.Errorf("put %s: create temp file: %w", key, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := writeAndSync(f, val); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if err := os.Rename(f.Name(), s.path(key)); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return s.syncDir()
}

// writeAndSync writes val to f, flushes it to stable storage and closes it.
func writeAndSync(f *os.File, val []byte) error {
	if _, err := f.Write(val); err != nil {
		return fmt.Errorf("write temp file: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync temp file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close temp file: %w", err)
	}
	return nil
}

// syncDir fsyncs the data dir so a rename or remove is itself durable.
func (s *store) syncDir() error {
	d, err := os.Open(s.dir)
	if err != nil {
		return fmt.Errorf("open data dir for fsync: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync data dir: %w", err)
	}
	return nil
}
