package transfer

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// Entry types.
const (
	typeFile    = "f"
	typeDir     = "d"
	typeSymlink = "l"
)

// entry is one path of a tree as a manifest records it: what a sender
// wants there, or what a receiver knows is there.
type entry struct {
	Path   string   `json:"p"`           // slash-separated, relative to the tree; "." is the tree's root
	Type   string   `json:"t"`           // typeFile, typeDir or typeSymlink
	Mode   uint32   `json:"m"`           // permission, setuid, setgid and sticky bits (st_mode & 07777)
	UID    uint32   `json:"u"`           // owner
	GID    uint32   `json:"g"`           // group
	Size   int64    `json:"s,omitempty"` // regular files only
	MTime  int64    `json:"mt"`          // modification time, Unix nanoseconds
	Target string   `json:"l,omitempty"` // symlinks only
	Chunks hashList `json:"c,omitempty"` // regular files only: one hash per chunk, unknown where not known
	// Partial marks a receiver's file whose last write was cut short: its
	// known chunks are right but its metadata may not be, so a sender never
	// skips it.
	Partial bool `json:"x,omitempty"`
	// Ino and CTime are a receiver's note of the file as it left it
	// after writing and checking every chunk: while both are unchanged
	// nobody wrote the file since, so a commit may trust the recorded
	// chunk hashes instead of reading the whole copy again (the test
	// rsync and our sender's cache make too; ctime cannot be set back).
	Ino   uint64 `json:"i,omitempty"`
	CTime int64  `json:"ct,omitempty"`
}

// untouchedSince reports whether the file st describes is the one e
// recorded and was not written since: same inode, ctime, size, mtime and
// mode, and e whole.
func (e *entry) untouchedSince(st *unix.Stat_t) bool {
	return e != nil && e.Type == typeFile && !e.Partial && e.Ino != 0 &&
		e.Ino == st.Ino && e.CTime == st.Ctim.Nano() && e.Size == st.Size &&
		e.MTime == st.Mtim.Nano() && e.Mode == st.Mode&0o7777
}

// sameMeta reports whether two entries agree on everything but content.
func sameMeta(a, b *entry) bool {
	return a.Type == b.Type && a.Mode == b.Mode && a.UID == b.UID && a.GID == b.GID &&
		a.Size == b.Size && a.MTime == b.MTime && a.Target == b.Target
}

// entryFromStat fills an entry's metadata from an lstat.
func entryFromStat(rel string, st *unix.Stat_t) *entry {
	e := &entry{Path: rel, Mode: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid, MTime: st.Mtim.Nano()}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		e.Type, e.Size = typeFile, st.Size
	case unix.S_IFDIR:
		e.Type = typeDir
	case unix.S_IFLNK:
		e.Type = typeSymlink
	}
	return e
}

// manifest is a tree's entries by path.
type manifest struct {
	entries map[string]*entry
}

func newManifest() *manifest { return &manifest{entries: map[string]*entry{}} }

func (m *manifest) get(rel string) *entry { return m.entries[rel] }
func (m *manifest) put(e *entry)          { m.entries[e.Path] = e }

// deleteTree drops rel and everything under it.
func (m *manifest) deleteTree(rel string) {
	delete(m.entries, rel)
	prefix := rel + "/"
	if rel == "." {
		prefix = ""
	}
	for p := range m.entries {
		if strings.HasPrefix(p, prefix) {
			delete(m.entries, p)
		}
	}
}

// sorted returns the entries by path; a directory sorts before what it
// holds ("a" < "a/b"), so applying them in this order never meets a
// missing parent.
func (m *manifest) sorted() []*entry {
	out := make([]*entry, 0, len(m.entries))
	for _, e := range m.entries {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b *entry) int { return comparePaths(a.Path, b.Path) })
	return out
}

// comparePaths orders paths with the root first, then as strings.
func comparePaths(a, b string) int {
	switch {
	case a == b:
		return 0
	case a == ".":
		return -1
	case b == ".":
		return 1
	}
	return strings.Compare(a, b)
}

// manifestHeader opens a manifest stream, on the wire and on disk.
type manifestHeader struct {
	Version int   `json:"v"`
	Chunk   int   `json:"chunk"`
	Entries int   `json:"entries"`
	Bytes   int64 `json:"bytes"`
}

const manifestVersion = 1

