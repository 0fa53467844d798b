package transport

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/clusterctl/clusterctl/pki"
	"github.com/google/renameio/v2"
)

// Files of a credentials directory: Docker's DOCKER_CERT_PATH layout.
const (
	caFile   = "ca.pem"
	certFile = "cert.pem"
	keyFile  = "key.pem"
)

// Creds is a process's identity in the cluster: the cluster's CA, and this
// node's certificate and key, which a renewal replaces while connections
// keep being made with it (every TLS config here reads the current one).
type Creds struct {
	dir   string // where they are kept; "" for credentials only in memory
	caPEM []byte
	ca    *x509.Certificate
	pool  *x509.CertPool
	id    pki.Identity
	cert  atomic.Pointer[tls.Certificate]
}

// NewCreds builds credentials from PEM: the CA certificate, this node's
// certificate (signed by it) and its key.
func NewCreds(caPEM, certPEM, keyPEM []byte) (*Creds, error) {
	ca, err := pki.ParseCertPEM(caPEM)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	c := &Creds{caPEM: caPEM, ca: ca, pool: x509.NewCertPool()}
	c.pool.AddCert(ca)
	if err := c.set(certPEM, keyPEM); err != nil {
		return nil, err
	}
	return c, nil
}

// set checks a certificate and key against the CA and makes them the
// current ones.
func (c *Creds) set(certPEM, keyPEM []byte) error {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("certificate and key: %w", err)
	}
	if _, err := pair.Leaf.Verify(x509.VerifyOptions{Roots: c.pool, CurrentTime: pair.Leaf.NotBefore.Add(1), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("certificate not signed by the cluster's CA: %w", err)
	}
	id, err := pki.IdentityOf(pair.Leaf)
	if err != nil {
		return err
	}
	// Send the CA with the certificate: a node joining with a token
	// checks it against the fingerprint the token pins.
	if len(pair.Certificate) == 1 {
		pair.Certificate = append(pair.Certificate, c.ca.Raw)
	}
	if c.id.Cluster != "" && (id.Cluster != c.id.Cluster || id.Role != c.id.Role || id.Name != c.id.Name) {
		return fmt.Errorf("new certificate names %+v, not %+v", id, c.id)
	}
	c.id = id
	c.cert.Store(&pair)
	return nil
}

// LoadCreds reads credentials from a directory holding ca.pem, cert.pem
// and key.pem. A directory without them is fs.ErrNotExist.
func LoadCreds(dir string) (*Creds, error) {
	var files [3][]byte
	for i, name := range []string{caFile, certFile, keyFile} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("credentials in %s: %w", dir, err)
		}
		files[i] = b
	}
	c, err := NewCreds(files[0], files[1], files[2])
	if err != nil {
		return nil, fmt.Errorf("credentials in %s: %w", dir, err)
	}
	c.dir = dir
	return c, nil
}

// HaveCreds says whether dir holds credentials.
func HaveCreds(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, certFile))
	return !errors.Is(err, fs.ErrNotExist)
}

// SaveCreds writes credentials into dir (made 0700; the key 0600) and
// returns them, kept there from now on: a renewal rewrites them.
func SaveCreds(dir string, caPEM, certPEM, keyPEM []byte) (*Creds, error) {
	c, err := NewCreds(caPEM, certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	c.dir = dir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("credentials dir: %w", err)
	}
	if err := writeFile(dir, caFile, caPEM, 0o644); err != nil {
		return nil, err
	}
	return c, c.save(certPEM, keyPEM)
}

func (c *Creds) save(certPEM, keyPEM []byte) error {
	if c.dir == "" {
		return nil
	}
	// The key first: a crash between the two leaves the old certificate
	// with a new key, which LoadCreds refuses, rather than the reverse
	// going unnoticed.
	if err := writeFile(c.dir, keyFile, keyPEM, 0o600); err != nil {
		return err
	}
	return writeFile(c.dir, certFile, certPEM, 0o644)
}

