package transfer

import (
	"io"
	"sync"
	"sync/atomic"
)

// streamBody is a request body that writes itself. net/http copies a
// request body with io.CopyBuffer, which hands a body that is an
// io.WriterTo the connection's writer: a round's frames then go straight
// into the connection's buffer, instead of through a pipe with a
// goroutine hand-off every 32 KiB (which, on two cores, cost a third of a
// full copy's time). Read is there for any path of net/http that reads
// instead; it goes through a pipe.
type streamBody struct {
	write func(io.Writer) error
	state atomic.Bool   // the writer was started, or will never be
	done  chan struct{} // closed once write returned; err is set then
	err   error

	mu sync.Mutex
	pr *io.PipeReader // Read's pipe, once Read started the writer
}

func newStreamBody(write func(io.Writer) error) *streamBody {
	return &streamBody{write: write, done: make(chan struct{})}
}

// claim reports whether the caller is the one to start the writer (or
// to decide it never runs).
func (b *streamBody) claim() bool { return b.state.CompareAndSwap(false, true) }

// WriteTo runs the writer on w.
func (b *streamBody) WriteTo(w io.Writer) (int64, error) {
	if !b.claim() {
		return 0, errRoundOver
	}
	cw := &countWriter{w: w}
	b.err = b.write(cw)
	close(b.done)
	return cw.n, b.err
}

// Read runs the writer into a pipe on first use and reads from it.
func (b *streamBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	if b.pr == nil {
		if !b.claim() {
			b.mu.Unlock()
			return 0, errRoundOver
		}
		pr, pw := io.Pipe()
		b.pr = pr
		go func() {
			b.err = b.write(pw)
			pw.CloseWithError(b.err) // nil: the body ends
			close(b.done)
		}()
	}
	pr := b.pr
	b.mu.Unlock()
	return pr.Read(p)
}

// Close makes sure done closes: a writer never started never will be; a
// writer writing into Read's pipe is stopped.
func (b *streamBody) Close() error {
	if b.claim() {
		b.err = errRoundOver
		close(b.done)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pr != nil {
		b.pr.CloseWithError(errRoundOver)
	}
	return nil
}

// countWriter counts what goes through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
