// Package dataplane is the host-local data plane of the cluster overlay
// network: what the agent's Docker network driver (clusternet) calls to wire
// containers into one L2 network that spans all hosts.
//
// Per network each host has a Linux bridge (cnbr<vni>) holding the anycast
// gateway address, and a VXLAN device (cnvx<vni>, unicast, nolearning) on
// that bridge. Peers are reached by head-end replication: one all-zero FDB
// entry per peer host carries broadcast, unknown unicast and multicast.
// Endpoints on other hosts are programmed from the cluster store
// (SetRemoteEndpoints) rather than learned, so a moved endpoint is reachable
// again as soon as the store's new location is applied.
//
// The bridge has the same gateway address and MAC (GatewayMAC) on every
// host, and the VXLAN port suppresses ARP, so a container always reaches
// its own host's gateway; the host in turn reaches only its local
// containers (a remote container's replies go to its own host's gateway).
//
// How the Docker remote driver (clusternet) uses it:
//   - on agent start and when the store's hosts change: Ensure(n, peers),
//     then SetRemoteEndpoints(n, store's endpoints), and make sure the
//     iptables rule ForwardRule(n.VNI) is in FORWARD (dockerd's DROP policy
//     otherwise drops all overlay traffic);
//   - CreateEndpoint: CreateEndpoint(n, req.EndpointID, mac, addr); reply
//     with Interface.MacAddress only if the request had none (Docker refuses
//     a driver that changes a MAC it already has) and never with Address;
//   - Join: reply InterfaceName{SrcName: ep.ContainerIfName, DstPrefix:
//     "eth"} and Gateway: n.Gateway.String();
//   - once the container runs: Announce(sandboxKey, mac, ip), and publish the
//     endpoint's host in the store so peers' SetRemoteEndpoints re-point it;
//   - DeleteEndpoint: DeleteEndpoint(id); DeleteNetwork: Remove(n).
//
// Everything goes through netlink on a handle bound to one network
// namespace; nothing execs ip, bridge or iptables.
package dataplane

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Plane programs the overlay in one network namespace (the host's, where
// dockerd runs). Its methods are safe for concurrent use; they are
// serialised, because reconciling a network reads then writes kernel state.
type Plane struct {
	mu sync.Mutex
	h  *netlink.Handle
}

// New returns a Plane for the network namespace the process runs in, which
// is what the agent wants: it runs in its dockerd's namespace.
func New() (*Plane, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open netlink: %w", err)
	}
	return &Plane{h: h}, nil
}

// NewAt returns a Plane for the network namespace ns without switching any
// thread into it (tests, or an agent serving a host namespace from outside).
// The caller may close ns afterwards; the netlink socket keeps it alive.
func NewAt(ns netns.NsHandle) (*Plane, error) {
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open netlink in namespace %s: %w", ns, err)
	}
	return &Plane{h: h}, nil
}

// Close releases the Plane's netlink socket; kernel state stays as it is.
func (p *Plane) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.h.Close()
}

// UnderlayMTU finds the MTU of the link that holds local, to fill
// Network.UnderlayMTU on this host.
func (p *Plane) UnderlayMTU(local netip.Addr) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	idx, err := p.linkIndexOf(local)
	if err != nil {
		return 0, err
	}
	link, err := p.h.LinkByIndex(idx)
	if err != nil {
		return 0, fmt.Errorf("underlay link of %s: %w", local, err)
	}
	return link.Attrs().MTU, nil
}

// linkIndexOf returns the index of the link that has addr assigned.
func (p *Plane) linkIndexOf(addr netip.Addr) (int, error) {
	addrs, err := p.addrList(nil)
	if err != nil {
		return 0, err
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP.To4()); ok && ip == addr {
			return a.LinkIndex, nil
		}
	}
	return 0, fmt.Errorf("address %s is not assigned to any link on this host", addr)
}

// linkByName returns the named link, or nil without error if it is absent.
func (p *Plane) linkByName(name string) (netlink.Link, error) {
	link, err := p.h.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
			return nil, nil
		}
		return nil, fmt.Errorf("look up link %s: %w", name, err)
	}
	return link, nil
}

