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

// KeySize is the size of the key that seals the cluster's secrets at rest:
// the CA's key and the join tokens, in the replicated store.
const KeySize = 32

// NewSealingKey makes a random sealing key.
func NewSealingKey() ([]byte, error) {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("sealing key: %w", err)
	}
	return key, nil
}

// Seal encrypts the CA's private key with the sealing key, for keeping it
// in the replicated store.
func (ca *CA) Seal(key []byte) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(ca.key)
	if err != nil {
		return nil, err
	}
	return SealBytes(key, ca.ClusterID, der)
}

// SealBytes encrypts a secret with AES-256-GCM, with context (the cluster
// ID) as additional data so that a sealed secret cannot pass for another
// cluster's.
func SealBytes(key []byte, context string, secret []byte) ([]byte, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, secret, []byte(context)), nil
}

// OpenBytes decrypts what SealBytes sealed with the same key and context.
func OpenBytes(key []byte, context string, sealed []byte) ([]byte, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	if len(sealed) < aead.NonceSize() {
		return nil, errors.New("sealed secret: too short")
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], []byte(context))
	if err != nil {
		return nil, errors.New("sealed secret: wrong key, or not this cluster's")
	}
	return plain, nil
}

// OpenCA rebuilds a CA from its certificate and its sealed key; a wrong
// key, or a key sealed for another cluster, is refused.
func OpenCA(clusterID string, certPEM, sealed, key []byte) (*CA, error) {
	cert, err := ParseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	der, err := OpenBytes(key, clusterID, sealed)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
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
