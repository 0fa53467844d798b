package transfer

import (
	"encoding/hex"
	"fmt"

	"github.com/zeebo/xxh3"
)

// ChunkSize is the unit of comparison and transfer: a file is cut into
// chunks of this size (the last one shorter) and a round sends only the
// chunks whose hash differs. 1 MiB keeps a manifest small (16 bytes per
// MiB) while a few changed bytes still cost only one MiB on the wire.
const ChunkSize = 1 << 20

// chunkHash identifies a chunk's content: XXH3-128 of its bytes. XXH3 is a
// non-cryptographic hash running at memory speed (tens of GB/s with AVX2),
// so hashing both ends never limits a transfer, and 128 bits make an
// accidental collision between two chunks impossible in practice. It guards
// against corruption and lets rounds compare trees, not against a forger:
// whoever reaches the data port can write a staging copy anyway.
type chunkHash [16]byte

// unknown marks a chunk whose content on disk is not known (not received
// yet, or rejected); it never equals a real chunk's hash, so a sender
// always sends such a chunk again.
var unknown chunkHash

// hashChunk returns the hash of one chunk's bytes.
func hashChunk(b []byte) chunkHash {
	return xxh3.Hash128(b).Bytes()
}

// zeroChunk is a whole chunk of zeros, and zeroFull its hash.
var (
	zeroChunk = make([]byte, ChunkSize)
	zeroFull  = hashChunk(zeroChunk)
)

// zeroHash returns the hash of n zero bytes.
func zeroHash(n int) chunkHash {
	if n == ChunkSize {
		return zeroFull
	}
	return hashChunk(zeroChunk[:n])
}

// allZero reports whether b holds only zeros; on real data it returns at
// the first byte, so checking every chunk costs nothing.
func allZero(b []byte) bool {
	for len(b) >= 8 {
		if b[0]|b[1]|b[2]|b[3]|b[4]|b[5]|b[6]|b[7] != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// numChunks is how many chunks a file of size bytes has.
func numChunks(size int64) int {
	return int((size + ChunkSize - 1) / ChunkSize)
}

// chunkLen is the length of chunk i of a file of size bytes.
func chunkLen(i int, size int64) int {
	return int(min(ChunkSize, size-int64(i)*ChunkSize))
}

// keepsChunk reports whether chunk i of a file still holds what it held
// after the file is truncated from oldSize to newSize: true when the size
// does not change, or when the chunk ends before both sizes. Sender and
// receiver use the same rule, so a sender does not skip a chunk that the
// receiver's truncation invalidated.
func keepsChunk(i int, oldSize, newSize int64) bool {
	return oldSize == newSize || int64(i+1)*ChunkSize <= min(oldSize, newSize)
}

// hashList is a file's chunk hashes; in JSON one hex string (32 characters
// per chunk), which keeps a big file's manifest line compact and fast.
type hashList []chunkHash

// MarshalText encodes the list as one hex string.
func (l hashList) MarshalText() ([]byte, error) {
	out := make([]byte, hex.EncodedLen(len(l)*len(chunkHash{})))
	for i, h := range l {
		hex.Encode(out[i*2*len(h):], h[:])
	}
	return out, nil
}

// UnmarshalText decodes a list encoded by MarshalText.
func (l *hashList) UnmarshalText(b []byte) error {
	const width = 2 * len(chunkHash{})
	if len(b)%width != 0 {
		return fmt.Errorf("chunk hashes: length %d is not a multiple of %d", len(b), width)
	}
	out := make(hashList, len(b)/width)
	for i := range out {
		if _, err := hex.Decode(out[i][:], b[i*width:(i+1)*width]); err != nil {
			return fmt.Errorf("chunk hashes: %w", err)
		}
	}
	*l = out
	return nil
}

// fileSum is a file's checksum: XXH3-128 over its chunk hashes, so two
// manifests compare whole files without rereading them.
func fileSum(chunks []chunkHash) chunkHash {
	h := xxh3.New128()
	for _, c := range chunks {
		_, _ = h.Write(c[:])
	}
	return h.Sum128().Bytes()
}
