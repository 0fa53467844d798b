package transfer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// serveRound applies one round's stream to the staging copy, answering
// with events as it goes (full duplex: resend requests travel back while
// the sender is still sending).
func (r *Receiver) serveRound(w http.ResponseWriter, req *http.Request) {
	rc := http.NewResponseController(w)
	if err := rc.EnableFullDuplex(); err != nil {
		writeError(w, fmt.Errorf("transfer rounds need a full-duplex HTTP server: %w", err))
		return
	}
	// Close the body before returning, after the last event: left for the
	// server to close, a full-duplex body trips golang/go#68560 (a
	// background read racing the next request's). Closing reads what is
	// left of it, which a sender told of the end sends at once.
	defer func() {
		_ = rc.SetReadDeadline(time.Now().Add(10 * time.Second))
		req.Body.Close()
	}()
	s, ok := r.begin(w, req)
	if !ok {
		return
	}
	defer s.unlock()
	ev := newEventStream(w)
	m, err := r.manifestOf(req.Context(), s)
	if err != nil {
		ev.fail(err)
		return
	}
	a, err := newApplier(s, m, ev, r.log())
	if err != nil {
		ev.fail(err)
		return
	}
	body := newReadAhead(req.Body)
	defer body.Close()
	a.fr = newFrameReader(body)
	a.fr.onFrame = readDeadline(rc)
	a.fr.onFrame()
	start := time.Now()
	err = a.run()
	if cerr := a.close(s); err == nil {
		err = cerr
	}
	if err != nil {
		r.log().Warn("transfer: round failed", "volume", s.vol, "err", err)
		ev.fail(err)
		return
	}
	r.log().Info("transfer: round applied", "volume", s.vol, "files", a.done.Files,
		"bytes", a.done.Bytes, "deleted", a.done.Deleted, "bad", a.done.Bad, "took", time.Since(start))
	_ = ev.send(event{Done: &a.done})
}

// readDeadline returns a function that pushes the request's read deadline
// idleTimeout ahead, at most once a second: a sender that stops sending
// mid-body is given up on. (Only while reading the body: once it is read,
// net/http's background read would take an expired deadline for a gone
// client and cancel the request.)
func readDeadline(rc *http.ResponseController) func() {
	var last time.Time
	return func() {
		if now := time.Now(); now.Sub(last) > time.Second {
			last = now
			_ = rc.SetReadDeadline(now.Add(idleTimeout))
		}
	}
}

// applier applies a round's frames to a staging copy and keeps its
// manifest true to the disk at every step: a chunk is recorded only once
// written, a file's metadata only once set.
type applier struct {
	log *slog.Logger
	t   *tree
	m   *manifest
	j   *journal
	ev  *eventStream
	fr  *frameReader
	// dirs holds the directory entries received; their mode and times are
	// set when the round ends, after everything inside them was written.
	dirs map[string]*entry
	// touched holds the directories whose contents changed, whose times
	// are set again when the round ends.
	touched map[string]bool
	done    doneEvent
	wb      *writeback
}

// newApplier makes the staging directory if needed and opens it and a
// fresh journal.
func newApplier(s *session, m *manifest, ev *eventStream, log *slog.Logger) (*applier, error) {
	if err := os.MkdirAll(s.staging, 0o700); err != nil {
		return nil, diskError("creating", "staging directory", err)
	}
	t, err := openTree(s.staging)
	if err != nil {
		return nil, err
	}
	j, err := createJournal(s.journalPath())
	if err != nil {
		t.close()
		return nil, diskError("creating", "journal", err)
	}
	a := &applier{log: log.With("volume", s.vol), t: t, m: m, j: j, ev: ev,
		dirs: map[string]*entry{}, touched: map[string]bool{}, wb: startWriteback()}
	t.onMkdir = func(rel string) { a.touched[parentOf(rel)] = true }
	return a, nil
}

