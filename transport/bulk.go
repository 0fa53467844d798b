package transport

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
)

// Bulk data (volume moves) over TLS pays, beyond the cipher, for TLS's
// 16 KiB records: each is one write(2) and, read back, about one read(2),
// where plain TCP moved 256 KiB a call. On the lab's two cores that made
// a full copy 0.46x the plain tar stream's throughput instead of 0.80x.
// So the connections of the agents' data port gather a whole Write's
// records into one write underneath TLS, and read underneath it through a
// large buffer. The API and Raft carry small messages and keep plain
// connections.

// bulkBuffer is the size of a bulk connection's read buffer and of what
// it gathers before writing.
const bulkBuffer = 256 << 10

// ListenBulk opens a TLS listener whose connections are made for bulk
// data.
func ListenBulk(addr string, cfg *tls.Config) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return &bulkListener{Listener: l, cfg: cfg}, nil
}

type bulkListener struct {
	net.Listener
	cfg *tls.Config
}

func (l *bulkListener) Accept() (net.Conn, error) {
	raw, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	g := newGatherConn(raw)
	return &bulkConn{Conn: tls.Server(g, l.cfg), raw: g}, nil
}

// dialBulk makes a TLS client connection for bulk data on raw, and
// completes its handshake.
func dialBulk(ctx context.Context, raw net.Conn, addr string, cfg *tls.Config) (net.Conn, error) {
	g := newGatherConn(raw)
	c, err := clientHandshake(ctx, g, addr, cfg)
	if err != nil {
		return nil, err
	}
	return &bulkConn{Conn: c, raw: g}, nil
}

// bulkConn is a TLS connection whose every Write reaches the network as
// one write of all its records.
type bulkConn struct {
	*tls.Conn
	raw *gatherConn
}

// Write gathers the records of p and writes them at once. The handshake
// comes first, ungathered: it waits for the other side's answers.
func (c *bulkConn) Write(p []byte) (int, error) {
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	c.raw.gather()
	n, err := c.Conn.Write(p)
	if ferr := c.raw.release(); err == nil {
		err = ferr
	}
	return n, err
}

// gatherConn is the TCP connection under a bulkConn: it reads through a
// buffer, and between gather and release it keeps what is written and
// writes it in one call.
type gatherConn struct {
	net.Conn
	r *bufio.Reader

	mu        sync.Mutex
	gathering bool
	out       []byte
}

func newGatherConn(c net.Conn) *gatherConn {
	return &gatherConn{Conn: c, r: bufio.NewReaderSize(c, bulkBuffer)}
}

func (c *gatherConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *gatherConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.gathering {
		return c.Conn.Write(p)
	}
	c.out = append(c.out, p...)
	return len(p), nil
}

func (c *gatherConn) gather() {
	c.mu.Lock()
	c.gathering = true
	c.mu.Unlock()
}

// release writes what was gathered, and stops gathering.
func (c *gatherConn) release() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gathering = false
	if len(c.out) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.out)
	c.out = c.out[:0]
	return err
}
