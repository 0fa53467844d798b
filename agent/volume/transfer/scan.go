package transfer

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/zeebo/xxh3"
	"golang.org/x/sys/unix"
)

// scanner walks a tree into a manifest, without following symlinks.
type scanner struct {
	// hash fills the chunk hashes of regular files.
	hash bool
	// known, when set, returns a file's chunk hashes when they are known
	// without reading it (a sender's cache, a receiver's manifest).
	known func(rel string, st *unix.Stat_t) (hashList, bool)
	// hashed, when set, hears of every file read whose stat did not change
	// while it was read.
	hashed func(rel string, st *unix.Stat_t, chunks hashList)
	// skipped, when set, hears of what is neither a regular file, a
	// directory nor a symlink (devices, fifos, sockets): not in the manifest.
	skipped func(rel string, st *unix.Stat_t)
	// listed, when set and the scanner does not hash, hears of every
	// regular file with its stat.
	listed func(rel string, st *unix.Stat_t)

	bytesRead int64
	buf       []byte
}

// scan returns the manifest of the tree at path.
func (s *scanner) scan(ctx context.Context, path string) (*manifest, error) {
	t, err := openTree(path)
	if err != nil {
		return nil, err
	}
	defer t.close()
	var st unix.Stat_t
	if err := unix.Fstat(int(t.root.Fd()), &st); err != nil {
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	m := newManifest()
	m.put(entryFromStat(".", &st))
	if err := s.scanDir(ctx, m, t.root, "."); err != nil {
		return nil, err
	}
	return m, nil
}

// scanDir adds what directory d (at rel) holds to m, recursively.
func (s *scanner) scanDir(ctx context.Context, m *manifest, d *os.File, rel string) error {
	names, err := d.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("read directory %s: %w", rel, err)
	}
	slices.Sort(names)
	fd := int(d.Fd())
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.scanEntry(ctx, m, fd, name, joinPath(rel, name)); err != nil {
			return err
		}
	}
	return nil
}

// scanEntry adds name in dirfd (at rel) to m. A name that vanished since
// the directory was read is left out: the tree is live.
func (s *scanner) scanEntry(ctx context.Context, m *manifest, dirfd int, name, rel string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("stat %s: %w", rel, err)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		return s.scanFile(m, dirfd, name, rel, &st)
	case unix.S_IFDIR:
		m.put(entryFromStat(rel, &st))
		fd, err := openDirAt(dirfd, name)
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		if err != nil {
			return dirError(rel, err)
		}
		d := os.NewFile(uintptr(fd), rel)
		defer d.Close()
		return s.scanDir(ctx, m, d, rel)
	case unix.S_IFLNK:
		target, err := readlinkAt(dirfd, name)
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("readlink %s: %w", rel, err)
		}
		e := entryFromStat(rel, &st)
		e.Target = target
		m.put(e)
	default:
		if s.skipped != nil {
			s.skipped(rel, &st)
		}
	}
	return nil
}

// scanFile adds regular file name in dirfd to m, with its chunk hashes
// when the scanner hashes.
func (s *scanner) scanFile(m *manifest, dirfd int, name, rel string, st *unix.Stat_t) error {
	if !s.hash {
		if s.listed != nil {
			s.listed(rel, st)
		}
		m.put(entryFromStat(rel, st))
		return nil
	}
	if s.known != nil {
		if chunks, ok := s.known(rel, st); ok {
			e := entryFromStat(rel, st)
			e.Chunks = chunks
			m.put(e)
			return nil
		}
	}
	e, err := s.readFile(dirfd, name, rel)
	if errors.Is(err, errVanished) {
		return nil
	}
	if err != nil {
		return err
	}
	m.put(e)
	return nil
}

// errVanished means a file went away (or stopped being a regular file)
// between being listed and being opened.
var errVanished = errors.New("vanished")

// readFile reads and hashes regular file name in dirfd. The entry's
// metadata comes from the open file, so it matches the bytes hashed.
func (s *scanner) readFile(dirfd int, name, rel string) (*entry, error) {
	f, err := openRead(dirfd, name)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ELOOP) {
		return nil, errVanished
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", rel, err)
	}
	defer f.Close()
	var before, after unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &before); err != nil {
		return nil, fmt.Errorf("stat %s: %w", rel, err)
	}
	if before.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, errVanished
	}
	chunks, err := s.readChunks(f, before.Size)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", rel, err)
	}
	if err := unix.Fstat(int(f.Fd()), &after); err == nil && sameStat(&before, &after) && s.hashed != nil {
		s.hashed(rel, &before, chunks)
	}
	e := entryFromStat(rel, &before)
	e.Chunks = chunks
	return e, nil
}

// readChunks hashes a file of size bytes chunk by chunk. Chunks the file
// no longer has (it shrank while being read) stay unknown.
func (s *scanner) readChunks(f *os.File, size int64) (hashList, error) {
	if s.buf == nil {
		s.buf = make([]byte, ChunkSize)
	}
	chunks := make(hashList, numChunks(size))
	for i := range chunks {
		b := s.buf[:chunkLen(i, size)]
		n, err := f.ReadAt(b, int64(i)*ChunkSize)
		s.bytesRead += int64(n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		chunks[i] = hashChunk(b)
	}
	return chunks, nil
}

// openRead opens regular file name in dirfd for reading: never through a
// symlink, never blocking on a fifo swapped in, without touching its
// access time where allowed (the source is not modified, not even atime).
func openRead(dirfd int, name string) (*os.File, error) {
	fd, err := unix.Openat(dirfd, name, readFlags|unix.O_NOATIME, 0)
	if errors.Is(err, unix.EPERM) {
		fd, err = unix.Openat(dirfd, name, readFlags, 0)
	}
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}

// sameStat reports whether a file looks unchanged between two stats.
func sameStat(a, b *unix.Stat_t) bool {
	return a.Dev == b.Dev && a.Ino == b.Ino && a.Size == b.Size &&
		a.Mtim == b.Mtim && a.Ctim == b.Ctim
}

// TreeChecksum returns a checksum of the tree at dir: every path with its
// type, mode, owner, size, symlink target and file contents (not times,
// which using a directory changes). Equal trees have equal checksums, so
// a caller can check a move end to end; symlinks are not followed and
// devices, fifos and sockets are left out, as a transfer leaves them out.
func TreeChecksum(dir string) (string, error) {
	s := scanner{hash: true}
	m, err := s.scan(context.Background(), dir)
	if err != nil {
		return "", fmt.Errorf("checksum %s: %w", dir, err)
	}
	h := xxh3.New128()
	var num [8]byte
	for _, e := range m.sorted() {
		_, _ = io.WriteString(h, e.Path+"\x00"+e.Type+"\x00"+e.Target+"\x00")
		for _, v := range []uint64{uint64(e.Mode), uint64(e.UID), uint64(e.GID), uint64(e.Size)} {
			binary.LittleEndian.PutUint64(num[:], v)
			_, _ = h.Write(num[:])
		}
		if e.Type == typeFile {
			sum := fileSum(e.Chunks)
			_, _ = h.Write(sum[:])
		}
	}
	sum := h.Sum128().Bytes()
	return hex.EncodeToString(sum[:]), nil
}