// encode writes the manifest as a header line and one JSON line per entry.
func (m *manifest) encode(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	enc := json.NewEncoder(bw)
	h := manifestHeader{Version: manifestVersion, Chunk: ChunkSize, Entries: len(m.entries)}
	for _, e := range m.entries {
		h.Bytes += e.Size
	}
	if err := enc.Encode(h); err != nil {
		return err
	}
	for _, e := range m.sorted() {
		if err := enc.Encode(e); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// decodeManifest reads what encode wrote, checking every entry (a
// manifest may come from the network).
func decodeManifest(r io.Reader) (*manifest, error) {
	dec := json.NewDecoder(bufio.NewReaderSize(r, 256<<10))
	var h manifestHeader
	if err := dec.Decode(&h); err != nil {
		return nil, fmt.Errorf("manifest header: %w", err)
	}
	if h.Version != manifestVersion || h.Chunk != ChunkSize {
		return nil, fmt.Errorf("manifest version %d with %d-byte chunks, want version %d with %d-byte chunks",
			h.Version, h.Chunk, manifestVersion, ChunkSize)
	}
	m := newManifest()
	for {
		e := new(entry)
		err := dec.Decode(e)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("manifest entry %d: %w", len(m.entries)+1, err)
		}
		if err := checkEntry(e); err != nil {
			return nil, err
		}
		if m.entries[e.Path] != nil {
			return nil, fmt.Errorf("manifest: %q twice", e.Path)
		}
		m.put(e)
	}
	if len(m.entries) != h.Entries {
		return nil, fmt.Errorf("manifest: %d entries, header says %d (cut short?)", len(m.entries), h.Entries)
	}
	return m, nil
}

// checkEntry refuses an entry that is not self-consistent.
func checkEntry(e *entry) error {
	if err := checkPath(e.Path); err != nil {
		return err
	}
	if e.Mode&^0o7777 != 0 {
		return fmt.Errorf("%s: bad mode %o", e.Path, e.Mode)
	}
	if e.Path == "." && e.Type != typeDir {
		return errors.New(`".": the root must be a directory`)
	}
	switch e.Type {
	case typeFile:
		if e.Size < 0 || e.Size > maxFileSize {
			return fmt.Errorf("%s: bad size %d", e.Path, e.Size)
		}
		if e.Chunks != nil && len(e.Chunks) != numChunks(e.Size) {
			return fmt.Errorf("%s: %d chunk hashes for %d bytes", e.Path, len(e.Chunks), e.Size)
		}
	case typeDir:
	case typeSymlink:
		if e.Target == "" || len(e.Target) > maxPath || strings.IndexByte(e.Target, 0) >= 0 {
			return fmt.Errorf("%s: bad symlink target", e.Path)
		}
	default:
		return fmt.Errorf("%s: unknown type %q", e.Path, e.Type)
	}
	return nil
}

// maxFileSize bounds a file's size (16 TiB, ext4's limit) so a hostile
// header cannot make a receiver allocate a huge chunk list.
const maxFileSize = 16 << 40

// save writes the manifest to path atomically (temporary file, fsync,
// rename, fsync of the directory): a crash leaves the old or the new one.
func (m *manifest) save(path string) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("save manifest: %w", err)
	}
	defer os.Remove(f.Name()) // after a successful rename, a no-op
	err = m.encode(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		return fmt.Errorf("save manifest %s: %w", path, err)
	}
	return nil
}

// loadManifest reads a manifest saved by save.
func loadManifest(path string) (*manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m, err := decodeManifest(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// syncDir fsyncs a directory so a rename or removal in it is durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// journalRecord is one change to a receiver's manifest since its last
// save: a file finished (Put) or a path removed (Del).
type journalRecord struct {
	Put *entry `json:"put,omitempty"`
	Del string `json:"del,omitempty"`
}

// journal appends a round's manifest changes to a file next to the
// manifest, so an agent that dies mid-round keeps what it received. A
// record is written only after the data it describes (buffered writes
// keep that order), and recovery checks every record against the disk.
type journal struct {
	f   *os.File
	w   *bufio.Writer
	enc *json.Encoder
}

func createJournal(path string) (*journal, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create journal: %w", err)
	}
	w := bufio.NewWriterSize(f, 64<<10)
	return &journal{f: f, w: w, enc: json.NewEncoder(w)}, nil
}

func (j *journal) put(e *entry) error   { return j.enc.Encode(journalRecord{Put: e}) }
func (j *journal) del(rel string) error { return j.enc.Encode(journalRecord{Del: rel}) }
func (j *journal) flush() error         { return j.w.Flush() }

// close flushes and closes the journal file (it stays on disk).
func (j *journal) close() error {
	err := j.w.Flush()
	if cerr := j.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// replayJournal applies a journal's records to m. A torn last record (the
// agent died while writing it) ends the replay: the disk check that
// follows recovery finds whatever it described.
func replayJournal(m *manifest, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	dec := json.NewDecoder(bufio.NewReader(f))
	for {
		var r journalRecord
		if dec.Decode(&r) != nil { // io.EOF, or a torn tail
			return nil
		}
		switch {
		case r.Put != nil && checkEntry(r.Put) == nil:
			m.put(r.Put)
		case r.Del != "" && checkPath(r.Del) == nil:
			m.deleteTree(r.Del)
		}
	}
}
