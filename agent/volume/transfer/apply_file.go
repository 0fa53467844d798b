package transfer

import (
	"errors"
	"os"
	"slices"

	"golang.org/x/sys/unix"
)

// file applies a regular file's entry and the chunk frames that follow
// it. Chunks are written in place; each is checked against its hash
// before it is written (a corrupted one is never written: it is asked for
// again) and recorded in the manifest only once written. Until the file's
// metadata is set its entry stays Partial.
func (a *applier) file(e *entry) error {
	dirfd, name, found, err := a.place(e)
	if err != nil {
		return err
	}
	fd, err := unix.Openat(dirfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return diskError("creating", e.Path, err)
	}
	f := os.NewFile(uintptr(fd), e.Path)
	defer f.Close()
	if !found {
		a.touched[parentOf(e.Path)] = true
	}
	rec, oldSize, err := a.resize(f, e)
	if err != nil {
		return err
	}
	bad, err := a.receiveChunks(f, rec, oldSize)
	if err != nil {
		return err
	}
	if err := a.setFile(f, rec); err != nil {
		return err
	}
	a.wb.add(f)
	if !slices.Contains(rec.Chunks, unknown) {
		if err := noteStat(f, rec); err != nil {
			return err
		}
	}
	rec.Partial = false
	a.done.Files++
	if err := a.record(rec); err != nil {
		return err
	}
	return a.askResend(rec, bad)
}

// resize truncates the open file to e's size and returns the entry to
// record for it, Partial and already in the manifest: the chunks it keeps
// from the previous entry (those truncation leaves alone), unknown others.
func (a *applier) resize(f *os.File, e *entry) (*entry, int64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, 0, diskError("checking", e.Path, err)
	}
	prev := a.m.get(e.Path)
	if prev != nil && (prev.Type != typeFile || prev.Size != st.Size) {
		prev = nil // the manifest does not describe what is there
	}
	rec := *e
	rec.Chunks, rec.Partial = make(hashList, numChunks(e.Size)), true
	if prev != nil {
		for i := range min(len(rec.Chunks), len(prev.Chunks)) {
			if keepsChunk(i, st.Size, e.Size) {
				rec.Chunks[i] = prev.Chunks[i]
			}
		}
	}
	a.m.put(&rec)
	if st.Size != e.Size {
		if err := f.Truncate(e.Size); err != nil {
			return nil, 0, diskError("writing", e.Path, err)
		}
	}
	return &rec, st.Size, nil
}

// receiveChunks writes the chunk frames of rec up to its end-of-file
// frame and returns the indexes of the chunks that arrived corrupted.
func (a *applier) receiveChunks(f *os.File, rec *entry, oldSize int64) (bad []int, err error) {
	for {
		fr, err := a.fr.next()
		if err != nil {
			return nil, readError(err)
		}
		switch fr.typ {
		case frameEOF:
			return bad, nil
		case frameChunk, frameZero:
			ok, err := a.writeChunk(f, rec, fr, oldSize)
			if err != nil {
				return nil, err
			}
			if !ok {
				bad = append(bad, fr.idx)
			}
		default:
			return nil, protoErrorf("%s: unexpected frame %q among its chunks", rec.Path, fr.typ)
		}
	}
}

// writeChunk writes one chunk frame of rec; false if its bytes do not
// match its hash (nothing written).
func (a *applier) writeChunk(f *os.File, rec *entry, fr frame, oldSize int64) (bool, error) {
	if fr.idx >= len(rec.Chunks) {
		return false, protoErrorf("%s: chunk %d of %d", rec.Path, fr.idx, len(rec.Chunks))
	}
	n, off := chunkLen(fr.idx, rec.Size), int64(fr.idx)*ChunkSize
	if fr.typ == frameZero {
		fr.data, fr.hash = nil, zeroHash(n)
		if fr.n != n {
			return false, protoErrorf("%s: zero chunk %d of %d bytes, want %d", rec.Path, fr.idx, fr.n, n)
		}
	} else if len(fr.data) != n {
		return false, protoErrorf("%s: chunk %d of %d bytes, want %d", rec.Path, fr.idx, len(fr.data), n)
	}
	rec.Chunks[fr.idx] = unknown
	if fr.data != nil && hashChunk(fr.data) != fr.hash {
		a.done.Bad++
		a.log.Warn("transfer: chunk corrupted in transit, asking for it again", "path", rec.Path, "chunk", fr.idx)
		return false, nil
	}
	var err error
	if fr.data == nil {
		err = writeZeros(f, off, n, oldSize)
	} else {
		_, err = f.WriteAt(fr.data, off)
	}
	if err != nil {
		return false, diskError("writing", rec.Path, err)
	}
	rec.Chunks[fr.idx] = fr.hash
	a.done.Bytes += int64(n)
	return true, nil
}

// writeZeros makes n bytes at off zeros: nothing to do past the old end of
// file (truncation extended the file with a hole), a punched hole before
// it, or written zeros where the file system cannot punch holes.
func writeZeros(f *os.File, off int64, n int, oldSize int64) error {
	if off >= oldSize {
		return nil
	}
	err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, int64(n))
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		_, err = f.WriteAt(zeroChunk[:n], off)
	}
	return err
}

// setFile sets a received file's owner, mode (after the owner: chown
// clears setuid bits) and times.
func (a *applier) setFile(f *os.File, rec *entry) error {
	fd := int(f.Fd())
	if err := unix.Fchown(fd, int(rec.UID), int(rec.GID)); err != nil {
		return diskError("setting the owner of", rec.Path, err)
	}
	if err := unix.Fchmod(fd, rec.Mode); err != nil {
		return diskError("setting the mode of", rec.Path, err)
	}
	if err := a.t.setTimes(rec.Path, rec.MTime); err != nil {
		return diskError("setting the times of", rec.Path, err)
	}
	return nil
}

// noteStat records the inode and ctime of a file just written in full,
// for a commit to see that nothing wrote it since.
func noteStat(f *os.File, rec *entry) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return diskError("checking", rec.Path, err)
	}
	rec.Ino, rec.CTime = st.Ino, st.Ctim.Nano()
	return nil
}

// askResend asks the sender for the chunks of rec that are not known to
// be on disk: corrupted ones, and any the sender did not send because it
// thought the receiver had them.
func (a *applier) askResend(rec *entry, bad []int) error {
	var missing []int
	for i, h := range rec.Chunks {
		if h == unknown {
			missing = append(missing, i)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return a.ev.send(event{Resend: &resendEvent{Path: rec.Path, Chunks: missing, Bad: bad}})
}
