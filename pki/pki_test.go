package pki

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func newTestCA(t *testing.T, cluster string) *CA {
	t.Helper()
	ca, err := NewCA(cluster, now)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func TestIssuedCertificatesNameTheirNodeAndRole(t *testing.T) {
	ca := newTestCA(t, "c1")
	leaf, err := ca.Issue("host2", RoleWorker, []net.IP{net.ParseIP("10.99.0.12")}, now)
	if err != nil {
		t.Fatal(err)
	}
	id, err := ca.Verify(leaf.Cert, now.Add(time.Hour))
	if err != nil || id != (Identity{Cluster: "c1", Role: RoleWorker, Name: "host2"}) {
		t.Fatalf("verify: %+v, %v", id, err)
	}
	if !leaf.Cert.IPAddresses[0].Equal(net.ParseIP("10.99.0.12")) {
		t.Errorf("IP SANs %v", leaf.Cert.IPAddresses)
	}
}

func TestRefusals(t *testing.T) {
	ca := newTestCA(t, "c1")
	other := newTestCA(t, "c2")
	twin := newTestCA(t, "c1") // another CA claiming the same cluster
	leaf, _ := ca.Issue("host1", RoleManager, nil, now)
	foreign, _ := other.Issue("host1", RoleManager, nil, now)
	forged, _ := twin.Issue("host1", RoleManager, nil, now)
	for name, check := range map[string]func() error{
		"expired":           func() error { _, err := ca.Verify(leaf.Cert, now.Add(LeafValidity+time.Hour)); return err },
		"not yet valid":     func() error { _, err := ca.Verify(leaf.Cert, now.Add(-time.Hour)); return err },
		"another cluster's": func() error { _, err := ca.Verify(foreign.Cert, now); return err },
		"a look-alike CA's": func() error { _, err := ca.Verify(forged.Cert, now); return err },
		"bad role":          func() error { _, err := ca.Issue("x", "admin", nil, now); return err },
		"name with a slash": func() error { _, err := ca.Issue("a/b", RoleWorker, nil, now); return err },
		"empty cluster":     func() error { _, err := NewCA("", now); return err },
		"client token":      func() error { _, err := NewToken(ca, RoleClient); return err },
		"malformed token":   func() error { _, err := ParseToken("SWMTKN-1-abc-def"); return err },
		"token with bad role": func() error {
			_, err := ParseToken("CCTL1-admin-" + strings.Repeat("a", 32) + "-" + strings.Repeat("b", 32))
			return err
		},
	} {
		err := check()
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error not on one line: %q", name, err)
		}
	}
}

func TestRenewalComesBeforeTheEnd(t *testing.T) {
	ca := newTestCA(t, "c1")
	leaf, _ := ca.Issue("host1", RoleWorker, nil, now)
	if NeedsRenewal(leaf.Cert, now) {
		t.Error("a fresh certificate needs renewal")
	}
	if !NeedsRenewal(leaf.Cert, now.Add(LeafValidity*2/3+time.Hour)) {
		t.Error("a certificate in its last third does not need renewal")
	}
}

func TestTokens(t *testing.T) {
	ca := newTestCA(t, "c1")
	tok, err := NewToken(ca, RoleWorker)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := ParseToken(tok.String())
	if err != nil || !tok.Matches(parsed) || !parsed.Pins(ca) {
		t.Fatalf("round trip of %s: %+v, %v", tok, parsed, err)
	}
	rotated, _ := NewToken(ca, RoleWorker)
	if rotated.Matches(parsed) {
		t.Error("a rotated token still matches the old one")
	}
	if parsed.Pins(newTestCA(t, "c1")) {
		t.Error("a token pins another CA")
	}
	manager, _ := NewToken(ca, RoleManager)
	if manager.Matches(parsed) {
		t.Error("a worker token matches the manager token")
	}
}

func TestSealedKeyReopens(t *testing.T) {
	ca := newTestCA(t, "c1")
	key := make([]byte, KeySize)
	_, _ = rand.Read(key)
	sealed, err := ca.Seal(key)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("PRIVATE")) {
		t.Fatal("the sealed key reads as a PEM key")
	}
	again, err := OpenCA("c1", ca.CertPEM, sealed, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := again.Issue("host1", RoleManager, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Verify(leaf.Cert, now); err != nil {
		t.Errorf("a certificate from the reopened CA: %v", err)
	}
	wrong := make([]byte, KeySize)
	if _, err := OpenCA("c1", ca.CertPEM, sealed, wrong); err == nil {
		t.Error("opened with the wrong key")
	}
	if _, err := OpenCA("c2", ca.CertPEM, sealed, key); err == nil {
		t.Error("opened as another cluster's")
	}
}

// TestMutualTLS makes a TLS connection with the issued certificates, both
// sides checking the other against the CA, and one from a client of
// another cluster, which the server refuses.
func TestMutualTLS(t *testing.T) {
	ca, err := NewCA("c1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	otherCA, err := NewCA("c2", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := ca.Issue("host1", RoleManager, []net.IP{net.ParseIP("127.0.0.1")}, time.Now())
	cli, _ := ca.Issue("laptop", RoleClient, nil, time.Now())
	foreign, _ := otherCA.Issue("laptop", RoleClient, nil, time.Now())
	pair := func(l Leaf) tls.Certificate {
		c, err := tls.X509KeyPair(l.CertPEM, l.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair(srv)}, ClientCAs: ca.Pool(),
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	addr := l.Addr().String()
	dial := func(leaf Leaf) error {
		c, err := tls.Dial("tcp", addr, &tls.Config{Certificates: []tls.Certificate{pair(leaf)}, RootCAs: ca.Pool(), MinVersion: tls.VersionTLS13})
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := c.Write([]byte("x")); err != nil {
			return err
		}
		_, err = c.Read(make([]byte, 1))
		return err
	}
	if err := dial(cli); err != nil {
		t.Errorf("a client of the cluster: %v", err)
	}
	if err := dial(foreign); err == nil {
		t.Error("a client of another cluster got through")
	}
}
