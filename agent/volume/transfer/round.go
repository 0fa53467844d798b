package transfer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Progress is a round's progress, for a caller to show.
type Progress struct {
	Volume      string
	Round       int
	Phase       string  // "listing", "sending", "resending", "done"
	Files       int     // source entries gone through
	FilesTotal  int     // source entries
	Bytes       int64   // source bytes gone through (sent, or found unchanged)
	BytesTotal  int64   // source bytes
	BytesSent   int64   // chunk bytes sent so far
	BytesPerSec float64 // BytesSent per second since the round began
}

// RoundStats sums up a round.
type RoundStats struct {
	Round     int   // rounds to this target for this volume since the last commit or abort
	Files     int   // entries in the source tree (files, directories, symlinks)
	FilesSent int   // entries sent because they were new or changed
	Deleted   int   // paths deleted on the target
	Bytes     int64 // the source tree's size
	BytesSent int64 // chunk bytes sent (holes and unchanged chunks cost none)
	BytesRead int64 // source bytes read (the rest came from the hash cache)
	Duration  time.Duration
	Resent    int // chunks resent after a checksum mismatch
	Special   int // devices, fifos and sockets: left out of the copy
}

const (
	// maxResends is how often one chunk may arrive corrupted before the
	// round gives up: beyond that the network (or a NIC) is broken.
	maxResends = 3
	// maxPasses bounds a round's resend passes; chunks still wanted then
	// (a file changing under a live round) are left for the next round.
	maxPasses = maxResends + 2
	// progressEvery is the least time between two progress callbacks.
	progressEvery = 100 * time.Millisecond
)

// Round brings the target's staging copy of volume up to date with srcDir:
// it asks the target for the manifest of its staging copy, then streams in
// one request only what differs (new and changed chunks, metadata,
// deletions). The container may still write to srcDir: what changes during
// the round is caught by the next one. progress (may be nil) is called
// from one goroutine at a time, at most ten times a second and once at
// the end.
func (s *Sender) Round(ctx context.Context, targetURL, volume, srcDir string, progress func(Progress)) (RoundStats, error) {
	start := time.Now()
	t, err := newTarget(targetURL, volume)
	if err != nil {
		return RoundStats{}, fmt.Errorf("round of volume %s: %w", volume, err)
	}
	r := &round{s: s, t: t, volume: volume, srcDir: srcDir, cache: s.cache(srcDir),
		bad: map[chunkRef]int{}, buf: make([]byte, ChunkSize)}
	r.gen = r.cache.begin()
	r.stats.Round = s.nextRound(t.key)
	r.prog = progressor{fn: progress, start: start, p: Progress{Volume: volume, Round: r.stats.Round}}
	err = r.run(ctx)
	r.stats.Duration = time.Since(start)
	r.stats.Resent = r.resent
	r.report("done", true)
	if err != nil {
		return r.stats, fmt.Errorf("round %d of volume %s to %s: %w", r.stats.Round, volume, t.host, err)
	}
	r.cache.prune(r.gen)
	return r.stats, nil
}

// round is one Round in progress.
type round struct {
	s              *Sender
	t              target
	volume, srcDir string
	cache          *hashCache
	gen            int // the cache's round number

	remote *manifest          // the target's staging copy
	src    *manifest          // the source, metadata only
	keys   map[string]fileKey // the source's regular files, as listed
	dels   []string           // paths to delete on the target, deepest first
	tree   *tree              // the source, for reading
	fw     *frameWriter

	stats     RoundStats
	files     int   // entries gone through
	bytesDone int64 // source bytes gone through
	buf       []byte
	prog      progressor

	// Owned by the goroutine reading events.
	bad    map[chunkRef]int // times each chunk arrived corrupted
	resent int
}

// chunkRef names one chunk of one file.
type chunkRef struct {
	path string
	idx  int
}

func (r *round) run(ctx context.Context) error {
	r.report("listing", true)
	remote, err := r.s.fetchManifest(ctx, r.t)
	if err != nil {
		return err
	}
	r.remote = remote
	if err := r.list(ctx); err != nil {
		return err
	}
	r.diffDeletes()
	r.tree, err = openTree(r.srcDir)
	if err != nil {
		return fmt.Errorf("open source: %w", err)
	}
	defer r.tree.close()
	return r.exchange(ctx)
}

