package lab

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// nsPath is where a named network namespace is pinned, as `ip netns` does.
func nsPath(host string) string { return "/run/netns/" + nsName(host) }

// checkSubnetFree refuses a subnet that the machine already uses outside the
// lab: routing into it would break the machine's own network.
func checkSubnetFree(subnet netip.Prefix) error {
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("list the machine's addresses: %w", err)
	}
	for _, a := range addrs {
		link, err := netlink.LinkByIndex(a.LinkIndex)
		if err != nil || link.Attrs().Name == bridgeName {
			continue
		}
		ones, _ := a.Mask.Size()
		ip, ok := netip.AddrFromSlice(a.IP.To4())
		if !ok {
			continue
		}
		used := netip.PrefixFrom(ip, ones).Masked()
		if used.Overlaps(subnet) {
			return fmt.Errorf("address range %s is already used on this machine by %s (%s): pass --subnet with a free range", subnet, link.Attrs().Name, a.IPNet)
		}
	}
	return nil
}

// ensureBridge creates the lab switch with the gateway address, so that the
// root namespace reaches every host directly.
func ensureBridge(plan Plan) error {
	br, err := netlink.LinkByName(bridgeName)
	if err != nil {
		attrs := netlink.NewLinkAttrs()
		attrs.Name = bridgeName
		br = &netlink.Bridge{LinkAttrs: attrs}
		if err := netlink.LinkAdd(br); err != nil {
			return fmt.Errorf("create bridge %s: %w", bridgeName, err)
		}
	}
	addr := &netlink.Addr{IPNet: ipNet(plan.Gateway, plan.Subnet.Bits())}
	if err := netlink.AddrReplace(br, addr); err != nil {
		return fmt.Errorf("address bridge %s: %w", bridgeName, err)
	}
	if err := netlink.LinkSetUp(br); err != nil {
		return fmt.Errorf("bring up bridge %s: %w", bridgeName, err)
	}
	return nil
}

// ipNet turns an address and prefix length into netlink's form.
func ipNet(addr netip.Addr, bits int) *net.IPNet {
	return &net.IPNet{IP: net.IP(addr.AsSlice()), Mask: net.CIDRMask(bits, 32)}
}

// plugHost gives a host its network: a named namespace, a veth with eth0
// inside (the host's address and fixed MAC) and the other end on the bridge.
func plugHost(h HostState, prefixBits int) error {
	ns, err := newNamedNetns(nsName(h.Name))
	if err != nil {
		return fmt.Errorf("create network namespace for %s: %w", h.Name, err)
	}
	defer ns.Close()
	br, err := netlink.LinkByName(bridgeName)
	if err != nil {
		return fmt.Errorf("find bridge %s: %w", bridgeName, err)
	}
	mac, err := net.ParseMAC(h.MAC)
	if err != nil {
		return fmt.Errorf("mac of %s: %w", h.Name, err)
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name = nsName(h.Name)
	attrs.MasterIndex = br.Attrs().Index
	veth := &netlink.Veth{LinkAttrs: attrs, PeerName: "eth0", PeerHardwareAddr: mac, PeerNamespace: netlink.NsFd(int(ns))}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("create veth for %s: %w", h.Name, err)
	}
	if err := netlink.LinkSetUp(veth); err != nil {
		return fmt.Errorf("bring up veth of %s: %w", h.Name, err)
	}
	return configureInside(ns, h, prefixBits)
}

