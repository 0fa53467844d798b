package pki

import (
	"crypto/rand"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base32"
	"fmt"
	"strings"
)

// A join token says which role it grants and pins the cluster's CA, like
// Swarm's: CCTL1-ROLE-FINGERPRINT-SECRET. The fingerprint lets a joining
// node check the managers' CA before it trusts them; the secret is what
// the managers check. Rotating a role's token changes its secret: the old
// one stops working, certificates already issued stay valid.
const tokenPrefix = "CCTL1"

// fingerprintLen is how much of the CA's fingerprint a token carries.
const fingerprintLen = 32

// Token is a parsed join token.
type Token struct {
	Role        string
	Fingerprint string // a prefix of the CA's Fingerprint
	Secret      string
}

// String is the token as operators pass it.
func (t Token) String() string {
	return strings.Join([]string{tokenPrefix, t.Role, t.Fingerprint, t.Secret}, "-")
}

// NewToken makes a token for a role of the cluster of ca.
func NewToken(ca *CA, role string) (Token, error) {
	if err := checkRole(role); err != nil || role == RoleClient {
		return Token{}, fmt.Errorf("join tokens are for %s or %s, not %q", RoleManager, RoleWorker, role)
	}
	raw := make([]byte, 20)
	if _, err := rand.Read(raw); err != nil {
		return Token{}, err
	}
	secret := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(raw))
	return Token{Role: role, Fingerprint: Fingerprint(ca.Cert)[:fingerprintLen], Secret: secret}, nil
}

// ParseToken reads a token, refusing anything not shaped like one.
func ParseToken(s string) (Token, error) {
	parts := strings.Split(strings.TrimSpace(s), "-")
	if len(parts) != 4 || parts[0] != tokenPrefix {
		return Token{}, fmt.Errorf("not a clusterctl join token (want %s-ROLE-FINGERPRINT-SECRET)", tokenPrefix)
	}
	t := Token{Role: parts[1], Fingerprint: parts[2], Secret: parts[3]}
	if t.Role != RoleManager && t.Role != RoleWorker {
		return Token{}, fmt.Errorf("join token for role %q: want %s or %s", t.Role, RoleManager, RoleWorker)
	}
	if len(t.Fingerprint) != fingerprintLen || len(t.Secret) != 32 {
		return Token{}, fmt.Errorf("join token: malformed fingerprint or secret")
	}
	return t, nil
}

// Pins says whether the token pins this CA.
func (t Token) Pins(ca *CA) bool { return t.PinsCert(ca.Cert) }

// PinsCert says whether the token pins this CA certificate.
func (t Token) PinsCert(cert *x509.Certificate) bool {
	return subtle.ConstantTimeCompare([]byte(t.Fingerprint), []byte(Fingerprint(cert)[:fingerprintLen])) == 1
}

// Matches says whether a presented token is this one (same role and
// secret), in constant time.
func (t Token) Matches(presented Token) bool {
	same := subtle.ConstantTimeCompare([]byte(t.Secret), []byte(presented.Secret)) == 1
	return same && t.Role == presented.Role && t.Fingerprint == presented.Fingerprint
}
