package transfer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Receiver is the target side of a move: it serves the data port's
// /v1/transfer/ requests, keeps a staging copy of each volume being moved
// in, and switches it in as the volume's live directory on commit.
// Requests for one volume are served one at a time (a new round waits for
// a cut one to finish cleaning up); different volumes in parallel.
type Receiver struct {
	// Dirs returns, for a volume name (already checked: no "/", no ".."),
	// the directory rounds write into and the directory Docker mounts.
	// Both absolute, distinct, on one file system (commit renames one to
	// the other); the receiver creates staging and keeps its manifest in
	// the files staging+".manifest" and staging+".journal".
	Dirs func(volume string) (staging, live string, err error)
	Log  *slog.Logger

	mu   sync.Mutex
	vols map[string]*volState
}

// volState is what a receiver holds for one volume.
type volState struct {
	lock chan struct{} // one request at a time; a channel so waiting honours a context
	man  *manifest     // the staging copy's manifest; nil until loaded
	dir  dirID         // the staging directory man describes, once it exists
}

// dirID tells one directory from another that took its path.
type dirID struct{ dev, ino uint64 }

// sameStaging reports whether staging is still the directory st.man
// describes, noting it the first time it is seen. A missing staging
// directory is the same only if the manifest knows no entries in it.
func (st *volState) sameStaging(staging string) bool {
	var sys unix.Stat_t
	if err := unix.Lstat(staging, &sys); err != nil {
		return len(st.man.entries) <= 1 && st.dir == dirID{}
	}
	id := dirID{dev: sys.Dev, ino: sys.Ino}
	if st.dir == (dirID{}) {
		st.dir = id
		return true
	}
	return st.dir == id
}

// idleTimeout is how long a round may go without a frame, or an event
// without being taken, before the receiver gives up on the sender.
const idleTimeout = 2 * time.Minute

// maxManifestBody bounds a commit's manifest (about 20 million files).
const maxManifestBody = 4 << 30

// Handler serves everything under /v1/transfer/; register it at that
// prefix of the data port (mux.Handle("/v1/transfer/", r.Handler())), on
// a server whose ResponseWriter supports full duplex (net/http's does;
// a wrapping middleware must implement Unwrap). The handler clears the
// server's read and write deadlines for its requests and applies its own
// idle timeout instead: a round of a big volume takes as long as it takes.
func (r *Receiver) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/transfer/{volume}/manifest", r.serveManifest)
	mux.HandleFunc("POST /v1/transfer/{volume}/round", r.serveRound)
	mux.HandleFunc("POST /v1/transfer/{volume}/commit", r.serveCommit)
	mux.HandleFunc("POST /v1/transfer/{volume}/flush", r.serveFlush)
	mux.HandleFunc("DELETE /v1/transfer/{volume}", r.serveAbort)
	return mux
}

func (r *Receiver) log() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return slog.Default()
}

// session is one request's hold on a volume.
type session struct {
	vol, staging, live string
	st                 *volState
}

func (s *session) manifestPath() string { return s.staging + ".manifest" }
func (s *session) journalPath() string  { return s.staging + ".journal" }
func (s *session) unlock()              { <-s.st.lock }

// begin checks the request's volume, finds its directories and waits for
// its lock. On failure it has answered the request.
func (r *Receiver) begin(w http.ResponseWriter, req *http.Request) (*session, bool) {
	vol := req.PathValue("volume")
	if err := checkVolume(vol); err != nil {
		writeError(w, &httpError{status: http.StatusBadRequest, msg: err.Error()})
		return nil, false
	}
	staging, live, err := r.Dirs(vol)
	if err == nil {
		err = checkDirs(staging, live)
	}
	if err != nil {
		writeError(w, fmt.Errorf("volume %s: %w", vol, err))
		return nil, false
	}
	st, err := r.lock(req.Context(), vol)
	if err != nil {
		return nil, false // the client went away
	}
	clearDeadlines(w)
	return &session{vol: vol, staging: filepath.Clean(staging), live: filepath.Clean(live), st: st}, true
}

// checkDirs refuses directories Dirs should not have returned: relative,
// the same, or one inside the other (a staging copy inside the live
// directory would show in the container; the rename could not work).
func checkDirs(staging, live string) error {
	s, l := filepath.Clean(staging)+"/", filepath.Clean(live)+"/"
	if !filepath.IsAbs(staging) || !filepath.IsAbs(live) || strings.HasPrefix(s, l) || strings.HasPrefix(l, s) {
		return fmt.Errorf("transfer directories %q and %q: want two absolute paths, neither inside the other", staging, live)
	}
	return nil
}

