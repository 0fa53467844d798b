package transfer

import (
	"io"
	"sync"
)

// Read-ahead: a round's body is read this far ahead of the frames being
// applied.
const (
	readAheadBlock = 256 << 10
	readAheadDepth = 32 // 8 MiB
)

// readAhead reads from r in its own goroutine, up to readAheadDepth
// blocks ahead of its consumer: the network keeps flowing (and the
// sender sending) while the consumer writes a chunk to disk, which on a
// cold page cache costs as much as receiving it. Close stops it.
type readAhead struct {
	full chan []byte // read blocks, in order
	free chan []byte // blocks to read into
	stop chan struct{}
	once sync.Once
	err  error  // r's error, valid once full is closed
	blk  []byte // the block being handed out
	cur  []byte // what is left of it
}

func newReadAhead(r io.Reader) *readAhead {
	ra := &readAhead{full: make(chan []byte, readAheadDepth), free: make(chan []byte, readAheadDepth), stop: make(chan struct{})}
	for range readAheadDepth {
		ra.free <- make([]byte, readAheadBlock)
	}
	go ra.fill(r)
	return ra
}

// fill reads blocks from r until r fails (io.EOF included) or Close.
func (ra *readAhead) fill(r io.Reader) {
	defer close(ra.full)
	for {
		var b []byte
		select {
		case b = <-ra.free:
		case <-ra.stop:
			return
		}
		n, err := r.Read(b[:cap(b)])
		if n > 0 {
			select {
			case ra.full <- b[:n]:
			case <-ra.stop:
				return
			}
		} else {
			ra.free <- b
		}
		if err != nil {
			ra.err = err
			return
		}
	}
}

// Read hands out what fill read, in order.
func (ra *readAhead) Read(p []byte) (int, error) {
	if len(ra.cur) == 0 {
		b, ok := <-ra.full
		if !ok {
			return 0, ra.err
		}
		ra.blk, ra.cur = b, b
	}
	n := copy(p, ra.cur)
	ra.cur = ra.cur[n:]
	if len(ra.cur) == 0 {
		ra.free <- ra.blk
		ra.blk, ra.cur = nil, nil
	}
	return n, nil
}

// Close stops the reading goroutine; the caller closes r to unblock a
// read in progress.
func (ra *readAhead) Close() { ra.once.Do(func() { close(ra.stop) }) }
