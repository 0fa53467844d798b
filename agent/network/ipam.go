// Package network is the agent's side of cluster networks: the
// clusteripam Docker IPAM driver (addresses from the cluster's leases)
// and, with package dataplane, the clusternet network driver.
package network

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	ipamplugin "github.com/docker/go-plugins-helpers/ipam"

	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/networks"
)

// IPAMDriverName is the IPAM plugin's name: Docker finds it as
// /run/docker/plugins/clusteripam.sock.
const IPAMDriverName = networks.IPAMDriverName

// Options Docker and users pass to the IPAM driver.
const (
	// OptNetwork names the cluster network of a pool (--ipam-opt
	// network=NAME); without it the pool's subnet finds it.
	OptNetwork = "network"
	// requestAddressType says which address Docker asks for; the value
	// gatewayAddress marks the gateway's.
	requestAddressType = "RequestAddressType"
	gatewayAddress     = "com.docker.network.gateway"
)

// callTimeout bounds one plugin call's work: Docker waits for it.
const callTimeout = 30 * time.Second

// Cluster is what the IPAM driver needs of the managers (api.Client).
type Cluster interface {
	CreateNetwork(ctx context.Context, req api.NetworkCreate) (*api.Network, error)
	Networks(ctx context.Context) (*api.NetworksResponse, error)
	Network(ctx context.Context, name string) (*api.Network, error)
	LeaseAddress(ctx context.Context, network string, req api.LeaseRequest) (*api.Lease, error)
	ReleaseAddress(ctx context.Context, network, addr string) error
}

// IPAM serves Docker's IPAM protocol from the cluster's networks: a pool
// is a cluster network (its name is the pool ID), an address is a lease.
// An address a task holds stays leased when Docker releases it (the
// container stopped, perhaps to move): it is freed with the task.
type IPAM struct {
	Host    string // this host's name, for ad-hoc owners
	Cluster Cluster
	Log     *slog.Logger
}

var _ ipamplugin.Ipam = (*IPAM)(nil)

// GetCapabilities: the MAC is derived from the address, not asked for.
func (d *IPAM) GetCapabilities() (*ipamplugin.CapabilitiesResponse, error) {
	return &ipamplugin.CapabilitiesResponse{}, nil
}

// GetDefaultAddressSpaces names the one address space, the cluster's.
func (d *IPAM) GetDefaultAddressSpaces() (*ipamplugin.AddressSpacesResponse, error) {
	return &ipamplugin.AddressSpacesResponse{LocalDefaultAddressSpace: "cluster", GlobalDefaultAddressSpace: "cluster"}, nil
}

