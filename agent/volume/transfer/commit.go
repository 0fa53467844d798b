package transfer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// commitResult is a successful commit's answer.
type commitResult struct {
	Entries int   `json:"entries"`
	Bytes   int64 `json:"bytes"`
}

// serveCommit verifies the staging copy against the sender's manifest and
// switches it in as the live directory.
func (r *Receiver) serveCommit(w http.ResponseWriter, req *http.Request) {
	s, ok := r.begin(w, req)
	if !ok {
		return
	}
	defer s.unlock()
	rc := http.NewResponseController(w)
	body := &touchReader{r: http.MaxBytesReader(w, req.Body, maxManifestBody), touch: readDeadline(rc)}
	want, err := decodeManifest(body)
	_ = rc.SetReadDeadline(time.Time{}) // read: checking may take long
	if err == nil {
		err = checkCommitManifest(want)
	}
	if err != nil {
		writeError(w, &httpError{status: http.StatusBadRequest, msg: "commit: " + err.Error()})
		return
	}
	start := time.Now()
	res, err := r.commit(req.Context(), s, want)
	if err != nil {
		r.log().Warn("transfer: commit refused", "volume", s.vol, "err", err)
		writeError(w, err)
		return
	}
	r.log().Info("transfer: staging copy switched in", "volume", s.vol, "live", s.live,
		"entries", res.Entries, "bytes", res.Bytes, "took", time.Since(start))
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(res)
}

// touchReader calls touch before every read.
type touchReader struct {
	r     io.Reader
	touch func()
}

func (t *touchReader) Read(p []byte) (int, error) {
	t.touch()
	return t.r.Read(p)
}

// checkCommitManifest refuses a manifest that cannot describe a tree: no
// root, or files without their chunk hashes.
func checkCommitManifest(m *manifest) error {
	if m.get(".") == nil {
		return errors.New(`manifest without the root "."`)
	}
	for _, e := range m.entries {
		if e.Type == typeFile && len(e.Chunks) != numChunks(e.Size) {
			return fmt.Errorf("%s: no chunk hashes", e.Path)
		}
	}
	return nil
}

// commit checks every entry of the staging copy (type, mode, owner, size,
// symlink target, content, file times) against want, makes it durable,
// then switches it in. On any difference nothing is switched, the
// staging manifest is replaced by what is really there (so the next round
// repairs it) and the error names the first bad path.
func (r *Receiver) commit(ctx context.Context, s *session, want *manifest) (commitResult, error) {
	if _, err := r.manifestOf(ctx, s); err != nil { // recovers after a crash, drops an untrusted copy
		return commitResult{}, err
	}
	if _, err := os.Lstat(s.staging); errors.Is(err, fs.ErrNotExist) {
		return commitResult{}, &httpError{status: http.StatusNotFound, msg: "no staging copy of volume " + s.vol + ": nothing to commit"}
	}
	specials := map[string]bool{}
	// Files written and checked chunk by chunk by the rounds, untouched
	// since, are taken at their recorded hashes; any other file is read
	// again. A final sync thus costs what changed, not the volume's size.
	recorded := s.st.man
	sc := scanner{hash: true, skipped: func(rel string, _ *unix.Stat_t) { specials[rel] = true },
		known: func(rel string, st *unix.Stat_t) (hashList, bool) {
			if e := recorded.get(rel); e.untouchedSince(st) {
				return e.Chunks, true
			}
			return nil, false
		}}
	got, err := sc.scan(ctx, s.staging)
	if err != nil {
		return commitResult{}, fmt.Errorf("verify staging copy: %w", err)
	}
	if bad := firstDifference(want, got, specials); bad != "" {
		r.removeSpecials(s, specials)
		s.st.man = got
		if err := got.save(s.manifestPath()); err != nil {
			r.log().Warn("transfer: save staging manifest", "volume", s.vol, "err", err)
		}
		return commitResult{}, &httpError{status: http.StatusConflict, msg: "staging copy differs from the source: " + bad}
	}
	if err := fixDirTimes(s.staging, want, got); err != nil {
		return commitResult{}, fmt.Errorf("verify staging copy: %w", err)
	}
	if err := syncFS(s.staging); err != nil {
		return commitResult{}, diskError("syncing", "the staging copy", err)
	}
	if err := r.switchIn(s, got); err != nil {
		return commitResult{}, err
	}
	res := commitResult{Entries: len(got.entries)}
	for _, e := range got.entries {
		res.Bytes += e.Size
	}
	return res, nil
}

// removeSpecials removes the devices, fifos and sockets found in a
// staging copy: no round writes them, no source has them in its manifest,
// so no round would delete them either.
func (r *Receiver) removeSpecials(s *session, specials map[string]bool) {
	if len(specials) == 0 {
		return
	}
	t, err := openTree(s.staging)
	if err != nil {
		return
	}
	defer t.close()
	for rel := range specials {
		dirfd, name, err := t.parent(rel, false)
		if err == nil {
			err = unix.Unlinkat(dirfd, name, 0)
		}
		if err != nil {
			r.log().Warn("transfer: remove special file from staging", "volume", s.vol, "path", rel, "err", err)
		}
	}
}

// firstDifference returns "PATH: what differs" for the first path (in
// tree order) where got differs from want, or "" when it does not.
func firstDifference(want, got *manifest, specials map[string]bool) string {
	paths := make([]string, 0, len(want.entries)+len(specials))
	for p := range want.entries {
		paths = append(paths, p)
	}
	for p := range got.entries {
		if want.entries[p] == nil {
			paths = append(paths, p)
		}
	}
	for p := range specials {
		paths = append(paths, p)
	}
	slices.SortFunc(paths, comparePaths)
	for _, p := range paths {
		if specials[p] {
			return p + ": a device, fifo or socket, not in the source"
		}
		if d := difference(want.get(p), got.get(p)); d != "" {
			return p + ": " + d
		}
	}
	return ""
}

