package network

import (
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"time"

	"github.com/clusterctl/clusterctl/agent/network/dataplane"
)

// HostPlane is the data plane of the host the agent runs on: package
// dataplane in the agent's network namespace, with the underlay address
// the host registered, plus the forwarding rule Docker's FORWARD policy
// would otherwise drop overlay traffic without.
type HostPlane struct {
	Plane *dataplane.Plane
	Local netip.Addr // this host's address: the VXLAN tunnels' end
	mtu   int
}

var _ Plane = (*HostPlane)(nil)

// network is seg as the data plane takes it.
func (h *HostPlane) network(seg Segment) (dataplane.Network, error) {
	if h.mtu == 0 {
		mtu, err := h.Plane.UnderlayMTU(h.Local)
		if err != nil {
			return dataplane.Network{}, err
		}
		h.mtu = mtu
	}
	return dataplane.Network{Name: seg.Name, VNI: uint32(seg.VNI), Subnet: seg.Subnet, Gateway: seg.Gateway,
		Local: h.Local, UnderlayMTU: h.mtu}, nil
}

// Ensure makes the network's devices, its flood list and its forwarding
// rule.
func (h *HostPlane) Ensure(seg Segment, peers []netip.Addr) error {
	n, err := h.network(seg)
	if err != nil {
		return err
	}
	if err := h.Plane.Ensure(n, peers); err != nil {
		return err
	}
	return ensureForwardRule(uint32(seg.VNI))
}

// Remove deletes the network's devices and its forwarding rule.
func (h *HostPlane) Remove(seg Segment) error {
	if err := h.Plane.Remove(dataplane.Network{Name: seg.Name, VNI: uint32(seg.VNI)}); err != nil {
		return err
	}
	return removeForwardRule(uint32(seg.VNI))
}

// CreateEndpoint makes the endpoint's veth pair and returns the end Docker
// moves into the container.
func (h *HostPlane) CreateEndpoint(seg Segment, id string, mac net.HardwareAddr, addr netip.Prefix) (string, error) {
	n, err := h.network(seg)
	if err != nil {
		return "", err
	}
	ep, err := h.Plane.CreateEndpoint(n, id, mac, addr)
	if err != nil {
		return "", err
	}
	return ep.ContainerIfName, nil
}

// DeleteEndpoint removes the endpoint's veth pair.
func (h *HostPlane) DeleteEndpoint(id string) error { return h.Plane.DeleteEndpoint(id) }

// SetRemote points traffic for endpoints on other hosts at them.
func (h *HostPlane) SetRemote(seg Segment, eps []Remote) error {
	n, err := h.network(seg)
	if err != nil {
		return err
	}
	out := make([]dataplane.RemoteEndpoint, 0, len(eps))
	for _, e := range eps {
		out = append(out, dataplane.RemoteEndpoint{MAC: e.MAC, IP: e.Addr, Host: e.Host})
	}
	return h.Plane.SetRemoteEndpoints(n, out)
}

// Announce sends a gratuitous ARP for an endpoint from inside its
// container, once Docker has moved the interface there and configured it:
// local peers' caches follow at once. It tries for a few seconds, as the
// container is still being set up when Join answers.
func Announce(sandbox string, mac net.HardwareAddr, addr netip.Addr) error {
	var err error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if err = dataplane.Announce(sandbox, mac, addr); err == nil {
			return nil
		}
	}
	return fmt.Errorf("announce %s: %w", addr, err)
}

// ensureForwardRule lets a network's bridge forward to itself in spite of
// dockerd's FORWARD policy (DROP, with bridge netfilter on).
func ensureForwardRule(vni uint32) error {
	rule := dataplane.ForwardRule(vni)
	if iptables(append([]string{"-C", "FORWARD"}, rule...)...) == nil {
		return nil
	}
	return iptables(append([]string{"-I", "FORWARD"}, rule...)...)
}

// removeForwardRule removes the rule, every copy of it.
func removeForwardRule(vni uint32) error {
	rule := dataplane.ForwardRule(vni)
	for iptables(append([]string{"-C", "FORWARD"}, rule...)...) == nil {
		if err := iptables(append([]string{"-D", "FORWARD"}, rule...)...); err != nil {
			return err
		}
	}
	return nil
}

// iptables runs iptables with args (waiting for the xtables lock).
func iptables(args ...string) error {
	out, err := exec.Command("iptables", append([]string{"-w", "5"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("iptables %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
