package network

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"

	netplugin "github.com/docker/go-plugins-helpers/network"

	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/networks"
)

// DriverName is the network plugin's name: Docker finds it as
// /run/docker/plugins/clusternet.sock.
const DriverName = networks.DriverName

// Plane is the host's data plane for cluster networks (package
// dataplane): a bridge and a VXLAN device per network, veth pairs for
// endpoints, forwarding entries for the endpoints on other hosts.
type Plane interface {
	// Ensure makes the network's devices and points its flooding at peers
	// (the other hosts' addresses).
	Ensure(n Segment, peers []netip.Addr) error
	// Remove deletes the network's devices.
	Remove(n Segment) error
	// CreateEndpoint makes an endpoint's veth pair on the network's
	// bridge and returns the name of the end Docker moves into the
	// container.
	CreateEndpoint(n Segment, id string, mac net.HardwareAddr, addr netip.Prefix) (string, error)
	// DeleteEndpoint removes an endpoint's veth pair.
	DeleteEndpoint(id string) error
	// SetRemote points traffic for the endpoints on other hosts at them.
	SetRemote(n Segment, eps []Remote) error
}

// Segment is a cluster network as the data plane of one host sees it.
type Segment struct {
	Name    string
	VNI     int
	Subnet  netip.Prefix
	Gateway netip.Addr
}

// Remote is an endpoint on another host.
type Remote struct {
	MAC  net.HardwareAddr
	Addr netip.Addr
	Host netip.Addr // that host's address (its VXLAN tunnel end)
}

// NetCluster is what the network driver needs of the managers
// (api.Client).
type NetCluster interface {
	Networks(ctx context.Context) (*api.NetworksResponse, error)
	Network(ctx context.Context, name string) (*api.Network, error)
	Hosts(ctx context.Context, stale bool) (*api.HostsResponse, error)
	SetEndpointHost(ctx context.Context, network, addr, host string) (*api.Lease, error)
	ClearEndpointHost(ctx context.Context, network, addr, host string) (*api.Lease, error)
}

// Driver serves Docker's remote network driver protocol for cluster
// networks. Every host makes its own Docker network (local scope) with the
// cluster network's subnet; the subnet ties it to the cluster network,
// whose VNI all hosts share, so the hosts' networks are one segment.
type Driver struct {
	Host    string // this host's name
	Cluster NetCluster
	Plane   Plane
	State   *State // what Docker told us, kept across restarts
	Log     *slog.Logger
	// Announce, when set, sends a gratuitous ARP for a joined endpoint
	// from inside its container (sandbox: the namespace's path).
	Announce func(sandbox string, mac net.HardwareAddr, addr netip.Addr) error

	mu sync.Mutex // one plugin call at a time: they are rare, and reconcile reads State
}

var _ netplugin.Driver = (*Driver)(nil)

// GetCapabilities says each host has its own Docker network object (the
// cluster, not Docker, ties them together), reaching across hosts.
func (d *Driver) GetCapabilities() (*netplugin.CapabilitiesResponse, error) {
	return &netplugin.CapabilitiesResponse{Scope: netplugin.LocalScope, ConnectivityScope: netplugin.GlobalScope}, nil
}

