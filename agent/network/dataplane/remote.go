package dataplane

import (
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// RemoteEndpoint is where the store says an endpoint lives: its MAC and IP
// on the overlay, and the underlay address of the host that runs it.
type RemoteEndpoint struct {
	MAC  net.HardwareAddr
	IP   netip.Addr
	Host netip.Addr
}

// SetRemoteEndpoints makes this host's view of n's endpoints on other hosts
// exactly eps, so that when an endpoint moves, applying the store's new list
// re-points traffic at once (VXLAN runs with nolearning: nothing else
// would). For each endpoint it programs
//   - a VXLAN FDB entry <mac> dst <host>, so unicast goes straight to that
//     host instead of being flooded to all peers;
//   - a static bridge FDB entry for <mac> on the VXLAN port;
//   - a permanent neighbour entry <ip> lladdr <mac> on the bridge, from
//     which the bridge answers ARP for it locally (neighbour suppression).
//
// Entries that are no longer in eps are removed. eps may be the network's
// whole endpoint list: entries on this host (Host == n.Local) are skipped,
// and so is any MAC that a local endpoint holds, so a list a little behind
// a move onto this host cannot steal the endpoint back.
func (p *Plane) SetRemoteEndpoints(n Network, eps []RemoteEndpoint) error {
	if err := n.Validate(); err != nil {
		return err
	}
	want, err := remoteSet(n, eps)
	if err != nil {
		return fmt.Errorf("set remote endpoints of %s: %w", n.Name, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.setRemote(n, want); err != nil {
		return fmt.Errorf("set remote endpoints of %s: %w", n.Name, err)
	}
	return nil
}

// remoteSet validates eps and keys the remote ones by MAC. The same MAC or IP
// claimed twice with different values is refused rather than guessed at.
func remoteSet(n Network, eps []RemoteEndpoint) (map[string]RemoteEndpoint, error) {
	byMAC := map[string]RemoteEndpoint{}
	byIP := map[netip.Addr]string{}
	for _, ep := range eps {
		if err := validRemote(n, ep); err != nil {
			return nil, err
		}
		if ep.Host == n.Local {
			continue
		}
		key := ep.MAC.String()
		if old, ok := byMAC[key]; ok && (old.IP != ep.IP || old.Host != ep.Host) {
			return nil, fmt.Errorf("mac %s listed twice: %s on %s and %s on %s", key, old.IP, old.Host, ep.IP, ep.Host)
		}
		if old, ok := byIP[ep.IP]; ok && old != key {
			return nil, fmt.Errorf("address %s listed twice: with mac %s and %s", ep.IP, old, key)
		}
		byMAC[key] = RemoteEndpoint{MAC: slices.Clone(ep.MAC), IP: ep.IP, Host: ep.Host}
		byIP[ep.IP] = key
	}
	return byMAC, nil
}

func validRemote(n Network, ep RemoteEndpoint) error {
	if err := validMAC(ep.MAC); err != nil {
		return fmt.Errorf("endpoint %s: %w", ep.IP, err)
	}
	if err := validEndpointAddr(n, ep.IP); err != nil {
		return fmt.Errorf("endpoint %s: %w", ep.MAC, err)
	}
	if err := validPeer(ep.Host); err != nil {
		return fmt.Errorf("endpoint %s: host: %w", ep.IP, err)
	}
	return nil
}

func (p *Plane) setRemote(n Network, want map[string]RemoteEndpoint) error {
	br, vx, err := p.devices(n)
	if err != nil {
		return err
	}
	local, err := p.localMACs(br, vx)
	if err != nil {
		return err
	}
	for key := range local {
		delete(want, key)
	}
	if err := p.reconcileRemoteFDB(vx, want); err != nil {
		return err
	}
	if err := p.reconcileRemotePort(vx, want); err != nil {
		return err
	}
	return p.reconcileNeighbours(n, br, want)
}

// devices returns n's bridge and VXLAN device, which Ensure must have made.
func (p *Plane) devices(n Network) (br, vx netlink.Link, err error) {
	if br, err = p.linkByName(n.BridgeName()); err != nil {
		return nil, nil, err
	}
	if vx, err = p.linkByName(n.VXLANName()); err != nil {
		return nil, nil, err
	}
	if _, ok := br.(*netlink.Bridge); !ok {
		return nil, nil, fmt.Errorf("network is not set up on this host (no bridge %s): ensure it first", n.BridgeName())
	}
	if _, ok := vx.(*netlink.Vxlan); !ok {
		return nil, nil, fmt.Errorf("network is not set up on this host (no vxlan %s): ensure it first", n.VXLANName())
	}
	return br, vx, nil
}

// localMACs are the MACs pinned on this bridge's endpoint ports: endpoints
// that live here, whatever a remote list says.
func (p *Plane) localMACs(br, vx netlink.Link) (map[string]bool, error) {
	neighs, err := p.neighList(0, unix.AF_BRIDGE)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, nb := range neighs {
		if nb.MasterIndex == br.Attrs().Index && nb.LinkIndex != vx.Attrs().Index && isStaticPortEntry(nb) {
			out[nb.HardwareAddr.String()] = true
		}
	}
	return out, nil
}

// reconcileRemoteFDB makes the VXLAN's per-MAC entries match want. A moved
// endpoint's entry is replaced in one step (for a unicast MAC the kernel keeps
// a single destination), so there is no moment when it points nowhere.
func (p *Plane) reconcileRemoteFDB(vx netlink.Link, want map[string]RemoteEndpoint) error {
	fdb, err := p.vxlanFDB(vx)
	if err != nil {
		return err
	}
	for _, key := range sortedKeys(want) {
		ep := want[key]
		if slices.Equal(fdb[key], []netip.Addr{ep.Host}) {
			continue
		}
		if err := p.h.NeighSet(vxlanEntry(vx, ep.MAC, ep.Host)); err != nil {
			return fmt.Errorf("point %s at %s on %s: %w", key, ep.Host, vx.Attrs().Name, err)
		}
	}
	for key, dsts := range fdb {
		if _, ok := want[key]; ok || key == zeroMAC.String() {
			continue
		}
		mac, _ := net.ParseMAC(key)
		for _, dst := range dsts {
			if err := p.h.NeighDel(vxlanEntry(vx, mac, dst)); err != nil && !isNotFound(err) {
				return fmt.Errorf("remove stale %s dst %s from %s: %w", key, dst, vx.Attrs().Name, err)
			}
		}
	}
	return nil
}

// reconcileRemotePort makes the bridge's static entries on the VXLAN port
// match want: the bridge then forwards remote MACs to the VXLAN port without
// flooding local ports, and neighbour suppression can answer ARP for them.
func (p *Plane) reconcileRemotePort(vx netlink.Link, want map[string]RemoteEndpoint) error {
	have, err := p.staticPortEntries(vx.Attrs().Index)
	if err != nil {
		return err
	}
	for _, key := range sortedKeys(want) {
		mac := want[key].MAC
		if slices.ContainsFunc(have, func(m net.HardwareAddr) bool { return slices.Equal(m, mac) }) {
			continue
		}
		if err := p.h.NeighSet(portEntry(vx.Attrs().Index, mac)); err != nil {
			return fmt.Errorf("add %s on port %s: %w", mac, vx.Attrs().Name, err)
		}
	}
	for _, mac := range have {
		if _, ok := want[mac.String()]; ok {
			continue
		}
		if err := p.h.NeighDel(portEntry(vx.Attrs().Index, mac)); err != nil && !isNotFound(err) {
			return fmt.Errorf("remove stale %s from port %s: %w", mac, vx.Attrs().Name, err)
		}
	}
	return nil
}

// reconcileNeighbours makes the bridge's permanent neighbour entries in the
// subnet match want (IP -> MAC of remote endpoints).
func (p *Plane) reconcileNeighbours(n Network, br netlink.Link, want map[string]RemoteEndpoint) error {
	neighs, err := p.neighList(br.Attrs().Index, unix.AF_INET)
	if err != nil {
		return err
	}
	have := map[netip.Addr]net.HardwareAddr{}
	for _, nb := range neighs {
		ip, ok := addrOf(nb.IP)
		if ok && nb.LinkIndex == br.Attrs().Index && nb.State&netlink.NUD_PERMANENT != 0 && n.Subnet.Contains(ip) {
			have[ip] = nb.HardwareAddr
		}
	}
	wantIP := map[netip.Addr]net.HardwareAddr{}
	for _, key := range sortedKeys(want) {
		ep := want[key]
		wantIP[ep.IP] = ep.MAC
		if slices.Equal(have[ep.IP], ep.MAC) {
			continue
		}
		if err := p.h.NeighSet(neighEntry(br, ep.IP, ep.MAC)); err != nil {
			return fmt.Errorf("add neighbour %s -> %s on %s: %w", ep.IP, ep.MAC, br.Attrs().Name, err)
		}
	}
	for ip, mac := range have {
		if _, ok := wantIP[ip]; ok {
			continue
		}
		if err := p.h.NeighDel(neighEntry(br, ip, mac)); err != nil && !isNotFound(err) {
			return fmt.Errorf("remove stale neighbour %s from %s: %w", ip, br.Attrs().Name, err)
		}
	}
	return nil
}

// neighEntry is `ip neigh replace <ip> lladdr <mac> dev <bridge> nud permanent`.
func neighEntry(br netlink.Link, ip netip.Addr, mac net.HardwareAddr) *netlink.Neigh {
	return &netlink.Neigh{
		LinkIndex:    br.Attrs().Index,
		Family:       unix.AF_INET,
		State:        netlink.NUD_PERMANENT,
		IP:           net.IP(ip.AsSlice()),
		HardwareAddr: mac,
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
