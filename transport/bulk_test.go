package transport

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/clusterctl/clusterctl/pki"
)

// testPair is an agent's and a manager's credentials of a throwaway
// cluster, for this package's own tests (internal/testcreds imports this
// package).
func testPair(t testing.TB) (agent, manager *Creds) {
	ca, err := pki.NewCA("bench", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	issue := func(role string) *Creds {
		leaf, err := ca.Issue(role+"-node", role, []net.IP{net.ParseIP("127.0.0.1")}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		c, err := NewCreds(ca.CertPEM, leaf.CertPEM, leaf.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	return issue(pki.RoleWorker), issue(pki.RoleManager)
}

// benchStream sends 256 MiB in 256 KiB writes from a client to a server on
// loopback, over connections that wrap and dial make.
func benchStream(b *testing.B, wrap func(net.Listener) net.Listener, dial func(net.Conn) net.Conn) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	l := wrap(raw)
	defer l.Close()
	const total = 256 << 20
	b.SetBytes(total)
	buf := make([]byte, 256<<10)
	for b.Loop() {
		done := make(chan error, 1)
		go func() {
			c, err := l.Accept()
			if err != nil {
				done <- err
				return
			}
			defer c.Close()
			in := make([]byte, 256<<10)
			for n := 0; n < total; {
				m, err := c.Read(in)
				if err != nil {
					done <- err
					return
				}
				n += m
			}
			done <- nil
		}()
		c, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		c = dial(c)
		for n := 0; n < total; n += len(buf) {
			if _, err := c.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

// BenchmarkStream compares what one stream of bulk data costs: plain TCP
// (the yardstick), TLS as net/http makes it, and TLS with the bulk
// connections' gathered writes and buffered reads.
func BenchmarkStream(b *testing.B) {
	srv, cli := testPair(b)
	cliTLS := cli.ClientTLS(pki.RoleWorker)
	cliTLS.ServerName = "127.0.0.1"
	srvTLS := srv.ServerTLS(pki.RoleManager)
	b.Run("tcp", func(b *testing.B) {
		benchStream(b, func(l net.Listener) net.Listener { return l }, func(c net.Conn) net.Conn { return c })
	})
	b.Run("tls", func(b *testing.B) {
		benchStream(b, func(l net.Listener) net.Listener { return tls.NewListener(l, srvTLS) },
			func(c net.Conn) net.Conn { return tls.Client(c, cliTLS) })
	})
	b.Run("tls-bulk", func(b *testing.B) {
		benchStream(b, func(l net.Listener) net.Listener { return &bulkListener{Listener: l, cfg: srvTLS} },
			func(c net.Conn) net.Conn {
				bc, err := dialBulk(context.Background(), c, "127.0.0.1:1", cliTLS)
				if err != nil {
					b.Fatal(err)
				}
				return bc
			})
	})
}
