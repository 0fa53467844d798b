package dataplane

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Endpoint is one container's attachment to an overlay network on this
// host: a veth pair whose host side is a bridge port and whose container
// side Docker moves into the container.
type Endpoint struct {
	// ID is the endpoint id Docker gave in CreateEndpoint.
	ID string
	// HostIfName is the bridge port, named from the id.
	HostIfName string
	// ContainerIfName is the container side, still in the host namespace:
	// the driver returns it as InterfaceName.SrcName in Join, and Docker
	// moves it into the container and renames it (DstPrefix + index).
	ContainerIfName string
	// MAC is the container side's address, which moves with the task.
	MAC net.HardwareAddr
	// Addr is the endpoint's address; the data plane does not configure it
	// (Docker does, from the IPAM reply), it only checks it is in the subnet.
	Addr netip.Prefix
	// MTU is set on both ends: the overlay MTU.
	MTU int
}

// HostIfName derives the host-side veth name from an endpoint id (a hash, so
// any id gives a fixed-length name within IFNAMSIZ); DeleteEndpoint needs
// only the id.
func HostIfName(id string) string { return hostPrefix + endpointHash(id) }

// ContainerIfName derives the container-side veth name from an endpoint id.
func ContainerIfName(id string) string { return ctrPrefix + endpointHash(id) }

func endpointHash(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])[:endpointHashLen]
}

