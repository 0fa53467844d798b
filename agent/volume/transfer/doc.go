// Package transfer moves a copy-backend cluster volume (a directory on its
// owner host) to another host's agent over HTTP, the way Flocker's first
// design did: a full copy while the container may still run, further
// rounds on what changed until the delta is small, a last round once the
// writer stopped, then a commit that verifies every entry and switches the
// target's copy in atomically. Removing the source afterwards is the
// caller's business, once Commit returned nil.
//
// # Chunks
//
// Files are compared and sent in chunks of ChunkSize bytes, each known by
// its XXH3-128 hash: a round sends only the chunks whose hash differs from
// the target's, so a few changed MiB of a 1 GiB file cost a few MiB. A
// chunk of zeros travels as a hole and stays one on the target. The Sender
// remembers the hashes of the files it read, keyed by (device, inode,
// size, mtime, ctime), so a round re-reads only the files that changed.
//
// # Wire protocol
//
// Everything lives under /v1/transfer/VOLUME/ on the target's data port:
//
//	GET    manifest  the staging copy's manifest (JSON lines: a header, then one entry per path)
//	POST   round     a stream of frames in; a stream of JSON-line events out, at the same time
//	POST   flush     make the staging copy durable (after the pre-copy, so a commit flushes little)
//	POST   commit    the source's full manifest in; 200 once switched in, 409 naming the first bad path
//	DELETE (volume)  drop the staging copy
//
// A round is one full-duplex request. Its body is a stream of frames
// (type, length, CRC-32C of the header, payload; see wire.go): deletions,
// then entries in tree order, a regular file's entry followed by the frames
// of its chunks to write (index, hash, bytes) and an end-of-file frame.
// The receiver checks each chunk against its hash before writing it; a
// corrupted chunk is never written but asked for again in a resend event,
// answered by the sender after a flush frame, up to three times a chunk.
// Errors come back as an HTTP status with a one-line message when nothing
// was answered yet (400 for a bad request, 507 for a full disk, 500
// otherwise), or as an error event with that status later.
//
// # On the target's disk
//
// Receiver.Dirs names two directories per volume: staging, where rounds
// write, and live, what Docker mounts. Next to staging live its manifest,
// staging+".manifest" (what the staging copy holds, chunk hashes included,
// saved atomically at the end of every round, cut short or not) and, while
// a round runs, staging+".journal" (the files finished since: an agent that
// dies mid-round loses nothing it wrote, and on restart the manifest is
// checked against the disk). A staging directory without a manifest is
// never trusted: it is removed. Commit verifies staging against the
// source's manifest (a file the rounds wrote and checked chunk by chunk,
// whose inode and ctime have not changed since, is taken at its recorded
// hashes; any other is read again), syncs it to disk, removes the manifest files, then
// renames staging to live (exchanging it with a stale live copy, which is
// then removed).
//
// # What is copied
//
// Regular files, directories and symlinks (never followed, on either
// side), with their mode bits (setuid, setgid, sticky included), owner,
// group and modification time. Not copied: devices, fifos and sockets
// (left out with a logged warning), hard links (each name becomes an
// independent file, with a logged warning: copying the data twice beats
// losing a name), extended attributes, ACLs, access times.
package transfer
