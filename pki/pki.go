// Package pki holds the cluster's certificate authority, the certificates
// it issues, the join tokens and the sealing of the CA's key at rest: the
// pieces of mutual TLS (issue 10) that do not depend on where they are
// wired in.
//
// A certificate names its holder and its role in two places that
// clusterctl reads: the Subject (CN the node's name, OU its role) for
// humans and logs, and a URI SAN clusterctl://CLUSTER/ROLE/NAME that
// RoleOf checks, so that a certificate of another cluster, even one signed
// by a CA with the same name, is refused.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"strings"
	"time"
)

// Roles a certificate can name.
const (
	RoleManager = "manager" // a server: Raft, the API, the CA
	RoleWorker  = "worker"  // an agent on a Docker host
	RoleClient  = "client"  // the CLI and the dashboard
)

// Validity of what the CA signs. Leaves are short-lived and renewed in
// the last third of their life (NeedsRenewal).
const (
	CAValidity   = 10 * 365 * 24 * time.Hour
	LeafValidity = 90 * 24 * time.Hour
)

// CA is the cluster's certificate authority.
type CA struct {
	ClusterID string
	Cert      *x509.Certificate
	CertPEM   []byte
	// LeafTTL is how long the certificates it signs last (LeafValidity
	// when zero): tests shorten it to see renewal happen.
	LeafTTL time.Duration
	key     *ecdsa.PrivateKey
}

// NewCA creates a cluster's CA (ECDSA P-256), valid from now.
func NewCA(clusterID string, now time.Time) (*CA, error) {
	if clusterID == "" || strings.ContainsAny(clusterID, "/ ") {
		return nil, fmt.Errorf("cluster id %q: needed, without '/' or spaces", clusterID)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "clusterctl CA", OrganizationalUnit: []string{clusterID}},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{ClusterID: clusterID, Cert: cert, CertPEM: pemBlock("CERTIFICATE", der), key: key}, nil
}

// Leaf is an issued certificate and its key, both PEM.
type Leaf struct {
	CertPEM, KeyPEM []byte
	Cert            *x509.Certificate
}

// Issue makes a key for a node of a role and signs it: for the node that
// holds the CA itself (the bootstrapping manager).
func (ca *CA) Issue(name, role string, addrs []net.IP, now time.Time) (Leaf, error) {
	key, keyPEM, err := NewKey()
	if err != nil {
		return Leaf{}, err
	}
	leaf, err := ca.Sign(name, role, addrs, &key.PublicKey, now)
	leaf.KeyPEM = keyPEM
	return leaf, err
}

// Sign certifies a node's public key (from its certificate request: the
// node's key never leaves it) for a role, valid for servers and clients
// alike (every connection is mutual), with its addresses as IP SANs.
func (ca *CA) Sign(name, role string, addrs []net.IP, pub crypto.PublicKey, now time.Time) (Leaf, error) {
	if err := checkRole(role); err != nil {
		return Leaf{}, err
	}
	if name == "" || strings.ContainsAny(name, "/ ") {
		return Leaf{}, fmt.Errorf("node name %q: needed, without '/' or spaces", name)
	}
	ttl := ca.LeafTTL
	if ttl <= 0 {
		ttl = LeafValidity
	}
	// Valid a little before now, for clocks slightly behind the CA's.
	backdate := min(time.Minute, ttl/10)
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: name, OrganizationalUnit: []string{role}},
		NotBefore:    now.Add(-backdate),
		NotAfter:     now.Add(ttl),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  addrs,
		URIs:         []*url.URL{identity(ca.ClusterID, role, name)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.key)
	if err != nil {
		return Leaf{}, fmt.Errorf("certificate of %s: %w", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return Leaf{}, err
	}
	return Leaf{CertPEM: pemBlock("CERTIFICATE", der), Cert: cert}, nil
}

// NewKey makes a node's private key, and its PEM.
func NewKey() (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("new key: %w", err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return key, pemBlock("EC PRIVATE KEY", der), nil
}

// NewCSR is a certificate request for key: what a node sends to be
// certified, proving it holds the key.
func NewCSR(key *ecdsa.PrivateKey, name string) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: name}}, key)
	if err != nil {
		return nil, fmt.Errorf("certificate request: %w", err)
	}
	return pemBlock("CERTIFICATE REQUEST", der), nil
}

// ParseCSR reads a certificate request and checks its signature; it
// returns the public key to certify.
func ParseCSR(b []byte) (crypto.PublicKey, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("not a PEM certificate request")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("certificate request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("certificate request: %w", err)
	}
	return csr.PublicKey, nil
}

// Pool is a cert pool holding only the CA, for verifying peers.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Identity is who a verified certificate says its holder is.
type Identity struct {
	Cluster, Role, Name string
}

// Verify checks that cert was signed by this CA, is valid at now, and
// names a node of this cluster; it returns who it names.
func (ca *CA) Verify(cert *x509.Certificate, now time.Time) (Identity, error) {
	if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return Identity{}, fmt.Errorf("certificate of %q: %w", cert.Subject.CommonName, err)
	}
	id, err := identityOf(cert)
	if err != nil {
		return Identity{}, err
	}
	if id.Cluster != ca.ClusterID {
		return Identity{}, fmt.Errorf("certificate of %q belongs to cluster %s, not %s", id.Name, id.Cluster, ca.ClusterID)
	}
	return id, nil
}

// NeedsRenewal says whether a certificate is in the last third of its
// life, when its holder renews it.
func NeedsRenewal(cert *x509.Certificate, now time.Time) bool {
	return cert.NotAfter.Sub(now) < cert.NotAfter.Sub(cert.NotBefore)/3
}

// IdentityOf reads who a certificate names, without checking its chain:
// for a certificate already verified by a TLS handshake.
func IdentityOf(cert *x509.Certificate) (Identity, error) { return identityOf(cert) }

// identity is the URI SAN naming a node.
func identity(cluster, role, name string) *url.URL {
	return &url.URL{Scheme: "clusterctl", Host: cluster, Path: "/" + role + "/" + name}
}

// identityOf reads the clusterctl URI SAN of a certificate.
func identityOf(cert *x509.Certificate) (Identity, error) {
	for _, u := range cert.URIs {
		if u.Scheme != "clusterctl" {
			continue
		}
		role, name, ok := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
		if !ok || checkRole(role) != nil || name == "" {
			break
		}
		return Identity{Cluster: u.Host, Role: role, Name: name}, nil
	}
	return Identity{}, fmt.Errorf("certificate of %q names no clusterctl node", cert.Subject.CommonName)
}

func checkRole(role string) error {
	switch role {
	case RoleManager, RoleWorker, RoleClient:
		return nil
	}
	return fmt.Errorf("role %q: want %s, %s or %s", role, RoleManager, RoleWorker, RoleClient)
}

// serial is a random 128-bit serial number.
func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		panic("pki: no randomness: " + err.Error())
	}
	return n
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// Fingerprint is the SHA-256 of a certificate, hex: what a join token
// pins, so that a joining node can check it talks to this cluster.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return fmt.Sprintf("%x", sum)
}

// ParseCertPEM reads one PEM certificate.
func ParseCertPEM(b []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("not a PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}