// list walks the source (stat only: hashing waits until sending, so a new
// file is read once) and sets the totals.
func (r *round) list(ctx context.Context) error {
	sk := &skips{}
	r.keys = map[string]fileKey{}
	sc := scanner{skipped: sk.add, listed: func(rel string, st *unix.Stat_t) {
		r.keys[rel] = keyOf(st)
		if st.Nlink > 1 {
			sk.hardlinks++
		}
	}}
	src, err := sc.scan(ctx, r.srcDir)
	if err != nil {
		return fmt.Errorf("list source: %w", err)
	}
	sk.warn(r.s.log(), r.volume)
	r.src = src
	r.stats.Files, r.stats.Special = len(src.entries), len(sk.special)
	for _, e := range src.entries {
		r.stats.Bytes += e.Size
	}
	r.prog.p.FilesTotal, r.prog.p.BytesTotal = r.stats.Files, r.stats.Bytes
	return nil
}

// diffDeletes finds the target's paths the source no longer has. A path
// whose parent directory goes too is left to its parent's deletion.
func (r *round) diffDeletes() {
	for p := range r.remote.entries {
		if p == "." || r.src.get(p) != nil {
			continue
		}
		if parent := parentOf(p); parent != "." && r.remote.get(parent) != nil && r.src.get(parent) == nil {
			continue
		}
		r.dels = append(r.dels, p)
	}
	slices.SortFunc(r.dels, func(a, b string) int { return strings.Compare(b, a) })
}

// exchange runs the round's request: a goroutine writes the stream while
// this one reads the target's events and hands resend passes back to it.
func (r *round) exchange(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	passes := make(chan []resendEvent)
	body := newStreamBody(func(w io.Writer) error { return r.write(ctx, w, passes) })
	resp, err := r.s.call(ctx, r.t, http.MethodPost, "/round", body)
	if err == nil {
		err = r.readEvents(resp.Body, passes, body.done)
		resp.Body.Close()
	}
	cancel() // a writer still waiting for a pass, or blocked on the connection, stops
	body.Close()
	<-body.done
	return firstCause(err, body.err)
}

// errRoundOver stops a writer whose round ended.
var errRoundOver = errors.New("round over")

// firstCause picks the error to report: the target's word first, then a
// failure of the writer (reading the source) over the broken request it
// caused.
func firstCause(exchange, write error) error {
	var re *RemoteError
	if errors.As(exchange, &re) {
		return exchange
	}
	if write != nil && !errors.Is(write, errRoundOver) && !errors.Is(write, io.ErrClosedPipe) &&
		!errors.Is(write, context.Canceled) {
		return write
	}
	return exchange
}

// readEvents reads the target's events until the round's end.
func (r *round) readEvents(body io.Reader, passes chan<- []resendEvent, written <-chan struct{}) error {
	dec := json.NewDecoder(body)
	var pending []resendEvent
	for pass := 1; ; {
		var ev event
		if err := dec.Decode(&ev); err != nil {
			if errors.Is(err, io.EOF) {
				return errors.New("the target ended the round without a result")
			}
			return fmt.Errorf("read the target's answer: %w", err)
		}
		switch {
		case ev.Error != "":
			return &RemoteError{Host: r.t.host, Status: ev.Status, Msg: ev.Error}
		case ev.Done != nil:
			return nil
		case ev.Resend != nil:
			if err := r.noteResend(ev.Resend); err != nil {
				return err
			}
			pending = append(pending, *ev.Resend)
		case ev.Flushed > 0:
			if pass++; pass > maxPasses {
				pending = nil // left for the next round
			}
			select {
			case passes <- pending:
			case <-written: // failed: exchange reports why
				return errors.New("the round's stream broke off")
			}
			pending = nil
		}
	}
}

// noteResend counts corrupted chunks, giving up on one that keeps
// arriving corrupted.
func (r *round) noteResend(ev *resendEvent) error {
	if err := checkPath(ev.Path); err != nil {
		return fmt.Errorf("target asks for %w", err)
	}
	for _, idx := range ev.Bad {
		ref := chunkRef{ev.Path, idx}
		r.bad[ref]++
		if r.bad[ref] > maxResends {
			return fmt.Errorf("chunk %d of %s arrived corrupted %d times: the network between the hosts corrupts data",
				idx, ev.Path, r.bad[ref])
		}
		r.resent++
	}
	return nil
}

