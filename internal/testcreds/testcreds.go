// Package testcreds gives tests credentials of a test cluster, and serves
// handlers over mutual TLS with them, the way the real ports are served.
package testcreds

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/clusterctl/clusterctl/pki"
	"github.com/clusterctl/clusterctl/transport"
)

// Cluster is the cluster ID of the shared test CA.
const Cluster = "test-cluster"

var (
	once sync.Once
	ca   *pki.CA
	err  error
)

// CA is the test cluster's CA, made once per test binary.
func CA(t testing.TB) *pki.CA {
	t.Helper()
	once.Do(func() { ca, err = pki.NewCA(Cluster, time.Now()) })
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// New is credentials of a node of the test cluster, valid for 127.0.0.1.
func New(t testing.TB, role, name string) *transport.Creds {
	t.Helper()
	return Of(t, CA(t), role, name)
}

// Of is credentials signed by ca, valid for 127.0.0.1 and the lab's
// addresses alike (a client's addresses are not checked).
func Of(t testing.TB, ca *pki.CA, role, name string) *transport.Creds {
	t.Helper()
	leaf, err := ca.Issue(name, role, []net.IP{net.ParseIP("127.0.0.1")}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c, err := transport.NewCreds(ca.CertPEM, leaf.CertPEM, leaf.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Serve serves h on a loopback port over TLS with creds (clients of roles
// only, or any when none), until the test ends; it returns the base URL.
func Serve(t testing.TB, creds *transport.Creds, h http.Handler, roles ...string) string {
	t.Helper()
	l, err := transport.Listen("127.0.0.1:0", creds.ServerTLS(roles...))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return transport.URL(l.Addr().String())
}

// Dir saves credentials of a node of the test cluster in a new directory
// (ca.pem, cert.pem, key.pem) and returns it.
func Dir(t testing.TB, role, name string) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := transport.IssueTo(CA(t), dir, name, role, []net.IP{net.ParseIP("127.0.0.1")}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Forged is credentials signed by a look-alike CA: one that claims the
// given cluster ID but is not the cluster's. Every port must refuse them.
func Forged(t testing.TB, cluster, role, name string) *transport.Creds {
	t.Helper()
	other, err := pki.NewCA(cluster, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return Of(t, other, role, name)
}

// NoCert is an HTTP client that trusts the CA in caPEM and shows no
// certificate of its own.
func NoCert(caPEM []byte, timeout time.Duration) *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return &http.Client{Transport: transport.RoundTripper(&tls.Config{RootCAs: pool}), Timeout: timeout}
}
