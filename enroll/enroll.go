// Package enroll gets a node its credentials and keeps them valid: a new
// node presents a join token to the managers and receives a certificate
// for the key it made (the key never leaves it); every node renews its
// certificate in the last third of its life. Managers, agents and
// `clusterctl login` share it.
package enroll

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/pki"
	"github.com/clusterctl/clusterctl/transport"
)

// Node is a node that needs credentials.
type Node struct {
	Dir     string   // its credentials directory (ca.pem, cert.pem, key.pem)
	Name    string   // the name its certificate gives it
	Addrs   []net.IP // addresses it serves on
	Servers []string // managers' API addresses
	// Token is the join token, used only when Dir holds no credentials.
	Token string
	// Role is the role the node joins as: the token must be this role's
	// (a manager token for an operator's certificate, pki.RoleClient).
	Role string
}

// Ensure returns the node's credentials from its directory, or enrolls
// it with its token when it has none. The sealing key comes with a
// manager's first certificate only (nil otherwise).
func Ensure(ctx context.Context, n Node) (*transport.Creds, []byte, error) {
	if transport.HaveCreds(n.Dir) {
		c, err := transport.LoadCreds(n.Dir)
		return c, nil, err
	}
	if n.Token == "" {
		return nil, nil, fmt.Errorf("no credentials in %s: join with a token (--token or --token-file; clusterctl token show)", n.Dir)
	}
	tok, err := pki.ParseToken(n.Token)
	if err != nil {
		return nil, nil, err
	}
	client := n.Role == pki.RoleClient
	want := n.Role
	if client {
		want = pki.RoleManager // an operator is as trusted as a manager
	}
	if tok.Role != want {
		return nil, nil, fmt.Errorf("that is a %s token: a %s joins with the %s token", tok.Role, n.Role, want)
	}
	key, keyPEM, err := pki.NewKey()
	if err != nil {
		return nil, nil, err
	}
	csr, err := pki.NewCSR(key, n.Name)
	if err != nil {
		return nil, nil, err
	}
	req := api.CertificateRequest{Name: n.Name, Client: client, CSR: csr}
	for _, ip := range n.Addrs {
		req.Addrs = append(req.Addrs, ip.String())
	}
	resp, err := api.Enroll(ctx, n.Servers, tok, req)
	if err != nil {
		return nil, nil, err
	}
	c, err := transport.SaveCreds(n.Dir, resp.CACert, resp.Cert, keyPEM)
	if err != nil {
		return nil, nil, err
	}
	return c, resp.SealingKey, nil
}

// Renewer renews creds through the managers' API.
func Renewer(creds *transport.Creds, client *api.Client) func(context.Context) error {
	return func(ctx context.Context) error { return Renew(ctx, creds, client) }
}

// Renew gets a new certificate for a new key, for the node creds name,
// and makes it current.
func Renew(ctx context.Context, creds *transport.Creds, client *api.Client) error {
	key, keyPEM, err := pki.NewKey()
	if err != nil {
		return err
	}
	csr, err := pki.NewCSR(key, creds.Identity().Name)
	if err != nil {
		return err
	}
	req := api.CertificateRequest{CSR: csr}
	for _, ip := range creds.Leaf().IPAddresses {
		req.Addrs = append(req.Addrs, ip.String())
	}
	resp, err := client.Certificate(ctx, req)
	if err != nil {
		return fmt.Errorf("renew the certificate: %w", err)
	}
	return creds.Renew(resp.Cert, keyPEM)
}

// KeepRenewed renews the certificate with renew whenever it enters the
// last third of its life, until ctx ends. It looks every twentieth of the
// certificate's life (at most every minute), so that a failed renewal is
// tried again long before the certificate expires.
func KeepRenewed(ctx context.Context, creds *transport.Creds, renew func(context.Context) error, log *slog.Logger) {
	for {
		leaf := creds.Leaf()
		if pki.NeedsRenewal(leaf, time.Now()) {
			if err := renew(ctx); err != nil {
				log.Warn("certificate renewal", "err", err, "expires", leaf.NotAfter)
			} else {
				log.Info("certificate renewed", "expires", creds.Leaf().NotAfter)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(checkEvery(leaf)):
		}
	}
}

// checkEvery is how often KeepRenewed looks at a certificate.
func checkEvery(leaf *x509.Certificate) time.Duration {
	return min(max(leaf.NotAfter.Sub(leaf.NotBefore)/20, 100*time.Millisecond), time.Minute)
}