func writeFile(dir, name string, b []byte, mode os.FileMode) error {
	if err := renameio.WriteFile(filepath.Join(dir, name), b, mode); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// IssueTo makes a key and a certificate signed by ca for a node, and
// saves them with the CA's certificate in dir: for the one who holds the
// CA (the bootstrapping manager, the lab's Docker CA).
func IssueTo(ca *pki.CA, dir, name, role string, addrs []net.IP) (*Creds, error) {
	leaf, err := ca.Issue(name, role, addrs, time.Now())
	if err != nil {
		return nil, err
	}
	return SaveCreds(dir, ca.CertPEM, leaf.CertPEM, leaf.KeyPEM)
}

// Renew replaces the certificate and key with a renewed pair for the same
// node, in memory and in the credentials directory.
func (c *Creds) Renew(certPEM, keyPEM []byte) error {
	old := c.cert.Load()
	if err := c.set(certPEM, keyPEM); err != nil {
		return err
	}
	if err := c.save(certPEM, keyPEM); err != nil {
		c.cert.Store(old)
		return err
	}
	return nil
}

// Identity is who these credentials say this node is.
func (c *Creds) Identity() pki.Identity { return c.id }

// CAPEM is the cluster's CA certificate.
func (c *Creds) CAPEM() []byte { return bytes.Clone(c.caPEM) }

// Leaf is the current certificate.
func (c *Creds) Leaf() *x509.Certificate { return c.cert.Load().Leaf }

// Dir is where the credentials are kept ("" if only in memory).
func (c *Creds) Dir() string { return c.dir }

// checkPeer refuses a verified peer certificate that names another
// cluster, or a role not in roles (any role when roles is empty).
func (c *Creds) checkPeer(cert *x509.Certificate, roles []string) error {
	id, err := pki.IdentityOf(cert)
	if err != nil {
		return err
	}
	if id.Cluster != c.id.Cluster {
		return fmt.Errorf("%s belongs to cluster %s, not %s", id.Name, id.Cluster, c.id.Cluster)
	}
	if len(roles) > 0 && !slices.Contains(roles, id.Role) {
		return fmt.Errorf("%s is a %s, this port is for %v", id.Name, id.Role, roles)
	}
	return nil
}

// ServerTLS is the TLS config of a port. With roles, a client must show a
// certificate of this cluster naming one of them; without, a client may
// come without a certificate (the API answers such a client only where it
// needs none: a join), but one it shows must be valid and this cluster's.
func (c *Creds) ServerTLS(roles ...string) *tls.Config {
	auth := tls.VerifyClientCertIfGiven
	if len(roles) > 0 {
		auth = tls.RequireAndVerifyClientCert
	}
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		ClientAuth:     auth,
		ClientCAs:      c.pool,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c.cert.Load(), nil },
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return nil
			}
			return c.checkPeer(cs.PeerCertificates[0], roles)
		},
	}
}

// ClientTLS is the TLS config for connecting to a port of a node of one
// of roles: the server must show a certificate of this cluster naming one
// of them, for the address dialled.
func (c *Creds) ClientTLS(roles ...string) *tls.Config {
	return &tls.Config{
		MinVersion:           tls.VersionTLS13,
		RootCAs:              c.pool,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return c.cert.Load(), nil },
		VerifyConnection: func(cs tls.ConnectionState) error {
			return c.checkPeer(cs.PeerCertificates[0], roles)
		},
	}
}

// PinnedTLS is the TLS config of a node that has no credentials yet and
// joins with a token: it trusts a manager whose certificate chains to the
// CA the token pins (by fingerprint), and no other.
func PinnedTLS(token pki.Token) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		// The chain is checked below, against the pinned CA instead of
		// the system's roots.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyPinned(cs, token)
		},
	}
}

// verifyPinned checks that the server's chain holds the CA the token pins
// and that its certificate is a manager's, signed by it, for the address
// dialled.
func verifyPinned(cs tls.ConnectionState, token pki.Token) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("the manager showed no certificate")
	}
	for _, ca := range cs.PeerCertificates[1:] {
		if !token.PinsCert(ca) {
			continue
		}
		pool := x509.NewCertPool()
		pool.AddCert(ca)
		leaf := cs.PeerCertificates[0]
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: cs.ServerName}); err != nil {
			return fmt.Errorf("manager certificate: %w", err)
		}
		if id, err := pki.IdentityOf(leaf); err != nil || id.Role != pki.RoleManager {
			return errors.New("the server is not a manager of the cluster the token is for")
		}
		return nil
	}
	return errors.New("the manager's CA is not the one the join token pins: wrong cluster, or a forged token")
}

// PeerOf is who the other side of a verified TLS connection is.
func PeerOf(cs *tls.ConnectionState) (pki.Identity, bool) {
	if cs == nil || len(cs.VerifiedChains) == 0 {
		return pki.Identity{}, false
	}
	id, err := pki.IdentityOf(cs.VerifiedChains[0][0])
	return id, err == nil
}
