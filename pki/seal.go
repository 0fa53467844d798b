package pki

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
)

// KeySize is the size of the key that seals the CA's key at rest.
const KeySize = 32

// Seal encrypts the CA's private key with a 32-byte key (AES-256-GCM, the
// cluster ID as additional data, so a sealed key cannot pass for another
// cluster's), for keeping it in the replicated store.
func (ca *CA) Seal(key []byte) ([]byte, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalECPrivateKey(ca.key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, der, []byte(ca.ClusterID)), nil
}

// OpenCA rebuilds a CA from its certificate and its sealed key; a wrong
// key, or a key sealed for another cluster, is refused.
func OpenCA(clusterID string, certPEM, sealed, key []byte) (*CA, error) {
	cert, err := ParseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	if len(sealed) < aead.NonceSize() {
		return nil, errors.New("sealed CA key: too short")
	}
	der, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], []byte(clusterID))
	if err != nil {
		return nil, errors.New("sealed CA key: wrong key, or not this cluster's")
	}
	priv, err := x509.ParseECPrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("sealed CA key: %w", err)
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(&priv.PublicKey) {
		return nil, errors.New("sealed CA key: not the key of this CA certificate")
	}
	return &CA{ClusterID: clusterID, Cert: cert, CertPEM: certPEM, key: priv}, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("sealing key: %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