// deleteLink removes a link; one already gone is not an error.
func (p *Plane) deleteLink(link netlink.Link) error {
	err := p.h.LinkDel(link)
	if err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete link %s: %w", link.Attrs().Name, err)
	}
	return nil
}

// dumpRetries bounds retries of netlink dumps that the kernel interrupted
// because the table changed underneath; a few are enough in practice.
const dumpRetries = 5

// retryDump reruns a netlink dump until it completes uninterrupted, so
// reconciliation never acts on a partial listing.
func retryDump[T any](dump func() ([]T, error)) ([]T, error) {
	for i := 0; ; i++ {
		out, err := dump()
		if !errors.Is(err, netlink.ErrDumpInterrupted) || i == dumpRetries {
			return out, err
		}
	}
}

func (p *Plane) linkList() ([]netlink.Link, error) {
	links, err := retryDump(p.h.LinkList)
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	return links, nil
}

func (p *Plane) addrList(link netlink.Link) ([]netlink.Addr, error) {
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return p.h.AddrList(link, netlink.FAMILY_V4) })
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	return addrs, nil
}

func (p *Plane) neighList(linkIndex, family int) ([]netlink.Neigh, error) {
	neighs, err := retryDump(func() ([]netlink.Neigh, error) { return p.h.NeighList(linkIndex, family) })
	if err != nil {
		return nil, fmt.Errorf("list neighbours: %w", err)
	}
	return neighs, nil
}

// quietIPv6 stops the kernel giving a link an IPv6 link-local address. The
// overlay is IPv4; without this every bridge and port would send router
// solicitations and MLD reports across the VXLAN, from the shared gateway
// MAC. Must run before the link first comes up. A kernel without IPv6 has
// nothing to quieten.
func (p *Plane) quietIPv6(link netlink.Link) error {
	const addrGenModeNone = 1 // IN6_ADDR_GEN_MODE_NONE
	err := p.h.LinkSetIP6AddrGenMode(link, addrGenModeNone)
	if err != nil && !errors.Is(err, unix.EAFNOSUPPORT) && !errors.Is(err, unix.EOPNOTSUPP) {
		return fmt.Errorf("disable ipv6 link-local on %s: %w", link.Attrs().Name, err)
	}
	return nil
}

// setMTU changes a link's MTU only when it differs.
func (p *Plane) setMTU(link netlink.Link, mtu int) error {
	if link.Attrs().MTU == mtu {
		return nil
	}
	if err := p.h.LinkSetMTU(link, mtu); err != nil {
		return fmt.Errorf("set mtu %d on %s: %w", mtu, link.Attrs().Name, err)
	}
	return nil
}

// setMaster enslaves link to the bridge unless it already is.
func (p *Plane) setMaster(link, bridge netlink.Link) error {
	if link.Attrs().MasterIndex == bridge.Attrs().Index {
		return nil
	}
	if err := p.h.LinkSetMasterByIndex(link, bridge.Attrs().Index); err != nil {
		return fmt.Errorf("attach %s to %s: %w", link.Attrs().Name, bridge.Attrs().Name, err)
	}
	return nil
}

// setUp brings a link up unless it already is.
func (p *Plane) setUp(link netlink.Link) error {
	if link.Attrs().Flags&net.FlagUp != 0 {
		return nil
	}
	if err := p.h.LinkSetUp(link); err != nil {
		return fmt.Errorf("bring up %s: %w", link.Attrs().Name, err)
	}
	return nil
}

// setAlias labels a link so `ip link` (and ListEndpoints) can tell what it
// belongs to.
func (p *Plane) setAlias(link netlink.Link, alias string) error {
	if link.Attrs().Alias == alias {
		return nil
	}
	if err := p.h.LinkSetAlias(link, alias); err != nil {
		return fmt.Errorf("set alias of %s: %w", link.Attrs().Name, err)
	}
	return nil
}

// ipNet turns an IPv4 address and prefix length into netlink's form.
func ipNet(addr netip.Addr, bits int) *net.IPNet {
	return &net.IPNet{IP: net.IP(addr.AsSlice()), Mask: net.CIDRMask(bits, 32)}
}

// addrOf converts a netlink IP to netip, unmapping IPv4.
func addrOf(ip net.IP) (netip.Addr, bool) {
	a, ok := netip.AddrFromSlice(ip)
	return a.Unmap(), ok
}
