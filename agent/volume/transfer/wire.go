package transfer

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
)

// A round's request body is a stream of frames:
//
//	type (1 byte) | payload length (uint32) | CRC-32C (uint32) | payload
//
// The CRC covers the type, the length and the payload's first bytes (all
// of it for the small frames, the index and hash of a chunk frame), so a
// corrupted frame header is caught; a chunk's data is covered by its hash.
const (
	frameDelete = 'D' // JSON {"p": path}: remove path and what is under it
	frameEntry  = 'E' // JSON Entry; for a file, chunk frames and frameEOF follow
	frameChunk  = 'C' // uint32 index | 16-byte hash | data
	frameZero   = 'Z' // uint32 index | uint32 length: a chunk of zeros (a hole)
	frameEOF    = '.' // the end of a file's chunks
	frameFlush  = 'F' // uint32 sequence number: answer with a flushed event
	frameEnd    = 'Q' // the end of the round
)

const (
	frameHeaderLen = 9
	chunkPrefixLen = 4 + len(chunkHash{})
	maxSmallFrame  = 64 << 10
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// frameCRC is the check of a frame header and the covered payload prefix.
func frameCRC(typ byte, length uint32, prefix []byte) uint32 {
	var h [5]byte
	h[0] = typ
	binary.BigEndian.PutUint32(h[1:], length)
	return crc32.Update(crc32.Checksum(h[:], castagnoli), castagnoli, prefix)
}

// frameWriter writes frames to a buffered stream.
type frameWriter struct {
	w   *bufio.Writer
	buf [frameHeaderLen + chunkPrefixLen]byte
}

func newFrameWriter(w io.Writer) *frameWriter {
	return &frameWriter{w: bufio.NewWriterSize(w, 256<<10)}
}

// small writes a frame whose payload the CRC covers whole.
func (fw *frameWriter) small(typ byte, payload []byte) error {
	if len(payload) > maxSmallFrame {
		return fmt.Errorf("frame %q: %d bytes, limit %d", typ, len(payload), maxSmallFrame)
	}
	h := fw.buf[:frameHeaderLen]
	h[0] = typ
	binary.BigEndian.PutUint32(h[1:], uint32(len(payload)))
	binary.BigEndian.PutUint32(h[5:], frameCRC(typ, uint32(len(payload)), payload))
	if _, err := fw.w.Write(h); err != nil {
		return err
	}
	_, err := fw.w.Write(payload)
	return err
}

// json writes a frame holding v as JSON.
func (fw *frameWriter) json(typ byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return fw.small(typ, b)
}

// uint32s writes a frame holding numbers.
func (fw *frameWriter) uint32s(typ byte, vs ...uint32) error {
	b := make([]byte, 4*len(vs))
	for i, v := range vs {
		binary.BigEndian.PutUint32(b[4*i:], v)
	}
	return fw.small(typ, b)
}

// chunk writes chunk idx with its hash and bytes.
func (fw *frameWriter) chunk(idx int, h chunkHash, data []byte) error {
	b := fw.buf[:]
	length := uint32(chunkPrefixLen + len(data))
	b[0] = frameChunk
	binary.BigEndian.PutUint32(b[1:], length)
	binary.BigEndian.PutUint32(b[frameHeaderLen:], uint32(idx))
	copy(b[frameHeaderLen+4:], h[:])
	binary.BigEndian.PutUint32(b[5:], frameCRC(frameChunk, length, b[frameHeaderLen:]))
	if _, err := fw.w.Write(b); err != nil {
		return err
	}
	_, err := fw.w.Write(data)
	return err
}

func (fw *frameWriter) flush() error { return fw.w.Flush() }

// frame is one frame read. For a chunk, data is valid until the next read.
type frame struct {
	typ     byte
	payload []byte    // small frames
	idx     int       // frameChunk, frameZero
	n       int       // frameZero: the length of the zeros
	hash    chunkHash // frameChunk
	data    []byte    // frameChunk
}

// frameReader reads frames, refusing any that is malformed.
type frameReader struct {
	r    io.Reader
	hdr  [frameHeaderLen]byte
	data []byte
	// onFrame, when set, hears of every frame read (a receiver extends its
	// read deadline on it).
	onFrame func()
}

// newFrameReader reads frames from r, through a buffer unless r is a
// read-ahead (which is one already: a second would only copy again).
func newFrameReader(r io.Reader) *frameReader {
	if _, buffered := r.(*readAhead); !buffered {
		r = bufio.NewReaderSize(r, 256<<10)
	}
	return &frameReader{r: r}
}

// protoError is a malformed stream: the sender's fault, not the disk's.
type protoError struct{ msg string }

func (e *protoError) Error() string { return e.msg }

func protoErrorf(format string, args ...any) error {
	return &protoError{msg: fmt.Sprintf(format, args...)}
}

// next reads the next frame.
func (fr *frameReader) next() (frame, error) {
	if _, err := io.ReadFull(fr.r, fr.hdr[:]); err != nil {
		return frame{}, err
	}
	if fr.onFrame != nil {
		fr.onFrame()
	}
	f := frame{typ: fr.hdr[0]}
	length := binary.BigEndian.Uint32(fr.hdr[1:])
	crc := binary.BigEndian.Uint32(fr.hdr[5:])
	if f.typ == frameChunk {
		return fr.chunk(f, length, crc)
	}
	if length > maxSmallFrame {
		return frame{}, protoErrorf("frame %q of %d bytes: limit %d", f.typ, length, maxSmallFrame)
	}
	f.payload = make([]byte, length)
	if _, err := io.ReadFull(fr.r, f.payload); err != nil {
		return frame{}, noEOF(err)
	}
	if frameCRC(f.typ, length, f.payload) != crc {
		return frame{}, protoErrorf("frame %q: corrupt header (CRC mismatch)", f.typ)
	}
	return f, fr.decodeSmall(&f)
}

// chunk reads the rest of a chunk frame.
func (fr *frameReader) chunk(f frame, length, crc uint32) (frame, error) {
	if length < uint32(chunkPrefixLen) || length > uint32(chunkPrefixLen+ChunkSize) {
		return frame{}, protoErrorf("chunk frame of %d bytes", length)
	}
	var prefix [chunkPrefixLen]byte
	if _, err := io.ReadFull(fr.r, prefix[:]); err != nil {
		return frame{}, noEOF(err)
	}
	if frameCRC(frameChunk, length, prefix[:]) != crc {
		return frame{}, protoErrorf("chunk frame: corrupt header (CRC mismatch)")
	}
	f.idx = int(binary.BigEndian.Uint32(prefix[:]))
	copy(f.hash[:], prefix[4:])
	if fr.data == nil {
		fr.data = make([]byte, ChunkSize)
	}
	f.data = fr.data[:length-uint32(chunkPrefixLen)]
	if _, err := io.ReadFull(fr.r, f.data); err != nil {
		return frame{}, noEOF(err)
	}
	return f, nil
}

// fixedSize is the payload size of the frames that carry only numbers.
var fixedSize = map[byte]int{frameZero: 8, frameFlush: 4, frameEOF: 0, frameEnd: 0}

// decodeSmall checks the payload size of fixed-size frames and decodes
// their numbers.
func (fr *frameReader) decodeSmall(f *frame) error {
	n, fixed := fixedSize[f.typ]
	if !fixed {
		return nil
	}
	if len(f.payload) != n {
		return protoErrorf("frame %q of %d bytes, want %d", f.typ, len(f.payload), n)
	}
	switch f.typ {
	case frameZero:
		f.idx = int(binary.BigEndian.Uint32(f.payload))
		f.n = int(binary.BigEndian.Uint32(f.payload[4:]))
	case frameFlush:
		f.idx = int(binary.BigEndian.Uint32(f.payload))
	}
	return nil
}

// noEOF turns an EOF inside a frame into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// event is one line of a round's response: the receiver's side of the
// conversation, written as it happens.
type event struct {
	// Resend asks for chunks of a file again: Bad ones arrived corrupted,
	// the others are not known to be on disk (e.g. the file changed size).
	Resend *resendEvent `json:"resend,omitempty"`
	// Flushed answers frameFlush: every resend for what came before it has
	// been asked for.
	Flushed int `json:"flushed,omitempty"`
	// Done ends a successful round.
	Done *doneEvent `json:"done,omitempty"`
	// Error ends a failed round, with the HTTP status it would have had.
	Error  string `json:"error,omitempty"`
	Status int    `json:"status,omitempty"`
}

type resendEvent struct {
	Path   string `json:"p"`
	Chunks []int  `json:"c"`
	Bad    []int  `json:"bad,omitempty"`
}

type doneEvent struct {
	Files   int   `json:"files"`   // entries written
	Bytes   int64 `json:"bytes"`   // chunk bytes written
	Deleted int   `json:"deleted"` // paths removed
	Bad     int   `json:"bad"`     // chunks refused for a hash mismatch
}