// close finishes the directories, saves the manifest and drops the
// journal. It runs after every round, cut short or not, so the manifest
// on disk always describes the staging copy.
func (a *applier) close(s *session) error {
	a.wb.stop()
	a.finishDirs()
	a.t.close()
	jerr := a.j.close()
	if err := a.m.save(s.manifestPath()); err != nil {
		return diskError("saving", "manifest", err)
	}
	if jerr == nil {
		jerr = removeIfExists(s.journalPath())
	}
	if jerr != nil {
		a.log.Warn("transfer: journal", "err", jerr) // the next load checks the disk again
	}
	return nil
}

// run applies frames until the end of the round.
func (a *applier) run() error {
	for {
		f, err := a.fr.next()
		if err != nil {
			return readError(err)
		}
		switch f.typ {
		case frameEnd:
			return nil
		case frameFlush:
			err = a.flush(f.idx)
		case frameDelete:
			err = a.delete(f.payload)
		case frameEntry:
			err = a.entry(f.payload)
		default:
			err = protoErrorf("unexpected frame %q", f.typ)
		}
		if err != nil {
			return err
		}
	}
}

// readError describes a failed read of the stream.
func readError(err error) error {
	var pe *protoError
	if errors.As(err, &pe) {
		return err
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return protoErrorf("stream ended before the end of the round")
	}
	return fmt.Errorf("read stream: %w", err)
}

// flush answers a flush frame, once the journal holds all that came before.
func (a *applier) flush(seq int) error {
	if err := a.j.flush(); err != nil {
		return diskError("writing", "journal", err)
	}
	return a.ev.send(event{Flushed: seq})
}

// entry applies an entry frame.
func (a *applier) entry(payload []byte) error {
	e := new(entry)
	if err := json.Unmarshal(payload, e); err != nil {
		return protoErrorf("entry: %v", err)
	}
	e.Chunks, e.Partial = nil, false // what is on disk is for the receiver to say
	if err := checkEntry(e); err != nil {
		return protoErrorf("entry: %v", err)
	}
	switch e.Type {
	case typeFile:
		return a.file(e)
	case typeDir:
		return a.dir(e)
	default:
		return a.symlink(e)
	}
}

// place returns e's parent directory and name, with whatever was at e's
// path removed unless it has e's type. found says whether something of
// e's type is there.
func (a *applier) place(e *entry) (dirfd int, name string, found bool, err error) {
	dirfd, name, err = a.t.parent(e.Path, true)
	if err != nil {
		return -1, "", false, parentError(e.Path, err)
	}
	var st unix.Stat_t
	err = unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return dirfd, name, false, nil
	}
	if err != nil {
		return -1, "", false, diskError("checking", e.Path, err)
	}
	if entryFromStat(e.Path, &st).Type == e.Type {
		return dirfd, name, true, nil
	}
	if err := a.remove(e.Path); err != nil {
		return -1, "", false, err
	}
	if dirfd, name, err = a.t.parent(e.Path, false); err != nil {
		return -1, "", false, parentError(e.Path, err)
	}
	return dirfd, name, false, nil
}

// parentError describes a failure to reach (or make) rel's parent: a
// symlink or file in the way is the stream's fault.
func parentError(rel string, err error) error {
	if notDir(err) {
		return protoErrorf("%s: %v", rel, err)
	}
	return diskError("creating the directories of", rel, err)
}

// remove deletes rel (and what is under it) from disk and manifest.
func (a *applier) remove(rel string) error {
	dirfd, name, err := a.t.parent(rel, false)
	if errors.Is(err, unix.ENOENT) || notDir(err) {
		a.m.deleteTree(rel) // no parent directory: it is not there either
		return nil
	}
	if err != nil {
		return diskError("removing", rel, err)
	}
	err = removeAt(dirfd, name)
	a.t.forget()
	if err != nil {
		return diskError("removing", rel, err)
	}
	a.m.deleteTree(rel)
	a.touched[parentOf(rel)] = true
	if err := a.j.del(rel); err != nil {
		return diskError("writing", "journal", err)
	}
	return nil
}