// write writes the round's stream: deletions, entries, then a flush; then
// resend passes as the event reader hands them over, until an empty one.
func (r *round) write(ctx context.Context, w io.Writer, passes <-chan []resendEvent) error {
	r.fw = newFrameWriter(w)
	r.report("sending", true)
	for _, p := range r.dels {
		if err := r.fw.json(frameDelete, map[string]string{"p": p}); err != nil {
			return err
		}
		r.stats.Deleted++
	}
	for _, e := range r.src.sorted() {
		if err := r.sendEntry(e); err != nil {
			return err
		}
	}
	for seq := 1; ; seq++ {
		if err := r.fw.uint32s(frameFlush, uint32(seq)); err != nil {
			return err
		}
		if err := r.fw.flush(); err != nil {
			return err
		}
		var batch []resendEvent
		select {
		case batch = <-passes:
		case <-ctx.Done():
			return ctx.Err()
		}
		if len(batch) == 0 {
			if err := r.fw.small(frameEnd, nil); err != nil {
				return err
			}
			return r.fw.flush()
		}
		if err := r.resendPass(batch); err != nil {
			return err
		}
	}
}

// sendEntry sends one source entry if the target's differs.
func (r *round) sendEntry(e *entry) error {
	defer func() { r.files++; r.report("sending", false) }()
	rem := r.remote.get(e.Path)
	if e.Type == typeFile {
		sent, err := r.sendFile(e, rem, nil)
		if sent {
			r.stats.FilesSent++
		}
		return err
	}
	if rem != nil && !rem.Partial && sameMeta(e, rem) {
		return nil
	}
	r.stats.FilesSent++
	return r.fw.json(frameEntry, e)
}

// resendPass sends again the chunks the target asked for.
func (r *round) resendPass(batch []resendEvent) error {
	r.report("resending", true)
	for _, rs := range batch {
		e := r.src.get(rs.Path)
		if e == nil || e.Type != typeFile {
			continue // not a file of ours any more: the next round sorts it out
		}
		only := make(map[int]bool, len(rs.Chunks))
		for _, i := range rs.Chunks {
			only[i] = true
		}
		if _, err := r.sendFile(e, nil, only); err != nil {
			return err
		}
	}
	return nil
}

// sendFile sends a regular file: its entry (metadata as it is now), the
// chunks the target lacks (or only those in only), then its end. It
// reports whether it sent anything: nothing when the target's copy
// matches (known from the cache without reading, or found by reading).
func (r *round) sendFile(e, rem *entry, only map[int]bool) (bool, error) {
	if only == nil && r.unchanged(e, rem) {
		r.bytesDone += e.Size
		return false, nil
	}
	f, st, err := r.openSource(e.Path)
	if f == nil {
		return false, err // nil: gone since listed, the next round deletes it
	}
	defer f.Close()
	out := &fileSend{r: r, hdr: entryFromStat(e.Path, &st), rem: rem}
	if only != nil {
		return true, out.resend(f, only)
	}
	cached, _ := r.cache.get(keyOf(&st), r.gen)
	hashes, complete, err := out.sendChunks(f, cached)
	if err != nil {
		return out.started, err
	}
	if !complete || rem == nil || rem.Type != typeFile || rem.Partial || !sameMeta(out.hdr, rem) {
		if err := out.start(); err != nil {
			return true, err
		}
	}
	if out.started {
		if err := r.fw.small(frameEOF, nil); err != nil {
			return true, err
		}
	}
	var after unix.Stat_t
	if complete && unix.Fstat(int(f.Fd()), &after) == nil && sameStat(&st, &after) {
		r.s.remember(r.cache, keyOf(&st), hashes, r.gen)
	}
	return out.started, nil
}

// fileSend is one file being sent. Its entry frame goes out before its
// first chunk, or at the end if only its metadata differs: a file found
// equal by reading it costs nothing on the wire.
type fileSend struct {
	r        *round
	hdr, rem *entry
	started  bool
}

// start sends the file's entry frame, once.
func (s *fileSend) start() error {
	if s.started {
		return nil
	}
	s.started = true
	return s.r.fw.json(frameEntry, s.hdr)
}

// unchanged reports whether the target's copy of a file is known to match
// the source without reading it.
func (r *round) unchanged(e, rem *entry) bool {
	if rem == nil || rem.Type != typeFile || rem.Partial || !sameMeta(e, rem) {
		return false
	}
	cached, ok := r.cache.get(r.keys[e.Path], r.gen)
	return ok && slices.Equal(cached, rem.Chunks)
}