// CreateNetwork ties a Docker network to the cluster network with its
// subnet and makes the network's devices on this host.
func (d *Driver) CreateNetwork(req *netplugin.CreateNetworkRequest) error {
	if len(req.IPv4Data) != 1 || req.IPv4Data[0] == nil {
		return errors.New("clusternet needs exactly one IPv4 subnet: use --ipam-driver clusteripam --subnet of a cluster network")
	}
	if len(req.IPv6Data) > 0 {
		return errors.New("clusternet serves IPv4 only")
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	n, err := d.clusterNetwork(ctx, req.IPv4Data[0].Pool)
	if err != nil {
		return err
	}
	seg, err := segmentOf(*n)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	_, peers, err := d.hostAddresses(ctx)
	if err != nil {
		return err
	}
	if err := d.Plane.Ensure(seg, peers); err != nil {
		return fmt.Errorf("network %s on %s: %w", n.Name, d.Host, err)
	}
	return d.State.putNetwork(req.NetworkID, n.Name, n.VNI)
}

// clusterNetwork is the cluster network whose subnet is pool.
func (d *Driver) clusterNetwork(ctx context.Context, pool string) (*api.Network, error) {
	n, err := networkBySubnet(ctx, d.Cluster, pool)
	if err != nil {
		return nil, err
	}
	if n == nil {
		return nil, fmt.Errorf("no cluster network has subnet %s: create one with clusterctl network create", pool)
	}
	return n, nil
}

// networkBySubnet is the cluster network whose subnet is pool, nil if
// none is.
func networkBySubnet(ctx context.Context, c interface {
	Networks(context.Context) (*api.NetworksResponse, error)
}, pool string) (*api.Network, error) {
	resp, err := c.Networks(ctx)
	if err != nil {
		return nil, fmt.Errorf("list cluster networks: %w", err)
	}
	for _, n := range resp.Networks {
		if n.Subnet == pool {
			return &n, nil
		}
	}
	return nil, nil
}

// segmentOf reads a cluster network's numbers.
func segmentOf(n api.Network) (Segment, error) {
	subnet, err := netip.ParsePrefix(n.Subnet)
	if err != nil {
		return Segment{}, fmt.Errorf("network %s: bad subnet %q", n.Name, n.Subnet)
	}
	gw, err := netip.ParseAddr(n.Gateway)
	if err != nil {
		return Segment{}, fmt.Errorf("network %s: bad gateway %q", n.Name, n.Gateway)
	}
	return Segment{Name: n.Name, VNI: n.VNI, Subnet: subnet, Gateway: gw}, nil
}

// DeleteNetwork removes the network's devices here, unless another Docker
// network still uses the same cluster network.
func (d *Driver) DeleteNetwork(req *netplugin.DeleteNetworkRequest) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	name, ok := d.State.network(req.NetworkID)
	if !ok {
		return nil
	}
	// The devices are known by VNI: the cluster network's record may be
	// gone already (its app removed while this host was down).
	seg := Segment{Name: name, VNI: d.State.vni(name)}
	if err := d.State.deleteNetwork(req.NetworkID); err != nil {
		return err
	}
	if d.State.networkInUse(name) {
		return nil
	}
	return d.Plane.Remove(seg)
}

// segment is the data plane's view of a cluster network known by name.
func (d *Driver) segment(name string) (Segment, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	n, err := d.Cluster.Network(ctx, name)
	if err != nil {
		return Segment{}, fmt.Errorf("cluster network %s: %w", name, err)
	}
	return segmentOf(*n)
}

// AllocateNetwork and FreeNetwork are for global-scope drivers (Swarm).
func (d *Driver) AllocateNetwork(*netplugin.AllocateNetworkRequest) (*netplugin.AllocateNetworkResponse, error) {
	return &netplugin.AllocateNetworkResponse{}, nil
}

// FreeNetwork: see AllocateNetwork.
func (d *Driver) FreeNetwork(*netplugin.FreeNetworkRequest) error { return nil }