// difference says how a staging entry differs from the source's.
func difference(w, g *entry) string {
	switch {
	case g == nil:
		return "missing"
	case w == nil:
		return "not in the source"
	case w.Type != g.Type:
		return fmt.Sprintf("type %s, want %s", typeName(g.Type), typeName(w.Type))
	case w.Type != typeSymlink && w.Mode != g.Mode:
		return fmt.Sprintf("mode %04o, want %04o", g.Mode, w.Mode)
	case w.UID != g.UID || w.GID != g.GID:
		return fmt.Sprintf("owner %d:%d, want %d:%d", g.UID, g.GID, w.UID, w.GID)
	case w.Size != g.Size:
		return fmt.Sprintf("size %d, want %d", g.Size, w.Size)
	case w.Target != g.Target:
		return fmt.Sprintf("symlink to %q, want %q", g.Target, w.Target)
	}
	for i := range w.Chunks {
		if w.Chunks[i] != g.Chunks[i] {
			return fmt.Sprintf("checksum mismatch in bytes %d-%d", int64(i)*ChunkSize, int64(i)*ChunkSize+int64(chunkLen(i, w.Size))-1)
		}
	}
	if w.Type != typeDir && w.MTime != g.MTime {
		return "modification time differs"
	}
	return ""
}

func typeName(t string) string {
	switch t {
	case typeFile:
		return "file"
	case typeDir:
		return "directory"
	}
	return "symlink"
}

// syncFS makes everything written to dir's file system durable: one
// syncfs(2) rather than an fsync per file, which on a journaling file
// system would commit the journal once per file.
func syncFS(dir string) error {
	fd, err := unix.Open(dir, dirFlags, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Syncfs(fd)
}

// fixDirTimes sets the times of directories to the source's where they
// differ (directory times move whenever an entry is added or removed, so
// they are set rather than checked).
func fixDirTimes(staging string, want, got *manifest) error {
	var dirs []*entry
	for _, e := range want.entries {
		if e.Type == typeDir && got.get(e.Path).MTime != e.MTime {
			dirs = append(dirs, e)
		}
	}
	if len(dirs) == 0 {
		return nil
	}
	slices.SortFunc(dirs, func(x, y *entry) int { return depth(y.Path) - depth(x.Path) })
	t, err := openTree(staging)
	if err != nil {
		return err
	}
	defer t.close()
	for _, e := range dirs {
		if err := t.setTimes(e.Path, e.MTime); err != nil {
			return fmt.Errorf("set times of %s: %w", e.Path, err)
		}
		got.get(e.Path).MTime = e.MTime
	}
	return nil
}

// switchIn makes the verified staging copy the live directory. The
// manifest files go first: should the agent die between the steps, a
// staging directory without a manifest is dropped, never trusted.
func (r *Receiver) switchIn(s *session, got *manifest) error {
	for _, p := range []string{s.manifestPath(), s.journalPath()} {
		if err := removeIfExists(p); err != nil {
			return fmt.Errorf("remove %s: %w", p, err)
		}
	}
	s.st.man = nil
	old, err := renameIn(s.staging, s.live)
	if err != nil {
		s.st.man = got // still true: put it back so a retry need not re-read
		if serr := got.save(s.manifestPath()); serr != nil {
			r.log().Warn("transfer: save staging manifest", "volume", s.vol, "err", serr)
		}
		return fmt.Errorf("switch %s in as %s: %w", s.staging, s.live, err)
	}
	if old != "" {
		r.removeAside(s, old)
	}
	return nil
}

// removeAside removes a stale live copy after the commit has answered:
// removing a big tree takes long, and the volume's writer waits for the
// commit. The copy is first renamed out of the staging path, so that the
// next round does not find it there.
func (r *Receiver) removeAside(s *session, old string) {
	trash := s.staging + ".old-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	if err := os.Rename(old, trash); err != nil {
		// Where it is, it must go before the next round: remove it now.
		if err := os.RemoveAll(old); err != nil {
			r.log().Warn("transfer: remove the stale live copy", "volume", s.vol, "path", old, "err", err)
		}
		return
	}
	go func() {
		if err := os.RemoveAll(trash); err != nil {
			r.log().Warn("transfer: remove the stale live copy", "volume", s.vol, "path", trash, "err", err)
		}
	}()
}

// renameIn renames staging to live in one step. A live directory already
// there (a stale copy) is exchanged with staging atomically where the file
// system can (renameat2 RENAME_EXCHANGE), or else renamed aside first; its
// path is returned for the caller to remove.
func renameIn(staging, live string) (old string, err error) {
	if err := os.MkdirAll(filepath.Dir(live), 0o755); err != nil {
		return "", err
	}
	err = unix.Renameat2(unix.AT_FDCWD, staging, unix.AT_FDCWD, live, unix.RENAME_EXCHANGE)
	switch {
	case err == nil:
		old = staging // the stale copy now sits where staging was
	case errors.Is(err, unix.ENOENT): // no live directory yet
		err = os.Rename(staging, live)
	case errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP):
		old = live + ".old-" + strconv.FormatInt(time.Now().UnixNano(), 36)
		if err = os.Rename(live, old); errors.Is(err, fs.ErrNotExist) {
			old, err = "", nil
		}
		if err == nil {
			err = os.Rename(staging, live)
		}
	}
	if err != nil {
		return "", err
	}
	for _, dir := range []string{filepath.Dir(staging), filepath.Dir(live)} {
		if err := syncDir(dir); err != nil {
			return old, err
		}
	}
	return old, nil
}
