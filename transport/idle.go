package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/clusterctl/clusterctl/pki"
)

// BulkClient is an HTTP client for long transfers between agents (volume
// data): no bound on a whole request, which takes as long as the data
// needs, but a connection on which nothing moves for idle is broken. That
// is how a sender notices a target that was cut off the network: TCP alone
// would keep retransmitting for many minutes.
//
// It talks to agents (their data port), as a manager or an agent, over
// TLS connections made for bulk data (dialBulk).
func (c *Creds) BulkClient(idle time.Duration) *http.Client {
	cfg := c.ClientTLS(pki.RoleWorker)
	return &http.Client{Transport: &http.Transport{
		DialTLSContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			raw, err := Dial(ctx, addr)
			if err != nil {
				return nil, err
			}
			return dialBulk(ctx, &idleConn{Conn: raw, idle: idle}, addr, cfg)
		},
		DisableCompression: true,
		WriteBufferSize:    256 << 10,
		ReadBufferSize:     64 << 10,
		IdleConnTimeout:    90 * time.Second,
	}}
}

// idleConn pushes its deadline idle ahead on every read and write, so a
// call fails only when the peer has said nothing (or taken nothing) for
// that long.
type idleConn struct {
	net.Conn
	idle     time.Duration
	timedOut atomic.Bool
}

func (c *idleConn) Read(p []byte) (int, error) {
	_ = c.Conn.SetReadDeadline(time.Now().Add(c.idle))
	n, err := c.Conn.Read(p)
	return n, c.explain(err)
}

func (c *idleConn) Write(p []byte) (int, error) {
	_ = c.Conn.SetWriteDeadline(time.Now().Add(c.idle))
	n, err := c.Conn.Write(p)
	return n, c.explain(err)
}

// explain turns a deadline that fired, and the errors of a connection
// closed because of it, into an error that says what happened: the
// peer went silent (cut off, or down).
func (c *idleConn) explain(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		c.timedOut.Store(true)
	}
	if c.timedOut.Load() {
		return &IdleError{Peer: c.RemoteAddr().String(), Idle: c.idle}
	}
	return err
}

// IdleError is a connection on which nothing moved for too long.
type IdleError struct {
	Peer string
	Idle time.Duration
}

func (e *IdleError) Error() string {
	return fmt.Sprintf("no answer from %s for %s: cut off or down", e.Peer, e.Idle)
}