// CreateEndpoint creates (or repairs) the veth pair for endpoint id on n,
// which must have been Ensured: the host side on the bridge and up, the
// container side with mac and the overlay MTU, left down for Docker to
// configure. mac is pinned as a static FDB entry on the host side, so the
// bridge delivers to it at once, even if it had learned mac elsewhere (an
// endpoint that moved here from another host). addr is only validated and
// recorded: Docker assigns it inside the container.
func (p *Plane) CreateEndpoint(n Network, id string, mac net.HardwareAddr, addr netip.Prefix) (Endpoint, error) {
	ep, err := newEndpoint(n, id, mac, addr)
	if err != nil {
		return Endpoint{}, fmt.Errorf("create endpoint %s on %s: %w", id, n.Name, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.createEndpoint(n, ep); err != nil {
		return Endpoint{}, fmt.Errorf("create endpoint %s on %s: %w", id, n.Name, err)
	}
	return ep, nil
}

// newEndpoint validates the request and derives the endpoint's names.
func newEndpoint(n Network, id string, mac net.HardwareAddr, addr netip.Prefix) (Endpoint, error) {
	if err := n.Validate(); err != nil {
		return Endpoint{}, err
	}
	if err := validEndpointID(id); err != nil {
		return Endpoint{}, err
	}
	if err := validMAC(mac); err != nil {
		return Endpoint{}, err
	}
	if slices.Equal(mac, GatewayMAC(n.VNI)) {
		return Endpoint{}, fmt.Errorf("mac %s is the network's gateway mac", mac)
	}
	if err := validEndpointAddr(n, addr.Addr()); err != nil {
		return Endpoint{}, err
	}
	if addr.Bits() != n.Subnet.Bits() {
		return Endpoint{}, fmt.Errorf("address %s: prefix length must be the subnet's (/%d)", addr, n.Subnet.Bits())
	}
	return Endpoint{
		ID:              id,
		HostIfName:      HostIfName(id),
		ContainerIfName: ContainerIfName(id),
		MAC:             slices.Clone(mac),
		Addr:            addr,
		MTU:             n.MTU(),
	}, nil
}

func (p *Plane) createEndpoint(n Network, ep Endpoint) error {
	br, err := p.linkByName(n.BridgeName())
	if err != nil {
		return err
	}
	if _, ok := br.(*netlink.Bridge); !ok {
		return fmt.Errorf("network is not set up on this host (no bridge %s): ensure it first", n.BridgeName())
	}
	host, err := p.linkByName(ep.HostIfName)
	if err != nil {
		return err
	}
	created := false
	if host == nil {
		if host, err = p.createVeth(ep); err != nil {
			return err
		}
		created = true
	} else if err := checkOwnVeth(host, ep.ID); err != nil {
		return err
	}
	if err := p.configureEndpoint(ep, host, br); err != nil {
		if created {
			_ = p.deleteLink(host) // best effort: leave nothing half-made
		}
		return err
	}
	return nil
}

// checkOwnVeth refuses to reuse a link that is not this endpoint's veth.
func checkOwnVeth(link netlink.Link, id string) error {
	if _, ok := link.(*netlink.Veth); !ok {
		return fmt.Errorf("link %s exists and is a %s, not a veth: refusing to touch it", link.Attrs().Name, link.Type())
	}
	if alias := link.Attrs().Alias; alias != id {
		return fmt.Errorf("link %s belongs to endpoint %q, not %q", link.Attrs().Name, alias, id)
	}
	return nil
}

func (p *Plane) createVeth(ep Endpoint) (netlink.Link, error) {
	attrs := netlink.NewLinkAttrs()
	attrs.Name = ep.HostIfName
	attrs.MTU = ep.MTU
	veth := netlink.NewVeth(attrs)
	veth.PeerName = ep.ContainerIfName
	veth.PeerHardwareAddr = ep.MAC
	veth.PeerMTU = uint32(ep.MTU)
	if err := p.h.LinkAdd(veth); err != nil {
		return nil, fmt.Errorf("create veth %s/%s: %w", ep.HostIfName, ep.ContainerIfName, err)
	}
	link, err := p.h.LinkByName(ep.HostIfName)
	if err != nil {
		return nil, fmt.Errorf("look up new veth %s: %w", ep.HostIfName, err)
	}
	if err := p.setAlias(link, ep.ID); err != nil {
		_ = p.deleteLink(link)
		return nil, err
	}
	return link, nil
}

// configureEndpoint brings both ends to the wanted state; the container
// side is only touched while it is still in this namespace.
func (p *Plane) configureEndpoint(ep Endpoint, host, br netlink.Link) error {
	if err := p.quietIPv6(host); err != nil {
		return err
	}
	if err := p.setMTU(host, ep.MTU); err != nil {
		return err
	}
	if err := p.setMaster(host, br); err != nil {
		return err
	}
	if err := p.setUp(host); err != nil {
		return err
	}
	if err := p.pinMAC(host, ep.MAC); err != nil {
		return err
	}
	ctr, err := p.linkByName(ep.ContainerIfName)
	if err != nil || ctr == nil {
		return err // nil, nil: already moved into its container
	}
	if err := p.setMTU(ctr, ep.MTU); err != nil {
		return err
	}
	if !slices.Equal(ctr.Attrs().HardwareAddr, ep.MAC) {
		if err := p.h.LinkSetHardwareAddr(ctr, ep.MAC); err != nil {
			return fmt.Errorf("set mac %s on %s: %w", ep.MAC, ep.ContainerIfName, err)
		}
	}
	return nil
}

// pinMAC makes mac a static bridge FDB entry on the port (and drops other
// static entries there): replacing any entry the bridge learned for mac on
// the VXLAN port while the endpoint lived on another host.
func (p *Plane) pinMAC(port netlink.Link, mac net.HardwareAddr) error {
	static, err := p.staticPortEntries(port.Attrs().Index)
	if err != nil {
		return err
	}
	for _, old := range static {
		if slices.Equal(old, mac) {
			continue
		}
		if err := p.h.NeighDel(portEntry(port.Attrs().Index, old)); err != nil && !isNotFound(err) {
			return fmt.Errorf("remove stale mac %s from %s: %w", old, port.Attrs().Name, err)
		}
	}
	if err := p.h.NeighSet(portEntry(port.Attrs().Index, mac)); err != nil {
		return fmt.Errorf("pin mac %s on %s: %w", mac, port.Attrs().Name, err)
	}
	return nil
}

// portEntry is a static bridge FDB entry (`bridge fdb replace <mac> dev
// <port> master static`). NUD_NOARP alone is "static": NUD_PERMANENT would
// mean the bridge's own address and deliver the frames to the host.
func portEntry(portIndex int, mac net.HardwareAddr) *netlink.Neigh {
	return &netlink.Neigh{
		LinkIndex:    portIndex,
		Family:       unix.AF_BRIDGE,
		Flags:        netlink.NTF_MASTER,
		State:        netlink.NUD_NOARP,
		HardwareAddr: mac,
	}
}

// staticPortEntries lists the static (not learned, not local) bridge FDB
// entries on one port.
func (p *Plane) staticPortEntries(portIndex int) ([]net.HardwareAddr, error) {
	neighs, err := p.neighList(portIndex, unix.AF_BRIDGE)
	if err != nil {
		return nil, err
	}
	var out []net.HardwareAddr
	for _, nb := range neighs {
		if isStaticPortEntry(nb) && nb.LinkIndex == portIndex {
			out = append(out, nb.HardwareAddr)
		}
	}
	return out, nil
}

// isStaticPortEntry picks, from a bridge FDB dump, the entries added as
// "master static": the kernel reports them with the bridge as NDA_MASTER and
// without NTF_SELF (that flag marks a device's own entries), in state
// NUD_NOARP; NUD_PERMANENT would be the port's own address.
func isStaticPortEntry(nb netlink.Neigh) bool {
	return nb.MasterIndex != 0 && nb.Flags&netlink.NTF_SELF == 0 && nb.State&netlink.NUD_NOARP != 0 &&
		nb.State&netlink.NUD_PERMANENT == 0 && nb.Vlan == 0 && len(nb.HardwareAddr) == 6
}

// DeleteEndpoint removes endpoint id's veth pair, wherever its container
// side is (deleting one end deletes both). An absent endpoint is fine, as
// Docker may retry.
func (p *Plane) DeleteEndpoint(id string) error {
	if err := validEndpointID(id); err != nil {
		return fmt.Errorf("delete endpoint %s: %w", id, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.deleteEndpoint(id); err != nil {
		return fmt.Errorf("delete endpoint %s: %w", id, err)
	}
	return nil
}

func (p *Plane) deleteEndpoint(id string) error {
	host, err := p.linkByName(HostIfName(id))
	if err != nil {
		return err
	}
	if host != nil {
		if err := checkOwnVeth(host, id); err != nil {
			return err
		}
		return p.deleteLink(host)
	}
	// Host side gone but the container side back in this namespace cannot
	// happen for a veth; only a half-made pair could leave it.
	ctr, err := p.linkByName(ContainerIfName(id))
	if err != nil || ctr == nil {
		return err
	}
	if _, ok := ctr.(*netlink.Veth); !ok {
		return fmt.Errorf("link %s is a %s, not a veth: refusing to delete it", ctr.Attrs().Name, ctr.Type())
	}
	return p.deleteLink(ctr)
}

// ListEndpoints returns the ids of the endpoints on this host (from the
// host veths' aliases), so a restarted agent can delete those the store no
// longer has.
func (p *Plane) ListEndpoints() ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	links, err := p.linkList()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range links {
		a := l.Attrs()
		if _, ok := l.(*netlink.Veth); ok && strings.HasPrefix(a.Name, hostPrefix) && a.Name == HostIfName(a.Alias) {
			out = append(out, a.Alias)
		}
	}
	slices.Sort(out)
	return out, nil
}
