// Package transport is the one place where clusterctl opens and accepts
// network connections between its processes: the managers' API, Raft
// between managers, agents to managers, agents to each other. Every one is
// mutual TLS with certificates of the cluster's CA (Creds).
package transport

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/clusterctl/clusterctl/pki"
	"github.com/hashicorp/raft"
)

// Scheme is the URL scheme of the managers' API and the agents' port:
// every connection is mutual TLS.
const Scheme = "https"

// dialTimeout bounds connecting to another process on the LAN.
const dialTimeout = time.Second

// Listen opens a TLS listener for one of our ports.
func Listen(addr string, cfg *tls.Config) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return tls.NewListener(l, cfg), nil
}

// Dial connects to one of our ports over TCP; TLS goes on top.
func Dial(ctx context.Context, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: dialTimeout}
	return d.DialContext(ctx, "tcp", addr)
}

// RoundTripper carries HTTP requests over TLS with cfg. Share one per
// process part: it keeps the connections for reuse.
func RoundTripper(cfg *tls.Config) *http.Transport {
	return &http.Transport{
		DialContext:         func(ctx context.Context, _, addr string) (net.Conn, error) { return Dial(ctx, addr) },
		TLSClientConfig:     cfg,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
	}
}

// HTTPClient is a client for the managers' API, with a timeout for a whole
// request (0 for streams).
func (c *Creds) HTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{Transport: RoundTripper(c.ClientTLS(pki.RoleManager)), Timeout: timeout}
}

// NeverSent says a request failed before reaching the other side (the
// connection was not made), so retrying it cannot apply it twice.
func NeverSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// URL is the base URL of an API address ("10.99.0.11:7400").
func URL(addr string) string { return Scheme + "://" + addr }

// Serve runs an HTTP server on a listener until it is shut down.
func Serve(srv *http.Server, l net.Listener) error {
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// streamLayer carries Raft's connections over mutual TLS between managers.
type streamLayer struct {
	net.Listener
	advertise net.Addr
	creds     *Creds
}

// Dial opens a Raft connection to another manager, and completes the
// handshake, so that a peer that is not a manager of this cluster fails
// here rather than in the middle of Raft's first message.
func (s *streamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	raw, err := Dial(ctx, string(addr))
	if err != nil {
		return nil, err
	}
	c, err := clientHandshake(ctx, raw, string(addr), s.creds.ClientTLS(pki.RoleManager))
	if err != nil {
		return nil, fmt.Errorf("raft to %s: %w", addr, err)
	}
	return c, nil
}

// clientHandshake runs a TLS client handshake on conn with the server
// addr names; on failure conn is closed.
func clientHandshake(ctx context.Context, conn net.Conn, addr string, cfg *tls.Config) (*tls.Conn, error) {
	cfg = cfg.Clone()
	cfg.ServerName, _, _ = net.SplitHostPort(addr)
	c := tls.Client(conn, cfg)
	if err := c.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// Addr is the address other managers reach this one's Raft at.
func (s *streamLayer) Addr() net.Addr { return s.advertise }

// RaftTransport listens for Raft on bind, over mutual TLS that only
// managers of this cluster pass, and tells peers to reach it at advertise.
func (c *Creds) RaftTransport(bind, advertise string, logOutput io.Writer) (*raft.NetworkTransport, error) {
	adv, err := net.ResolveTCPAddr("tcp", advertise)
	if err != nil {
		return nil, fmt.Errorf("raft address %s: %w", advertise, err)
	}
	l, err := Listen(bind, c.ServerTLS(pki.RoleManager))
	if err != nil {
		return nil, err
	}
	// 3 pooled connections per peer, 10 s I/O timeout: Raft's defaults.
	return raft.NewNetworkTransport(&streamLayer{Listener: l, advertise: adv, creds: c}, 3, 10*time.Second, logOutput), nil
}

// DecodeJSON decodes a JSON answer into out and reads the body to its
// end: net/http reuses a connection only once its last answer was read
// through, and a new connection is a TLS handshake (about 2 ms here,
// several times a small request's cost). The encoder's trailing newline
// is what json.Decoder leaves behind.
func DecodeJSON(body io.Reader, out any) error {
	if err := json.NewDecoder(body).Decode(out); err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 64<<10))
	return nil
}