// delete applies a delete frame.
func (a *applier) delete(payload []byte) error {
	var d struct {
		Path string `json:"p"`
	}
	if err := json.Unmarshal(payload, &d); err != nil {
		return protoErrorf("delete: %v", err)
	}
	if err := checkPath(d.Path); err != nil || d.Path == "." {
		return protoErrorf("delete: bad path %q", d.Path)
	}
	a.done.Deleted++
	return a.remove(d.Path)
}

// dir applies a directory entry: it exists from now on, its owner, mode
// and times are set when the round ends.
func (a *applier) dir(e *entry) error {
	if e.Path != "." {
		dirfd, name, found, err := a.place(e)
		if err != nil {
			return err
		}
		if !found {
			if err := unix.Mkdirat(dirfd, name, 0o700); err != nil {
				return diskError("creating", e.Path, err)
			}
			a.touched[parentOf(e.Path)] = true
		}
	}
	a.dirs[e.Path] = e
	a.done.Files++
	return nil
}

// symlink applies a symlink entry. The target is data: never followed.
func (a *applier) symlink(e *entry) error {
	dirfd, name, found, err := a.place(e)
	if err != nil {
		return err
	}
	if found {
		if target, err := readlinkAt(dirfd, name); err != nil || target != e.Target {
			found = false
			if err := unix.Unlinkat(dirfd, name, 0); err != nil {
				return diskError("replacing", e.Path, err)
			}
		}
	}
	if !found {
		a.m.deleteTree(e.Path)
		if err := unix.Symlinkat(e.Target, dirfd, name); err != nil {
			return diskError("creating", e.Path, err)
		}
		a.touched[parentOf(e.Path)] = true
	}
	if err := unix.Fchownat(dirfd, name, int(e.UID), int(e.GID), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return diskError("setting the owner of", e.Path, err)
	}
	if err := a.t.setTimes(e.Path, e.MTime); err != nil {
		return diskError("setting the times of", e.Path, err)
	}
	a.done.Files++
	return a.record(e)
}

// record puts a finished entry in the manifest and the journal.
func (a *applier) record(e *entry) error {
	a.m.put(e)
	if err := a.j.put(e); err != nil {
		return diskError("writing", "journal", err)
	}
	return nil
}

// finishDirs sets the owner, mode and times of the directories received
// and times of those whose contents changed, deepest first (setting a
// directory's times does not change its parent's).
func (a *applier) finishDirs() {
	paths := make([]string, 0, len(a.dirs)+len(a.touched))
	for p := range a.dirs {
		paths = append(paths, p)
	}
	for p := range a.touched {
		if a.dirs[p] == nil {
			paths = append(paths, p)
		}
	}
	slices.SortFunc(paths, func(x, y string) int { return depth(y) - depth(x) })
	for _, p := range paths {
		e, received := a.dirs[p], true
		if e == nil {
			e, received = a.m.get(p), false
		}
		if e == nil || e.Type != typeDir {
			continue
		}
		if err := a.setDir(e); err != nil {
			a.log.Warn("transfer: set directory metadata", "path", p, "err", err)
			if old := a.m.get(p); old != nil {
				stale := *old
				stale.Partial = true // not known to be right: the next round sends it again
				a.m.put(&stale)
			}
			continue
		}
		if received {
			_ = a.record(e) // a journal error shows again when it is saved
		}
	}
}

// setDir sets a directory's owner, mode and times.
func (a *applier) setDir(e *entry) error {
	fd, err := a.t.dir(e.Path, false)
	if err != nil {
		return err
	}
	if err := unix.Fchown(fd, int(e.UID), int(e.GID)); err != nil {
		return err
	}
	if err := unix.Fchmod(fd, e.Mode); err != nil {
		return err
	}
	return a.t.setTimes(e.Path, e.MTime)
}