// lock waits for vol's lock.
func (r *Receiver) lock(ctx context.Context, vol string) (*volState, error) {
	r.mu.Lock()
	if r.vols == nil {
		r.vols = map[string]*volState{}
	}
	st := r.vols[vol]
	if st == nil {
		st = &volState{lock: make(chan struct{}, 1)}
		r.vols[vol] = st
	}
	r.mu.Unlock()
	select {
	case st.lock <- struct{}{}:
		return st, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// clearDeadlines lifts the server's read and write timeouts for this
// request: a round or a commit of a big volume takes as long as it takes.
// Rounds and commits set their own idle timeouts as they read.
func clearDeadlines(w http.ResponseWriter) {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
}

// manifestOf returns the staging copy's manifest, loading it on first use.
func (r *Receiver) manifestOf(ctx context.Context, s *session) (*manifest, error) {
	if s.st.man != nil && !s.st.sameStaging(s.staging) {
		// The staging copy went away, or was replaced, behind our back
		// (removed by hand, a file system unmounted): what we hold of it
		// describes nothing any more.
		r.log().Info("transfer: staging copy changed behind the receiver's back, reading it again", "volume", s.vol)
		s.st.man = nil
	}
	if s.st.man == nil {
		m, err := r.load(ctx, s)
		if err != nil {
			return nil, err
		}
		s.st.man, s.st.dir = m, dirID{}
	}
	return s.st.man, nil
}

// load reads the staging copy's manifest from disk. A journal left behind
// means the agent died mid-round: its records are applied and the manifest
// is checked against the disk (files whose size or time differ are hashed
// again). No manifest at all means whatever staging holds is unknown: it
// is removed and the next round starts from scratch.
func (r *Receiver) load(ctx context.Context, s *session) (*manifest, error) {
	m, err := loadManifest(s.manifestPath())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		r.log().Warn("transfer: unreadable staging manifest, starting over", "volume", s.vol, "err", err)
		m = nil
	}
	_, jerr := os.Stat(s.journalPath())
	if jerr != nil && m != nil {
		if _, err := os.Lstat(s.staging); errors.Is(err, fs.ErrNotExist) {
			return newManifest(), removeIfExists(s.manifestPath()) // staging removed behind our back
		}
		return m, nil
	}
	if jerr != nil {
		return newManifest(), r.wipe(s)
	}
	if m == nil {
		m = newManifest()
	}
	if err := replayJournal(m, s.journalPath()); err != nil {
		return nil, fmt.Errorf("volume %s: replay journal: %w", s.vol, err)
	}
	r.log().Info("transfer: checking staging copy after an interrupted round", "volume", s.vol)
	m, err = reconcile(ctx, s.staging, m)
	if err != nil {
		return nil, fmt.Errorf("volume %s: check staging copy: %w", s.vol, err)
	}
	if err := m.save(s.manifestPath()); err != nil {
		return nil, err
	}
	return m, removeIfExists(s.journalPath())
}

// reconcile returns the manifest of what staging holds, taking chunk
// hashes from m for files whose size, time and mode m has right and
// reading the others.
func reconcile(ctx context.Context, staging string, m *manifest) (*manifest, error) {
	if _, err := os.Lstat(staging); errors.Is(err, fs.ErrNotExist) {
		return newManifest(), nil
	}
	sc := scanner{hash: true, known: func(rel string, st *unix.Stat_t) (hashList, bool) {
		e := m.get(rel)
		if e == nil || e.Type != typeFile || e.Partial || e.Size != st.Size ||
			e.MTime != st.Mtim.Nano() || e.Mode != st.Mode&0o7777 {
			return nil, false
		}
		return e.Chunks, true
	}}
	return sc.scan(ctx, staging)
}

// wipe removes the staging copy and its manifest files.
func (r *Receiver) wipe(s *session) error {
	for _, p := range []string{s.staging, s.manifestPath(), s.journalPath()} {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("volume %s: remove %s: %w", s.vol, p, err)
		}
	}
	s.st.man = nil
	return nil
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// serveManifest answers with the staging copy's manifest.
func (r *Receiver) serveManifest(w http.ResponseWriter, req *http.Request) {
	s, ok := r.begin(w, req)
	if !ok {
		return
	}
	defer s.unlock()
	m, err := r.manifestOf(req.Context(), s)
	if err != nil {
		r.log().Error("transfer: load staging manifest", "volume", s.vol, "err", err)
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	if err := m.encode(w); err != nil {
		r.log().Info("transfer: send manifest", "volume", s.vol, "err", err)
	}
}

// serveFlush makes the staging copy durable, so that the commit that
// follows has only the last round's writes to flush.
func (r *Receiver) serveFlush(w http.ResponseWriter, req *http.Request) {
	s, ok := r.begin(w, req)
	if !ok {
		return
	}
	defer s.unlock()
	if _, err := os.Lstat(s.staging); errors.Is(err, fs.ErrNotExist) {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if err := syncFS(s.staging); err != nil {
		writeError(w, diskError("syncing", "the staging copy", err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// serveAbort drops the staging copy; dropping none is fine.
func (r *Receiver) serveAbort(w http.ResponseWriter, req *http.Request) {
	s, ok := r.begin(w, req)
	if !ok {
		return
	}
	defer s.unlock()
	if err := r.wipe(s); err != nil {
		writeError(w, err)
		return
	}
	r.log().Info("transfer: staging copy dropped", "volume", s.vol)
	w.WriteHeader(http.StatusNoContent)
}

// Forget drops what the receiver holds of a volume, on disk and in
// memory, once its owner removed the volume's directory (or is about to):
// a volume made again under the same name must not inherit a manifest.
func (r *Receiver) Forget(ctx context.Context, vol string) error {
	if err := checkVolume(vol); err != nil {
		return err
	}
	staging, live, err := r.Dirs(vol)
	if err != nil {
		return err
	}
	st, err := r.lock(ctx, vol)
	if err != nil {
		return err
	}
	s := &session{vol: vol, staging: filepath.Clean(staging), live: filepath.Clean(live), st: st}
	defer s.unlock()
	return r.wipe(s)
}

// httpError is a failure with the HTTP status it answers with.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

// statusOf maps an error to its HTTP status.
func statusOf(err error) int {
	var he *httpError
	var pe *protoError
	switch {
	case errors.As(err, &he):
		return he.status
	case errors.As(err, &pe):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// diskError wraps a failure to change the staging copy, saying plainly
// when the disk is full.
func diskError(doing, rel string, err error) error {
	switch {
	case errors.Is(err, unix.ENOSPC):
		return &httpError{status: http.StatusInsufficientStorage, msg: "disk full " + doing + " " + rel}
	case errors.Is(err, unix.EDQUOT):
		return &httpError{status: http.StatusInsufficientStorage, msg: "disk quota exceeded " + doing + " " + rel}
	}
	return &httpError{status: http.StatusInternalServerError, msg: fmt.Sprintf("%s %s: %v", doing, rel, err)}
}

// oneLine keeps an error message on one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// writeError answers a request with err's status and message, on one
// line of known length: a sender still streaming a round reads it without
// waiting for the handler to end.
func writeError(w http.ResponseWriter, err error) {
	msg := oneLine(err.Error()) + "\n"
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(msg)))
	w.WriteHeader(statusOf(err))
	_, _ = io.WriteString(w, msg)
}

// eventStream writes a round's events. The response starts with the first
// event, so an error found before any (a hostile first entry, a full disk)
// still gets its own HTTP status.
type eventStream struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	enc     *json.Encoder
	started bool
}

func newEventStream(w http.ResponseWriter) *eventStream {
	return &eventStream{w: w, rc: http.NewResponseController(w), enc: json.NewEncoder(w)}
}

// send writes one event and flushes it to the sender.
func (s *eventStream) send(ev event) error {
	if !s.started {
		s.w.Header().Set("Content-Type", "application/x-ndjson")
		s.w.WriteHeader(http.StatusOK)
		s.started = true
	}
	_ = s.rc.SetWriteDeadline(time.Now().Add(idleTimeout))
	if err := s.enc.Encode(ev); err != nil {
		return err
	}
	return s.rc.Flush()
}

// fail ends the round with err: an HTTP error if nothing was sent yet, an
// error event otherwise.
func (s *eventStream) fail(err error) {
	if !s.started {
		s.started = true
		writeError(s.w, err)
		_ = s.rc.Flush() // now: the sender may be waiting for an answer, not sending
		return
	}
	_ = s.send(event{Error: oneLine(err.Error()), Status: statusOf(err)})
}
