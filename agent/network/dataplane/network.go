package dataplane

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"github.com/clusterctl/clusterctl/networks"
)

const (
	// MaxVNI is the largest VXLAN network identifier: the field is 24 bits.
	MaxVNI = 1<<24 - 1

	// VXLANPort is the IANA port for VXLAN; every host must use the same one,
	// so it is fixed rather than configurable.
	VXLANPort = 4789

	// VXLANOverhead is what VXLAN over IPv4 adds to each frame (outer IPv4 20,
	// UDP 8, VXLAN 8, inner Ethernet 14): the overlay MTU is the underlay MTU
	// minus this, or encapsulated packets would be fragmented or dropped.
	VXLANOverhead = 50

	// MaxNetworkNameLen bounds network names so they stay readable in device
	// aliases and log lines.
	MaxNetworkNameLen = 128

	// minOverlayMTU is the smallest MTU IPv4 allows (RFC 791).
	minOverlayMTU = 68
	// maxUnderlayMTU is the largest MTU a Linux link can have.
	maxUnderlayMTU = 65535
	// ifNameMax is the longest interface name Linux accepts (IFNAMSIZ-1).
	ifNameMax = 15

	bridgePrefix = "cnbr" // bridge of a network: cnbr<vni>
	vxlanPrefix  = "cnvx" // VXLAN device of a network: cnvx<vni>
	hostPrefix   = "cnh"  // host side of an endpoint's veth pair
	ctrPrefix    = "cnc"  // container side of an endpoint's veth pair
	// endpointHashLen is how many hex digits of the endpoint id's hash go
	// into a veth name: 3+11 = 14 characters, within IFNAMSIZ.
	endpointHashLen = 11
)

var networkNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// Network is what one host needs to know to carry an overlay network: the
// cluster-wide part (name, VNI, subnet, gateway) is the same on every host,
// the host-local part (underlay address and MTU) differs per host.
type Network struct {
	// Name is the cluster's name for the network, used in errors and as the
	// bridge's alias so `ip link` shows which network a device carries.
	Name string
	// VNI identifies the network on the wire; device names derive from it.
	VNI uint32
	// Subnet is the network's IPv4 range, e.g. 10.202.0.0/24.
	Subnet netip.Prefix
	// Gateway is assigned to the bridge on every host (an anycast gateway):
	// containers reach their own host (and a DNS server there) at this
	// address, whichever host they run on.
	Gateway netip.Addr
	// Local is this host's underlay address: VXLAN packets leave from it and
	// peers send to it.
	Local netip.Addr
	// UnderlayMTU is the MTU of the device that carries Local (see
	// Plane.UnderlayMTU); the overlay's MTU is this minus VXLANOverhead.
	UnderlayMTU int
}

// Validate reports the first thing wrong with n, so bad input from the store
// or the Docker plugin is refused before anything touches the kernel.
func (n Network) Validate() error {
	if err := n.validate(); err != nil {
		return fmt.Errorf("invalid network %q: %w", n.Name, err)
	}
	return nil
}

func (n Network) validate() error {
	if err := validNetworkName(n.Name); err != nil {
		return err
	}
	if err := validVNI(n.VNI); err != nil {
		return err
	}
	if err := validSubnet(n.Subnet); err != nil {
		return err
	}
	if err := validGateway(n.Subnet, n.Gateway); err != nil {
		return err
	}
	if err := validLocal(n.Subnet, n.Local); err != nil {
		return err
	}
	return validUnderlayMTU(n.UnderlayMTU)
}

// MTU is the MTU of the overlay's devices (bridge, VXLAN, veths): the
// underlay MTU minus the VXLAN encapsulation.
func (n Network) MTU() int { return n.UnderlayMTU - VXLANOverhead }

// BridgeName is the name of n's bridge on every host.
func (n Network) BridgeName() string { return BridgeName(n.VNI) }

// VXLANName is the name of n's VXLAN device on every host.
func (n Network) VXLANName() string { return VXLANName(n.VNI) }

// BridgeName derives a network's bridge name from its VNI, so any host (and
// an agent restarting without state) finds the device again; at most 12
// characters, within IFNAMSIZ.
func BridgeName(vni uint32) string { return bridgePrefix + strconv.FormatUint(uint64(vni), 10) }

// VXLANName derives a network's VXLAN device name from its VNI, as BridgeName.
func VXLANName(vni uint32) string { return vxlanPrefix + strconv.FormatUint(uint64(vni), 10) }

// ForwardRule is the iptables rule spec (for chain FORWARD, or DOCKER-USER)
// that lets bridged overlay traffic through on a host where dockerd runs:
// dockerd sets the FORWARD policy to DROP with bridge netfilter on, which
// silently drops frames between the endpoints and the VXLAN port. The agent
// applies it with `iptables -C` then `-I`; this package never execs.
func ForwardRule(vni uint32) []string {
	br := BridgeName(vni)
	return []string{"-i", br, "-o", br, "-j", "ACCEPT"}
}

// GatewayMAC is the MAC of the network's bridge on every host. Giving all
// hosts the same gateway MAC (as EVPN's anycast gateway does) means a
// container's cached gateway entry stays right after it moves to another
// host; it is locally administered (02:63:6e = "cn") and never collides with
// EndpointMAC.
func GatewayMAC(vni uint32) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0x63, 0x6e, byte(vni >> 16), byte(vni >> 8), byte(vni)}
}

