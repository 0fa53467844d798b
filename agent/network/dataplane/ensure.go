package dataplane

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// zeroMAC is the VXLAN FDB key for broadcast, unknown-unicast and multicast
// traffic: one entry per peer makes the kernel replicate such frames to every
// peer (head-end replication), since the underlay has no multicast.
var zeroMAC = net.HardwareAddr{0, 0, 0, 0, 0, 0}

// Ensure makes this host carry n: creates or repairs the bridge (gateway
// address, MTU, shared gateway MAC) and the VXLAN device on it, and makes
// the flood list exactly peers (the underlay addresses of the other hosts;
// this host's own address is ignored if present). It is idempotent: the agent
// calls it on start and whenever the store's host list changes.
//
// Ensure manages the flood list only, never the per-endpoint state of
// SetRemoteEndpoints; but repairs can lose that state (a VXLAN device whose
// VNI, local address or port no longer match is recreated, and a bridge found
// down had its neighbour entries flushed by the kernel), so call
// SetRemoteEndpoints after every Ensure. Until then unicast to remote
// endpoints is flooded to all peers, which still delivers it.
func (p *Plane) Ensure(n Network, peers []netip.Addr) error {
	if err := n.Validate(); err != nil {
		return err
	}
	want, err := peerSet(n, peers)
	if err != nil {
		return fmt.Errorf("ensure network %s: %w", n.Name, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.ensure(n, want); err != nil {
		return fmt.Errorf("ensure network %s: %w", n.Name, err)
	}
	return nil
}

func (p *Plane) ensure(n Network, peers []netip.Addr) error {
	if err := p.checkHost(n); err != nil {
		return err
	}
	br, err := p.ensureBridge(n)
	if err != nil {
		return err
	}
	vx, err := p.ensureVXLAN(n, br)
	if err != nil {
		return err
	}
	return p.reconcilePeers(vx, peers)
}

// peerSet validates and deduplicates the peer list, without the local host.
func peerSet(n Network, peers []netip.Addr) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, a := range peers {
		if err := validPeer(a); err != nil {
			return nil, err
		}
		if n.Subnet.Contains(a) {
			return nil, fmt.Errorf("peer %s is inside the overlay subnet %s", a, n.Subnet)
		}
		if a == n.Local || slices.Contains(out, a) {
			continue
		}
		out = append(out, a)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out, nil
}

// checkHost refuses to build an overlay that would break the host: the
// underlay address must be on this host (or VXLAN packets leave from nowhere)
// and the subnet must not overlap an address the host already uses.
func (p *Plane) checkHost(n Network) error {
	addrs, err := p.addrList(nil)
	if err != nil {
		return err
	}
	own := -1
	if br, err := p.linkByName(n.BridgeName()); err != nil {
		return err
	} else if br != nil {
		own = br.Attrs().Index
	}
	found := false
	for _, a := range addrs {
		ip, ok := addrOf(a.IP)
		if !ok {
			continue
		}
		found = found || ip == n.Local
		if a.LinkIndex == own {
			continue
		}
		ones, _ := a.Mask.Size()
		if used := netip.PrefixFrom(ip, ones).Masked(); used.Overlaps(n.Subnet) {
			return fmt.Errorf("subnet %s overlaps %s already used on this host (link index %d)", n.Subnet, used, a.LinkIndex)
		}
	}
	if !found {
		return fmt.Errorf("local underlay address %s is not assigned to any link on this host", n.Local)
	}
	return nil
}

// ensureBridge creates or repairs the network's bridge and returns it fresh.
func (p *Plane) ensureBridge(n Network) (netlink.Link, error) {
	name := n.BridgeName()
	link, err := p.linkByName(name)
	if err != nil {
		return nil, err
	}
	if link == nil {
		if link, err = p.createBridge(n); err != nil {
			return nil, err
		}
	} else if _, ok := link.(*netlink.Bridge); !ok {
		return nil, fmt.Errorf("link %s exists and is a %s, not a bridge: refusing to touch it", name, link.Type())
	}
	if err := p.configureBridge(n, link); err != nil {
		return nil, err
	}
	return p.refresh(link)
}

func (p *Plane) createBridge(n Network) (netlink.Link, error) {
	attrs := netlink.NewLinkAttrs()
	attrs.Name = n.BridgeName()
	attrs.MTU = n.MTU()
	attrs.HardwareAddr = GatewayMAC(n.VNI)
	if err := p.h.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil {
		return nil, fmt.Errorf("create bridge %s: %w", attrs.Name, err)
	}
	link, err := p.h.LinkByName(attrs.Name)
	if err != nil {
		return nil, fmt.Errorf("look up new bridge %s: %w", attrs.Name, err)
	}
	return link, p.quietIPv6(link)
}

func (p *Plane) configureBridge(n Network, br netlink.Link) error {
	if err := p.setMTU(br, n.MTU()); err != nil {
		return err
	}
	if mac := GatewayMAC(n.VNI); !slices.Equal(br.Attrs().HardwareAddr, mac) {
		if err := p.h.LinkSetHardwareAddr(br, mac); err != nil {
			return fmt.Errorf("set mac of bridge %s: %w", br.Attrs().Name, err)
		}
	}
	if err := p.setAlias(br, "clusternet:"+n.Name); err != nil {
		return err
	}
	if err := p.ensureGateway(n, br); err != nil {
		return err
	}
	return p.setUp(br)
}

// ensureGateway leaves exactly the gateway (with the subnet's prefix length)
// as the bridge's IPv4 address, so the host reaches its containers and
// services (a DNS server) can listen there.
func (p *Plane) ensureGateway(n Network, br netlink.Link) error {
	want := netip.PrefixFrom(n.Gateway, n.Subnet.Bits())
	addrs, err := p.addrList(br)
	if err != nil {
		return err
	}
	have := false
	for _, a := range addrs {
		ip, _ := addrOf(a.IP)
		ones, _ := a.Mask.Size()
		if netip.PrefixFrom(ip, ones) == want {
			have = true
			continue
		}
		if err := p.h.AddrDel(br, &a); err != nil {
			return fmt.Errorf("remove stale address %s from %s: %w", a.IPNet, br.Attrs().Name, err)
		}
	}
	if have {
		return nil
	}
	if err := p.h.AddrAdd(br, &netlink.Addr{IPNet: ipNet(n.Gateway, n.Subnet.Bits())}); err != nil {
		return fmt.Errorf("add gateway %s to %s: %w", want, br.Attrs().Name, err)
	}
	return nil
}

// ensureVXLAN creates or repairs the network's VXLAN device on the bridge.
func (p *Plane) ensureVXLAN(n Network, br netlink.Link) (netlink.Link, error) {
	name := n.VXLANName()
	link, err := p.linkByName(name)
	if err != nil {
		return nil, err
	}
	if link != nil {
		vx, ok := link.(*netlink.Vxlan)
		if !ok {
			return nil, fmt.Errorf("link %s exists and is a %s, not a vxlan: refusing to touch it", name, link.Type())
		}
		if !vxlanMatches(vx, n) {
			if err := p.deleteLink(vx); err != nil {
				return nil, err
			}
			link = nil
		}
	}
	if link == nil {
		if link, err = p.createVXLAN(n); err != nil {
			return nil, err
		}
	}
	if err := p.configureVXLAN(n, link, br); err != nil {
		return nil, err
	}
	return p.refresh(link)
}

// refresh re-reads a link after changes, so callers see its current state.
func (p *Plane) refresh(link netlink.Link) (netlink.Link, error) {
	fresh, err := p.h.LinkByIndex(link.Attrs().Index)
	if err != nil {
		return nil, fmt.Errorf("look up %s: %w", link.Attrs().Name, err)
	}
	return fresh, nil
}

// vxlanMatches tells whether an existing device can be kept: these settings
// cannot be changed on a live VXLAN device.
func vxlanMatches(vx *netlink.Vxlan, n Network) bool {
	src, _ := addrOf(vx.SrcAddr)
	return vx.VxlanId == int(n.VNI) && src == n.Local && vx.Port == VXLANPort &&
		!vx.Learning && vx.Group == nil && vx.VtepDevIndex == 0 && !vx.FlowBased
}

func (p *Plane) createVXLAN(n Network) (netlink.Link, error) {
	attrs := netlink.NewLinkAttrs()
	attrs.Name = n.VXLANName()
	attrs.MTU = n.MTU()
	vx := &netlink.Vxlan{
		LinkAttrs: attrs,
		VxlanId:   int(n.VNI),
		SrcAddr:   net.IP(n.Local.AsSlice()),
		Port:      VXLANPort,
		// Remote MACs come from the store (SetRemoteEndpoints), not from
		// learning: a learned entry would keep pointing at the old host
		// after a move until it aged out.
		Learning: false,
	}
	if err := p.h.LinkAdd(vx); err != nil {
		return nil, fmt.Errorf("create vxlan %s (vni %d, local %s): %w", attrs.Name, n.VNI, n.Local, err)
	}
	link, err := p.h.LinkByName(attrs.Name)
	if err != nil {
		return nil, fmt.Errorf("look up new vxlan %s: %w", attrs.Name, err)
	}
	return link, p.quietIPv6(link)
}

func (p *Plane) configureVXLAN(n Network, vx, br netlink.Link) error {
	if err := p.setMTU(vx, n.MTU()); err != nil {
		return err
	}
	if err := p.setMaster(vx, br); err != nil {
		return err
	}
	// Neighbour suppression on the VXLAN port keeps ARP local: requests for
	// the gateway (on every host) are never flooded to other hosts, and
	// requests for remote endpoints known from the store are answered by the
	// bridge from its neighbour table instead of being replicated to every
	// peer.
	if err := p.h.LinkSetBrNeighSuppress(vx, true); err != nil {
		return fmt.Errorf("enable neighbour suppression on %s: %w", vx.Attrs().Name, err)
	}
	return p.setUp(vx)
}

// reconcilePeers makes the VXLAN flood list (all-zero MAC entries) exactly
// peers: missing ones are added before stale ones are removed.
func (p *Plane) reconcilePeers(vx netlink.Link, peers []netip.Addr) error {
	fdb, err := p.vxlanFDB(vx)
	if err != nil {
		return err
	}
	have := fdb[zeroMAC.String()]
	for _, peer := range peers {
		if slices.Contains(have, peer) {
			continue
		}
		if err := p.h.NeighAppend(vxlanEntry(vx, zeroMAC, peer)); err != nil {
			return fmt.Errorf("add peer %s to %s: %w", peer, vx.Attrs().Name, err)
		}
	}
	for _, old := range have {
		if slices.Contains(peers, old) {
			continue
		}
		if err := p.h.NeighDel(vxlanEntry(vx, zeroMAC, old)); err != nil && !isNotFound(err) {
			return fmt.Errorf("remove peer %s from %s: %w", old, vx.Attrs().Name, err)
		}
	}
	return nil
}

// vxlanEntry is a VXLAN FDB entry (`bridge fdb ... dev <vx> dst <host> self
// permanent`): frames for mac go to the VTEP at dst.
func vxlanEntry(vx netlink.Link, mac net.HardwareAddr, dst netip.Addr) *netlink.Neigh {
	return &netlink.Neigh{
		LinkIndex:    vx.Attrs().Index,
		Family:       unix.AF_BRIDGE,
		Flags:        netlink.NTF_SELF,
		State:        netlink.NUD_PERMANENT | netlink.NUD_NOARP,
		HardwareAddr: mac,
		IP:           net.IP(dst.AsSlice()),
	}
}

// vxlanFDB lists the VXLAN device's own FDB (not the bridge's entries for
// the port) as MAC -> destination VTEPs.
func (p *Plane) vxlanFDB(vx netlink.Link) (map[string][]netip.Addr, error) {
	neighs, err := p.neighList(vx.Attrs().Index, unix.AF_BRIDGE)
	if err != nil {
		return nil, fmt.Errorf("fdb of %s: %w", vx.Attrs().Name, err)
	}
	out := map[string][]netip.Addr{}
	for _, nb := range neighs {
		if nb.LinkIndex != vx.Attrs().Index || nb.Flags&netlink.NTF_SELF == 0 || len(nb.HardwareAddr) != 6 {
			continue
		}
		dst, ok := addrOf(nb.IP)
		if !ok {
			continue
		}
		key := nb.HardwareAddr.String()
		out[key] = append(out[key], dst)
	}
	return out, nil
}

// Remove deletes n's devices from this host, with the endpoints still
// attached to its bridge (Docker deletes endpoints before the network, so
// these are leftovers). Only n.VNI is used; an absent network is fine.
func (p *Plane) Remove(n Network) error {
	if err := validVNI(n.VNI); err != nil {
		return fmt.Errorf("remove network %s: %w", n.Name, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.remove(n.VNI); err != nil {
		return fmt.Errorf("remove network %s: %w", n.Name, err)
	}
	return nil
}

func (p *Plane) remove(vni uint32) error {
	br, err := p.linkByName(BridgeName(vni))
	if err != nil {
		return err
	}
	if br != nil {
		if err := p.deletePorts(br); err != nil {
			return err
		}
	}
	for _, name := range []string{VXLANName(vni), BridgeName(vni)} {
		link, err := p.linkByName(name)
		if err != nil {
			return err
		}
		if link == nil {
			continue
		}
		if err := p.deleteLink(link); err != nil {
			return err
		}
	}
	return nil
}

// deletePorts deletes the endpoint veths attached to a bridge.
func (p *Plane) deletePorts(br netlink.Link) error {
	links, err := p.linkList()
	if err != nil {
		return err
	}
	for _, l := range links {
		if l.Attrs().MasterIndex != br.Attrs().Index || !strings.HasPrefix(l.Attrs().Name, hostPrefix) {
			continue
		}
		if err := p.deleteLink(l); err != nil {
			return err
		}
	}
	return nil
}

// ListNetworks returns the VNIs of the overlay networks present on this
// host, so an agent restarting without state can Remove the ones the store
// no longer has.
func (p *Plane) ListNetworks() ([]uint32, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	links, err := p.linkList()
	if err != nil {
		return nil, err
	}
	var out []uint32
	for _, l := range links {
		name := l.Attrs().Name
		vni, ok := parseVNI(name, bridgePrefix)
		if !ok {
			vni, ok = parseVNI(name, vxlanPrefix)
		}
		if ok && !slices.Contains(out, vni) {
			out = append(out, vni)
		}
	}
	slices.Sort(out)
	return out, nil
}

// isNotFound tells whether a netlink delete failed only because the object
// was already gone.
func isNotFound(err error) bool {
	return err != nil && (errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ESRCH))
}