// openSource opens a source file for reading; nil (and no error) if it is
// no longer a regular file at that path.
func (r *round) openSource(rel string) (*os.File, unix.Stat_t, error) {
	var st unix.Stat_t
	dirfd, name, err := r.tree.parent(rel, false)
	if errors.Is(err, unix.ENOENT) || notDir(err) {
		return nil, st, nil
	}
	if err != nil {
		return nil, st, fmt.Errorf("open source %s: %w", rel, err)
	}
	f, err := openRead(dirfd, name)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ELOOP) {
		return nil, st, nil
	}
	if err != nil {
		return nil, st, fmt.Errorf("open source %s: %w", rel, err)
	}
	if err := unix.Fstat(int(f.Fd()), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		f.Close()
		if err != nil {
			return nil, st, fmt.Errorf("stat source %s: %w", rel, err)
		}
		return nil, st, nil
	}
	return f, st, nil
}

// sendChunks sends the chunks of an open file that the target lacks:
// those whose hash differs from the target's (a cached hash equal to the
// target's saves the read). It returns the hashes and whether they are
// complete (worth caching).
func (s *fileSend) sendChunks(src *os.File, cached hashList) (hashList, bool, error) {
	r, hdr := s.r, s.hdr
	hashes := make(hashList, numChunks(hdr.Size))
	if len(cached) != len(hashes) {
		cached = nil
	}
	for i := range hashes {
		n, have := chunkLen(i, hdr.Size), remoteChunk(s.rem, i, hdr.Size)
		r.bytesDone += int64(n)
		if cached != nil && have != unknown && cached[i] == have {
			hashes[i] = have
			continue
		}
		data, err := r.read(src, hdr, i)
		if data == nil {
			return hashes, false, err // shrank while read: the target asks for the rest
		}
		if hashes[i] = hashChunk(data); hashes[i] == have {
			continue
		}
		if err := s.start(); err != nil {
			return hashes, false, err
		}
		if err := r.sendChunk(i, hashes[i], data); err != nil {
			return hashes, false, err
		}
	}
	return hashes, true, nil
}

// resend sends the file's entry, the chunks in only and its end.
func (s *fileSend) resend(src *os.File, only map[int]bool) error {
	if err := s.start(); err != nil {
		return err
	}
	for i := range numChunks(s.hdr.Size) {
		if !only[i] {
			continue
		}
		data, err := s.r.read(src, s.hdr, i)
		if err != nil {
			return err
		}
		if data == nil {
			break
		}
		if err := s.r.sendChunk(i, hashChunk(data), data); err != nil {
			return err
		}
	}
	return s.r.fw.small(frameEOF, nil)
}

// read reads chunk i of an open source file; nil (and no error) if the
// file no longer has it.
func (r *round) read(f *os.File, hdr *entry, i int) ([]byte, error) {
	data := r.buf[:chunkLen(i, hdr.Size)]
	n, err := f.ReadAt(data, int64(i)*ChunkSize)
	r.stats.BytesRead += int64(n)
	if errors.Is(err, io.EOF) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read source %s: %w", hdr.Path, err)
	}
	return data, nil
}

// remoteChunk is the target's hash of chunk i of a file that is to be
// newSize bytes long, or unknown if its copy will not hold that chunk.
func remoteChunk(rem *entry, i int, newSize int64) chunkHash {
	if rem == nil || rem.Type != typeFile || i >= len(rem.Chunks) || !keepsChunk(i, rem.Size, newSize) {
		return unknown
	}
	return rem.Chunks[i]
}

// sendChunk sends one chunk, a chunk of zeros as a hole.
func (r *round) sendChunk(i int, h chunkHash, data []byte) error {
	defer r.report("", false)
	if allZero(data) {
		return r.fw.uint32s(frameZero, uint32(i), uint32(len(data)))
	}
	r.stats.BytesSent += int64(len(data))
	return r.fw.chunk(i, h, data)
}

// progressor calls a progress callback at most every progressEvery.
type progressor struct {
	fn    func(Progress)
	p     Progress
	start time.Time
	last  time.Time
}

// report updates the round's progress and passes it on if it is time
// (always when force is set); an empty phase keeps the current one.
func (r *round) report(phase string, force bool) {
	pr := &r.prog
	if pr.fn == nil {
		return
	}
	if phase != "" {
		pr.p.Phase = phase
	}
	now := time.Now()
	if !force && now.Sub(pr.last) < progressEvery {
		return
	}
	pr.last = now
	pr.p.Files, pr.p.Bytes, pr.p.BytesSent = r.files, r.bytesDone, r.stats.BytesSent
	if secs := now.Sub(pr.start).Seconds(); secs > 0 {
		pr.p.BytesPerSec = float64(r.stats.BytesSent) / secs
	}
	pr.fn(pr.p)
}