// EndpointMAC is the MAC of a container's address, as the cluster
// derives it (networks.MAC): an address always has the same MAC, whichever
// host it lands on, so peers' ARP caches never go stale when a task moves
// or an address is reused.
func EndpointMAC(ip netip.Addr) net.HardwareAddr { return networks.MAC(ip) }

func validNetworkName(name string) error {
	switch {
	case name == "":
		return errors.New("name is empty")
	case len(name) > MaxNetworkNameLen:
		return fmt.Errorf("name is longer than %d characters", MaxNetworkNameLen)
	case !networkNameRE.MatchString(name):
		return errors.New("name must be letters, digits, '_', '.' and '-', starting with a letter or digit (Docker's rule)")
	}
	return nil
}

func validVNI(vni uint32) error {
	if vni < 1 || vni > MaxVNI {
		return fmt.Errorf("vni %d out of range 1..%d", vni, MaxVNI)
	}
	return nil
}

func validSubnet(p netip.Prefix) error {
	switch {
	case !p.IsValid():
		return errors.New("subnet is missing or invalid")
	case !p.Addr().Is4():
		return fmt.Errorf("subnet %s is not IPv4", p)
	case p.Bits() < 8 || p.Bits() > 30:
		return fmt.Errorf("subnet %s: prefix length must be 8..30", p)
	case p != p.Masked():
		return fmt.Errorf("subnet %s has host bits set (did you mean %s?)", p, p.Masked())
	}
	return nil
}

func validGateway(subnet netip.Prefix, gw netip.Addr) error {
	switch {
	case !gw.IsValid():
		return errors.New("gateway is missing")
	case !gw.Is4():
		return fmt.Errorf("gateway %s is not IPv4", gw)
	case !subnet.Contains(gw):
		return fmt.Errorf("gateway %s is outside subnet %s", gw, subnet)
	case gw == subnet.Addr() || gw == broadcast(subnet):
		return fmt.Errorf("gateway %s is the network or broadcast address of %s", gw, subnet)
	}
	return nil
}

func validLocal(subnet netip.Prefix, local netip.Addr) error {
	switch {
	case !local.IsValid():
		return errors.New("local underlay address is missing")
	case !local.Is4():
		return fmt.Errorf("local underlay address %s is not IPv4", local)
	case local.IsUnspecified() || local.IsLoopback() || local.IsMulticast():
		return fmt.Errorf("local underlay address %s is not a unicast host address", local)
	case subnet.Contains(local):
		return fmt.Errorf("local underlay address %s is inside the overlay subnet %s", local, subnet)
	}
	return nil
}

func validUnderlayMTU(mtu int) error {
	if mtu < minOverlayMTU+VXLANOverhead || mtu > maxUnderlayMTU {
		return fmt.Errorf("underlay mtu %d out of range %d..%d", mtu, minOverlayMTU+VXLANOverhead, maxUnderlayMTU)
	}
	return nil
}

// validPeer checks an underlay address given for a peer host.
func validPeer(a netip.Addr) error {
	if !a.IsValid() || !a.Is4() || a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() {
		return fmt.Errorf("peer %s is not an IPv4 unicast address", a)
	}
	return nil
}

// validMAC checks a MAC meant for one endpoint: six bytes, unicast, not zero.
func validMAC(mac net.HardwareAddr) error {
	switch {
	case len(mac) != 6:
		return fmt.Errorf("mac %q is not a 6-byte ethernet address", mac.String())
	case mac[0]&1 == 1:
		return fmt.Errorf("mac %s is a multicast address", mac)
	case isZeroMAC(mac):
		return errors.New("mac 00:00:00:00:00:00 is not an endpoint address")
	}
	return nil
}

// validEndpointAddr checks an endpoint's address against its network.
func validEndpointAddr(n Network, ip netip.Addr) error {
	switch {
	case !ip.IsValid() || !ip.Is4():
		return fmt.Errorf("address %s is not IPv4", ip)
	case !n.Subnet.Contains(ip):
		return fmt.Errorf("address %s is outside subnet %s", ip, n.Subnet)
	case ip == n.Subnet.Addr() || ip == broadcast(n.Subnet):
		return fmt.Errorf("address %s is the network or broadcast address of %s", ip, n.Subnet)
	case ip == n.Gateway:
		return fmt.Errorf("address %s is the network's gateway", ip)
	}
	return nil
}

// validEndpointID accepts Docker's endpoint ids (64 hex digits) and other
// plain tokens; the id is stored as the host veth's alias (at most 255 bytes).
func validEndpointID(id string) error {
	if id == "" || len(id) > 255 {
		return fmt.Errorf("endpoint id %q must be 1..255 characters", id)
	}
	for _, r := range id {
		ok := r == '-' || r == '_' || r == '.' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')
		if !ok {
			return fmt.Errorf("endpoint id %q: only letters, digits, '-', '_' and '.' are allowed", id)
		}
	}
	return nil
}

// parseVNI recovers the VNI from a device name made by BridgeName or
// VXLANName.
func parseVNI(name, prefix string) (uint32, bool) {
	digits, ok := strings.CutPrefix(name, prefix)
	if !ok || digits == "" || (len(digits) > 1 && digits[0] == '0') {
		return 0, false
	}
	v, err := strconv.ParseUint(digits, 10, 32)
	if err != nil || validVNI(uint32(v)) != nil {
		return 0, false
	}
	return uint32(v), true
}

// broadcast is the last address of an IPv4 prefix.
func broadcast(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func isZeroMAC(mac net.HardwareAddr) bool {
	for _, b := range mac {
		if b != 0 {
			return false
		}
	}
	return true
}