// RequestPool finds the cluster network of a Docker network: by name
// (--ipam-opt network=NAME, created if missing, with the subnet given) or
// by its subnet (--subnet of a network made by clusterctl network create).
func (d *IPAM) RequestPool(req *ipamplugin.RequestPoolRequest) (*ipamplugin.RequestPoolResponse, error) {
	if req.V6 {
		return nil, errors.New("clusteripam serves IPv4 only")
	}
	if req.SubPool != "" {
		return nil, errors.New("clusteripam does not take --ip-range: the whole subnet is the cluster's")
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	n, err := d.findNetwork(ctx, req.Options[OptNetwork], req.Pool)
	if err != nil {
		return nil, err
	}
	subnet, err := netip.ParsePrefix(n.Subnet)
	if err != nil {
		return nil, fmt.Errorf("network %s: bad subnet %q", n.Name, n.Subnet)
	}
	gw := netip.PrefixFrom(netip.MustParseAddr(n.Gateway), subnet.Bits())
	return &ipamplugin.RequestPoolResponse{PoolID: n.Name, Pool: n.Subnet,
		Data: map[string]string{gatewayAddress: gw.String()}}, nil
}

// findNetwork is the cluster network named name (made if missing), or
// else the one whose subnet is pool.
func (d *IPAM) findNetwork(ctx context.Context, name, pool string) (*api.Network, error) {
	if name != "" {
		n, err := d.Cluster.CreateNetwork(ctx, api.NetworkCreate{Name: name, Subnet: pool})
		if err != nil {
			return nil, fmt.Errorf("cluster network %s: %w", name, err)
		}
		return n, nil
	}
	if pool == "" {
		return nil, errors.New("clusteripam needs the subnet of a cluster network (--subnet, see clusterctl network ls) or --ipam-opt network=NAME")
	}
	n, err := networkBySubnet(ctx, d.Cluster, pool)
	if err != nil || n != nil {
		return n, err
	}
	return nil, fmt.Errorf("no cluster network has subnet %s: create one (clusterctl network create NAME --subnet %s) or pass --ipam-opt network=NAME", pool, pool)
}

// ReleasePool does nothing: the cluster network outlives one host's
// Docker network.
func (d *IPAM) ReleasePool(*ipamplugin.ReleasePoolRequest) error { return nil }

// RequestAddress hands out the gateway, an address already leased to a
// task (the orchestrator leases before it creates the container), or an
// ad-hoc lease for a container started by hand.
func (d *IPAM) RequestAddress(req *ipamplugin.RequestAddressRequest) (*ipamplugin.RequestAddressResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	n, err := d.Cluster.Network(ctx, req.PoolID)
	if err != nil {
		return nil, fmt.Errorf("cluster network %s: %w", req.PoolID, err)
	}
	subnet, err := netip.ParsePrefix(n.Subnet)
	if err != nil {
		return nil, fmt.Errorf("network %s: bad subnet %q", n.Name, n.Subnet)
	}
	if req.Options[requestAddressType] == gatewayAddress {
		if req.Address != "" && req.Address != n.Gateway {
			return nil, fmt.Errorf("the gateway of cluster network %s is %s, not %s", n.Name, n.Gateway, req.Address)
		}
		return addressResponse(n.Gateway, subnet)
	}
	if req.Address != "" {
		for _, l := range n.Leases {
			if l.Addr == req.Address && !networks.IsAdHoc(l.Task) {
				return addressResponse(l.Addr, subnet) // a task's: its container asks for it
			}
		}
	}
	l, err := d.Cluster.LeaseAddress(ctx, n.Name, api.LeaseRequest{Task: d.adHocOwner(), Addr: req.Address})
	if err != nil {
		return nil, fmt.Errorf("address on %s: %w", n.Name, err)
	}
	d.log().Info("ad-hoc address leased", "network", n.Name, "addr", l.Addr, "owner", l.Task)
	return addressResponse(l.Addr, subnet)
}

// adHocOwner names the owner of an address no task asked for.
func (d *IPAM) adHocOwner() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return networks.AdHocOwner(d.Host, hex.EncodeToString(b))
}

func addressResponse(addr string, subnet netip.Prefix) (*ipamplugin.RequestAddressResponse, error) {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return nil, fmt.Errorf("bad address %q", addr)
	}
	return &ipamplugin.RequestAddressResponse{Address: netip.PrefixFrom(a, subnet.Bits()).String()}, nil
}

// ReleaseAddress frees an ad-hoc address; a task's address stays leased
// to it (its container may be coming back, here or on another host).
func (d *IPAM) ReleaseAddress(req *ipamplugin.ReleaseAddressRequest) error {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	n, err := d.Cluster.Network(ctx, req.PoolID)
	if err != nil {
		if api.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("cluster network %s: %w", req.PoolID, err)
	}
	for _, l := range n.Leases {
		if l.Addr == req.Address && networks.IsAdHoc(l.Task) {
			if err := d.Cluster.ReleaseAddress(ctx, n.Name, l.Addr); err != nil {
				return fmt.Errorf("release %s on %s: %w", l.Addr, n.Name, err)
			}
			d.log().Info("ad-hoc address released", "network", n.Name, "addr", l.Addr)
		}
	}
	return nil
}

func (d *IPAM) log() *slog.Logger {
	if d.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.Log
}