// configureInside addresses eth0 and brings up eth0 and lo in the host's
// namespace. No default route: the lab never routes anywhere but itself.
func configureInside(ns netns.NsHandle, h HostState, prefixBits int) error {
	handle, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("enter network namespace of %s: %w", h.Name, err)
	}
	defer handle.Close()
	addr, err := netip.ParseAddr(h.Addr)
	if err != nil {
		return fmt.Errorf("address of %s: %w", h.Name, err)
	}
	for _, name := range []string{"lo", "eth0"} {
		link, err := handle.LinkByName(name)
		if err != nil {
			return fmt.Errorf("find %s in %s: %w", name, h.Name, err)
		}
		if name == "eth0" {
			if err := handle.AddrReplace(link, &netlink.Addr{IPNet: ipNet(addr, prefixBits)}); err != nil {
				return fmt.Errorf("address eth0 of %s: %w", h.Name, err)
			}
		}
		if err := handle.LinkSetUp(link); err != nil {
			return fmt.Errorf("bring up %s in %s: %w", name, h.Name, err)
		}
	}
	return nil
}

// newNamedNetns creates a pinned network namespace without moving the
// caller into it: netns.NewNamed switches the calling thread, so the thread
// is locked and switched back. A thread that cannot switch back stays locked
// and dies with the goroutine rather than serve others in the wrong namespace.
func newNamedNetns(name string) (netns.NsHandle, error) {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return 0, err
	}
	defer orig.Close()
	ns, err := netns.NewNamed(name)
	if restoreErr := netns.Set(orig); restoreErr != nil {
		return 0, fmt.Errorf("return to the root network namespace: %w", restoreErr)
	}
	runtime.UnlockOSThread()
	return ns, err
}

// unplugHost removes a host's network: its veth and its namespace. Both are
// gone after this even if the namespace was never created.
func unplugHost(name string) error {
	var errs []error
	if link, err := netlink.LinkByName(nsName(name)); err == nil {
		if err := netlink.LinkDel(link); err != nil {
			errs = append(errs, fmt.Errorf("delete veth of %s: %w", name, err))
		}
	}
	if _, err := os.Stat(nsPath(name)); err == nil {
		if err := netns.DeleteNamed(nsName(name)); err != nil {
			errs = append(errs, fmt.Errorf("delete network namespace of %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// setPartitioned takes a host's cable out of the lab switch (or puts it back).
// The host keeps its link up, so it does not notice: its packets are lost, as
// in a real partition.
func setPartitioned(name string, cut bool) error {
	link, err := netlink.LinkByName(nsName(name))
	if err != nil {
		return fmt.Errorf("find the lab link of %s (is it stopped?): %w", name, err)
	}
	if cut {
		if err := netlink.LinkSetNoMaster(link); err != nil {
			return fmt.Errorf("partition %s: %w", name, err)
		}
		return nil
	}
	br, err := netlink.LinkByName(bridgeName)
	if err != nil {
		return fmt.Errorf("find bridge %s: %w", bridgeName, err)
	}
	if err := netlink.LinkSetMaster(link, br); err != nil {
		return fmt.Errorf("heal %s: %w", name, err)
	}
	return nil
}

// isPartitioned says whether a host's cable is out of the switch.
func isPartitioned(name string) bool {
	link, err := netlink.LinkByName(nsName(name))
	return err == nil && link.Attrs().MasterIndex == 0
}

// leftoverNetworks lists the lab's namespaces and links on the machine,
// whatever run made them.
func leftoverNetworks() (hosts []string, bridge bool) {
	seen := map[string]bool{}
	if entries, err := os.ReadDir("/run/netns"); err == nil {
		for _, e := range entries {
			if host, ok := strings.CutPrefix(e.Name(), nsPrefix); ok {
				seen[host] = true
			}
		}
	}
	links, _ := netlink.LinkList()
	for _, l := range links {
		name := l.Attrs().Name
		if host, ok := strings.CutPrefix(name, nsPrefix); ok {
			seen[host] = true
		}
		bridge = bridge || name == bridgeName
	}
	for h := range seen {
		hosts = append(hosts, h)
	}
	return hosts, bridge
}

// removeBridge deletes the lab switch.
func removeBridge() error {
	link, err := netlink.LinkByName(bridgeName)
	if err != nil {
		return nil
	}
	if err := netlink.LinkDel(link); err != nil {
		return fmt.Errorf("delete bridge %s: %w", bridgeName, err)
	}
	return nil
}