// CreateEndpoint records an endpoint: its address (from clusteripam) and
// the MAC derived from it, so that it keeps both wherever its task runs,
// and tells the managers the address's endpoint is on this host.
func (d *Driver) CreateEndpoint(req *netplugin.CreateEndpointRequest) (*netplugin.CreateEndpointResponse, error) {
	if req.Interface == nil || req.Interface.Address == "" {
		return nil, errors.New("clusternet endpoints need an IPv4 address from clusteripam")
	}
	addr, err := netip.ParsePrefix(req.Interface.Address)
	if err != nil {
		return nil, fmt.Errorf("endpoint address %q: %w", req.Interface.Address, err)
	}
	mac := networks.MAC(addr.Addr())
	resp := &netplugin.CreateEndpointResponse{Interface: &netplugin.EndpointInterface{MacAddress: mac.String()}}
	if req.Interface.MacAddress != "" {
		given, err := net.ParseMAC(req.Interface.MacAddress)
		if err != nil {
			return nil, fmt.Errorf("endpoint MAC %q: %w", req.Interface.MacAddress, err)
		}
		mac, resp.Interface = given, nil // Docker's own; answer nothing for it
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	name, ok := d.State.network(req.NetworkID)
	if !ok {
		return nil, fmt.Errorf("docker network %.12s is not a cluster network known here", req.NetworkID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if err := d.checkOwner(ctx, name, addr.Addr(), endpointTask(req.Options)); err != nil {
		return nil, err
	}
	if _, err := d.Cluster.SetEndpointHost(ctx, name, addr.Addr().String(), d.Host); err != nil {
		return nil, fmt.Errorf("endpoint %s on %s: %w", addr.Addr(), name, err)
	}
	ep := Endpoint{Network: name, Addr: addr.String(), MAC: mac.String()}
	if err := d.State.putEndpoint(req.EndpointID, ep); err != nil {
		return nil, err
	}
	return resp, nil
}

// OptTask is the endpoint driver option naming an endpoint's task.
const OptTask = networks.EndpointTaskOpt

// endpointTask reads OptTask from CreateEndpoint's options: Docker passes
// an endpoint's driver options there as they are.
func endpointTask(opts map[string]any) string {
	task, _ := opts[OptTask].(string)
	return task
}

// checkOwner refuses a task's address to an endpoint that is not that
// task's: clusteripam hands an address to whoever asks for it by number,
// so this is where one container cannot take another task's address.
func (d *Driver) checkOwner(ctx context.Context, network string, addr netip.Addr, task string) error {
	n, err := d.Cluster.Network(ctx, network)
	if err != nil {
		return fmt.Errorf("cluster network %s: %w", network, err)
	}
	for _, l := range n.Leases {
		if l.Addr == addr.String() && !networks.IsAdHoc(l.Task) && l.Task != task {
			return fmt.Errorf("address %s of network %s is leased to task %s", addr, network, l.Task)
		}
	}
	return nil
}

// Join makes the endpoint's veth pair; Docker moves the returned end into
// the container as eth<N> and gives it the address.
func (d *Driver) Join(req *netplugin.JoinRequest) (*netplugin.JoinResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ep, ok := d.State.endpoint(req.EndpointID)
	if !ok {
		return nil, fmt.Errorf("unknown endpoint %.12s", req.EndpointID)
	}
	seg, err := d.segment(ep.Network)
	if err != nil {
		return nil, err
	}
	mac, err := net.ParseMAC(ep.MAC)
	if err != nil {
		return nil, fmt.Errorf("endpoint %.12s: bad MAC %q", req.EndpointID, ep.MAC)
	}
	addr, err := netip.ParsePrefix(ep.Addr)
	if err != nil {
		return nil, fmt.Errorf("endpoint %.12s: bad address %q", req.EndpointID, ep.Addr)
	}
	src, err := d.Plane.CreateEndpoint(seg, req.EndpointID, mac, addr)
	if err != nil {
		return nil, fmt.Errorf("endpoint %s on %s: %w", addr.Addr(), ep.Network, err)
	}
	if d.Announce != nil && req.SandboxKey != "" {
		go func() {
			if err := d.Announce(req.SandboxKey, mac, addr.Addr()); err != nil {
				d.Log.Warn("gratuitous ARP", "network", ep.Network, "addr", addr.Addr(), "err", err)
			}
		}()
	}
	// No default route through the overlay: a container reaches its
	// network's subnet (and its DNS, on the gateway address) directly, and
	// the outside world, published ports included, through Docker's own
	// networks.
	return &netplugin.JoinResponse{InterfaceName: netplugin.InterfaceName{SrcName: src, DstPrefix: "eth"}, DisableGatewayService: true}, nil
}

// Leave removes the endpoint's veth pair (the container side is gone or
// going with the container).
func (d *Driver) Leave(req *netplugin.LeaveRequest) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.Plane.DeleteEndpoint(req.EndpointID)
}

// DeleteEndpoint forgets the endpoint and tells the managers the address
// has no endpoint here any more. Its lease stays with its task.
func (d *Driver) DeleteEndpoint(req *netplugin.DeleteEndpointRequest) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	ep, ok := d.State.endpoint(req.EndpointID)
	if !ok {
		return nil
	}
	addr, err := netip.ParsePrefix(ep.Addr)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		if _, err := d.Cluster.ClearEndpointHost(ctx, ep.Network, addr.Addr().String(), d.Host); err != nil && !api.IsNotFound(err) {
			d.Log.Warn("endpoint gone, but the managers were not told", "network", ep.Network, "addr", ep.Addr, "err", err)
		}
	}
	return d.State.deleteEndpoint(req.EndpointID)
}

// EndpointInfo has nothing to add to what Docker knows.
func (d *Driver) EndpointInfo(*netplugin.InfoRequest) (*netplugin.InfoResponse, error) {
	return &netplugin.InfoResponse{Value: map[string]string{}}, nil
}

// DiscoverNew and DiscoverDelete: peers come from the cluster's store.
func (d *Driver) DiscoverNew(*netplugin.DiscoveryNotification) error { return nil }

// DiscoverDelete: see DiscoverNew.
func (d *Driver) DiscoverDelete(*netplugin.DiscoveryNotification) error { return nil }

// ProgramExternalConnectivity: published ports are not served through
// cluster networks yet; a service that publishes ports also joins a bridge
// network.
func (d *Driver) ProgramExternalConnectivity(*netplugin.ProgramExternalConnectivityRequest) error {
	return nil
}

// RevokeExternalConnectivity: see ProgramExternalConnectivity.
func (d *Driver) RevokeExternalConnectivity(*netplugin.RevokeExternalConnectivityRequest) error {
	return nil
}
