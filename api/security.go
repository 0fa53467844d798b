package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/clusterctl/clusterctl/pki"
	"github.com/clusterctl/clusterctl/transport"
)

// CertificateRequest asks for a certificate (POST /v1/cluster/certificate):
// with a join token by a node that has none yet, or, without one, by a node
// renewing its own (its current certificate says who it is).
type CertificateRequest struct {
	Token string `json:"token,omitempty"`
	// Name is the node's name (a new node only).
	Name string `json:"name,omitempty"`
	// Client asks, with a manager token, for an operator's certificate
	// (clusterctl login) instead of a manager's.
	Client bool `json:"client,omitempty"`
	// Addrs are the IP addresses the node serves on (its certificate's
	// IP SANs).
	Addrs []string `json:"addrs,omitempty"`
	CSR   []byte   `json:"csr"` // PEM certificate request
}

// CertificateResponse is a signed certificate.
type CertificateResponse struct {
	CACert []byte `json:"ca_cert"` // PEM
	Cert   []byte `json:"cert"`    // PEM
	// SealingKey is what seals the cluster's secrets in the store: given
	// to a joining manager only.
	SealingKey []byte `json:"sealing_key,omitempty"`
}

// TokenResponse is a role's join token.
type TokenResponse struct {
	Role  string `json:"role"`
	Token string `json:"token"`
}

// Certificate asks the cluster to renew this node's certificate.
func (c *Client) Certificate(ctx context.Context, req CertificateRequest) (*CertificateResponse, error) {
	var r CertificateResponse
	return &r, c.do(ctx, http.MethodPost, "/v1/cluster/certificate", req, &r)
}

// Token returns a role's join token.
func (c *Client) Token(ctx context.Context, role string) (*TokenResponse, error) {
	var r TokenResponse
	return &r, c.do(ctx, http.MethodGet, "/v1/cluster/tokens/"+url.PathEscape(role), nil, &r)
}

// RotateToken replaces a role's join token: the old one stops working.
func (c *Client) RotateToken(ctx context.Context, role string) (*TokenResponse, error) {
	var r TokenResponse
	return &r, c.do(ctx, http.MethodPost, "/v1/cluster/tokens/"+url.PathEscape(role)+"/rotate", nil, &r)
}

// Enroll asks for a first certificate with a join token, from the first of
// servers that answers. It trusts only a manager whose CA the token pins.
func Enroll(ctx context.Context, servers []string, token pki.Token, req CertificateRequest) (*CertificateResponse, error) {
	if len(servers) == 0 {
		return nil, errors.New("no managers to join: pass their API addresses")
	}
	c := &Client{servers: servers, http: &http.Client{Transport: transport.RoundTripper(transport.PinnedTLS(token)), Timeout: requestTimeout}}
	req.Token = token.String()
	var r CertificateResponse
	if err := c.do(ctx, http.MethodPost, "/v1/cluster/certificate", req, &r); err != nil {
		return nil, fmt.Errorf("join with the %s token: %w", token.Role, err)
	}
	return &r, nil
}
