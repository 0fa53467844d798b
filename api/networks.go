package api

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// NetworkCreate asks for a cluster network (POST /v1/networks). Creating
// one that exists with the same subnet (or none asked) succeeds.
type NetworkCreate struct {
	Name   string            `json:"name"`
	Subnet string            `json:"subnet,omitempty"` // "" picks a free /24 of 10.200.0.0/16
	Labels map[string]string `json:"labels,omitempty"`
}

// Network is a cluster network as the API shows it.
type Network struct {
	Name    string            `json:"name"`
	Subnet  string            `json:"subnet"`
	Gateway string            `json:"gateway"`
	VNI     int               `json:"vni"`
	Labels  map[string]string `json:"labels,omitempty"`
	Created time.Time         `json:"created,omitzero"`
	Leases  []Lease           `json:"leases"`
}

// Lease is an address of a network held by a task.
type Lease struct {
	Addr string `json:"addr"`
	MAC  string `json:"mac"`
	Task string `json:"task"`
	Host string `json:"host,omitempty"` // where its endpoint is, "" while it has none
}

// NetworksResponse lists the cluster networks (GET /v1/networks).
type NetworksResponse struct {
	Networks []Network `json:"networks"`
}

// LeaseRequest asks for an address for a task (POST
// /v1/networks/{name}/leases): Addr if given, else any free one.
type LeaseRequest struct {
	Task string `json:"task"`
	Addr string `json:"addr,omitempty"`
}

// EndpointHost records where an address's endpoint is (POST
// /v1/networks/{name}/leases/{addr}/endpoint); "" for nowhere.
type EndpointHost struct {
	Host string `json:"host"`
	// From, with Host "", clears the endpoint's host only if it is still
	// From: the host whose endpoint went.
	From string `json:"from,omitempty"`
}

// CreateNetwork creates a cluster network, or finds it.
func (c *Client) CreateNetwork(ctx context.Context, req NetworkCreate) (*Network, error) {
	var out Network
	return &out, c.do(ctx, http.MethodPost, "/v1/networks", req, &out)
}

// Networks lists the cluster networks with their leases.
func (c *Client) Networks(ctx context.Context) (*NetworksResponse, error) {
	var out NetworksResponse
	return &out, c.do(ctx, http.MethodGet, "/v1/networks", nil, &out)
}

// Network returns one cluster network with its leases.
func (c *Client) Network(ctx context.Context, name string) (*Network, error) {
	var out Network
	return &out, c.do(ctx, http.MethodGet, "/v1/networks/"+url.PathEscape(name), nil, &out)
}

// RemoveNetwork removes a cluster network no task holds an address of.
func (c *Client) RemoveNetwork(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/networks/"+url.PathEscape(name), nil, nil)
}

// LeaseAddress gives a task an address of a network (its own again if it
// holds one).
func (c *Client) LeaseAddress(ctx context.Context, network string, req LeaseRequest) (*Lease, error) {
	var out Lease
	return &out, c.do(ctx, http.MethodPost, "/v1/networks/"+url.PathEscape(network)+"/leases", req, &out)
}

// ReleaseAddress frees an address of a network.
func (c *Client) ReleaseAddress(ctx context.Context, network, addr string) error {
	return c.do(ctx, http.MethodDelete, "/v1/networks/"+url.PathEscape(network)+"/leases/"+url.PathEscape(addr), nil, nil)
}

// SetEndpointHost records where an address's endpoint is.
func (c *Client) SetEndpointHost(ctx context.Context, network, addr, host string) (*Lease, error) {
	var out Lease
	path := "/v1/networks/" + url.PathEscape(network) + "/leases/" + url.PathEscape(addr) + "/endpoint"
	return &out, c.do(ctx, http.MethodPost, path, EndpointHost{Host: host}, &out)
}

// ClearEndpointHost records that the address's endpoint on host is gone,
// unless it is elsewhere already.
func (c *Client) ClearEndpointHost(ctx context.Context, network, addr, host string) (*Lease, error) {
	var out Lease
	path := "/v1/networks/" + url.PathEscape(network) + "/leases/" + url.PathEscape(addr) + "/endpoint"
	return &out, c.do(ctx, http.MethodPost, path, EndpointHost{From: host}, &out)
}
