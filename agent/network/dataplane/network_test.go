package dataplane

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
)

// validNetwork is a network every test tweaks from.
func validNetwork() Network {
	return Network{
		Name:        "app-net",
		VNI:         4242,
		Subnet:      netip.MustParsePrefix("10.202.0.0/24"),
		Gateway:     netip.MustParseAddr("10.202.0.1"),
		Local:       netip.MustParseAddr("10.201.0.1"),
		UnderlayMTU: 1500,
	}
}

func TestValidateAcceptsGoodNetwork(t *testing.T) {
	if err := validNetwork().Validate(); err != nil {
		t.Fatal(err)
	}
	n := validNetwork()
	n.VNI, n.Name = MaxVNI, strings.Repeat("a", MaxNetworkNameLen)
	if err := n.Validate(); err != nil {
		t.Fatalf("largest vni and longest name: %v", err)
	}
}

func TestValidateRejectsBadInput(t *testing.T) {
	cases := []struct {
		name   string
		tweak  func(*Network)
		reason string
	}{
		{"vni zero", func(n *Network) { n.VNI = 0 }, "vni 0 out of range"},
		{"vni too large", func(n *Network) { n.VNI = MaxVNI + 1 }, "vni 16777216 out of range"},
		{"empty name", func(n *Network) { n.Name = "" }, "name is empty"},
		{"name with slash", func(n *Network) { n.Name = "a/b" }, "letters, digits"},
		{"name with dots", func(n *Network) { n.Name = ".." }, "letters, digits"},
		{"name starting with dash", func(n *Network) { n.Name = "-x" }, "starting with"},
		{"long name", func(n *Network) { n.Name = strings.Repeat("a", MaxNetworkNameLen+1) }, "longer than"},
		{"ipv6 subnet", func(n *Network) { n.Subnet = netip.MustParsePrefix("fd00::/64") }, "not IPv4"},
		{"missing subnet", func(n *Network) { n.Subnet = netip.Prefix{} }, "subnet is missing"},
		{"host bits", func(n *Network) { n.Subnet = netip.MustParsePrefix("10.202.0.5/24") }, "host bits"},
		{"subnet too small", func(n *Network) { n.Subnet = netip.MustParsePrefix("10.202.0.0/31") }, "prefix length"},
		{"gateway outside", func(n *Network) { n.Gateway = netip.MustParseAddr("10.203.0.1") }, "outside subnet"},
		{"gateway network address", func(n *Network) { n.Gateway = netip.MustParseAddr("10.202.0.0") }, "network or broadcast"},
		{"gateway broadcast", func(n *Network) { n.Gateway = netip.MustParseAddr("10.202.0.255") }, "network or broadcast"},
		{"ipv6 gateway", func(n *Network) { n.Gateway = netip.MustParseAddr("fd00::1") }, "not IPv4"},
		{"missing gateway", func(n *Network) { n.Gateway = netip.Addr{} }, "gateway is missing"},
		{"missing local", func(n *Network) { n.Local = netip.Addr{} }, "local underlay address is missing"},
		{"ipv6 local", func(n *Network) { n.Local = netip.MustParseAddr("fd00::1") }, "not IPv4"},
		{"local in overlay", func(n *Network) { n.Local = netip.MustParseAddr("10.202.0.9") }, "inside the overlay"},
		{"loopback local", func(n *Network) { n.Local = netip.MustParseAddr("127.0.0.1") }, "not a unicast host"},
		{"mtu zero", func(n *Network) { n.UnderlayMTU = 0 }, "underlay mtu 0"},
		{"mtu too small", func(n *Network) { n.UnderlayMTU = 117 }, "out of range 118..65535"},
		{"mtu too large", func(n *Network) { n.UnderlayMTU = 65536 }, "out of range"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := validNetwork()
			c.tweak(&n)
			err := n.Validate()
			if err == nil {
				t.Fatalf("accepted %+v", n)
			}
			if !strings.Contains(err.Error(), c.reason) {
				t.Fatalf("error %q does not say %q", err, c.reason)
			}
			if msg := err.Error(); msg != strings.ToLower(msg[:1])+msg[1:] {
				t.Fatalf("error %q does not start lower-case", msg)
			}
		})
	}
}

func TestForwardRule(t *testing.T) {
	if got := strings.Join(ForwardRule(4242), " "); got != "-i cnbr4242 -o cnbr4242 -j ACCEPT" {
		t.Fatalf("forward rule %q", got)
	}
}

func TestMTU(t *testing.T) {
	for underlay, want := range map[int]int{1500: 1450, 9000: 8950, 1450: 1400, 118: 68} {
		n := validNetwork()
		n.UnderlayMTU = underlay
		if got := n.MTU(); got != want {
			t.Errorf("underlay %d: overlay mtu %d, want %d", underlay, got, want)
		}
	}
}

func TestDeviceNamesFitAndAreUnique(t *testing.T) {
	seen := map[string]uint32{}
	for _, vni := range []uint32{1, 9, 10, 99, 100, 4242, 65535, 65536, 1000000, MaxVNI - 1, MaxVNI} {
		for _, name := range []string{BridgeName(vni), VXLANName(vni)} {
			if len(name) > ifNameMax {
				t.Errorf("vni %d: name %q longer than %d", vni, name, ifNameMax)
			}
			if other, dup := seen[name]; dup {
				t.Errorf("name %q for vni %d and %d", name, vni, other)
			}
			seen[name] = vni
		}
		if got, ok := parseVNI(BridgeName(vni), bridgePrefix); !ok || got != vni {
			t.Errorf("parseVNI(%q) = %d, %v", BridgeName(vni), got, ok)
		}
	}
	for _, bad := range []string{"cnbr", "cnbr0", "cnbr01", "cnbr16777216", "cnbrx", "eth0", "cnvx5"} {
		if _, ok := parseVNI(bad, bridgePrefix); ok {
			t.Errorf("parseVNI accepted %q", bad)
		}
	}
}

func TestEndpointNamesFitAndAreUnique(t *testing.T) {
	seen := map[string]string{}
	for i := range 20000 {
		id := fmt.Sprintf("%064x", i*7919)
		if i%2 == 1 {
			id = fmt.Sprintf("ep-%d", i)
		}
		host, ctr := HostIfName(id), ContainerIfName(id)
		if len(host) > ifNameMax || len(ctr) > ifNameMax {
			t.Fatalf("id %s: names %q/%q too long", id, host, ctr)
		}
		if host == ctr {
			t.Fatalf("id %s: host and container names equal", id)
		}
		for _, name := range []string{host, ctr} {
			if other, dup := seen[name]; dup {
				t.Fatalf("name %q for ids %s and %s", name, id, other)
			}
			seen[name] = id
		}
		if _, ok := parseVNI(host, bridgePrefix); ok {
			t.Fatalf("endpoint name %q parses as a bridge", host)
		}
	}
	if HostIfName("a") != HostIfName("a") {
		t.Fatal("names are not deterministic")
	}
}

func TestEndpointValidation(t *testing.T) {
	n := validNetwork()
	mac := EndpointMAC(netip.MustParseAddr("10.202.0.10"))
	addr := netip.MustParsePrefix("10.202.0.10/24")
	id := strings.Repeat("ab", 32)
	if _, err := newEndpoint(n, id, mac, addr); err != nil {
		t.Fatalf("good endpoint refused: %v", err)
	}
	cases := []struct {
		name   string
		id     string
		mac    net.HardwareAddr
		addr   netip.Prefix
		reason string
	}{
		{"empty id", "", mac, addr, "1..255"},
		{"id with slash", "a/../b", mac, addr, "only letters"},
		{"id too long", strings.Repeat("a", 256), mac, addr, "1..255"},
		{"short mac", id, net.HardwareAddr{1, 2, 3}, addr, "6-byte"},
		{"multicast mac", id, net.HardwareAddr{1, 0, 0x5e, 0, 0, 1}, addr, "multicast"},
		{"zero mac", id, net.HardwareAddr{0, 0, 0, 0, 0, 0}, addr, "not an endpoint"},
		{"gateway mac", id, GatewayMAC(n.VNI), addr, "gateway mac"},
		{"outside subnet", id, mac, netip.MustParsePrefix("10.203.0.10/24"), "outside subnet"},
		{"gateway address", id, mac, netip.MustParsePrefix("10.202.0.1/24"), "gateway"},
		{"broadcast", id, mac, netip.MustParsePrefix("10.202.0.255/24"), "broadcast"},
		{"ipv6", id, mac, netip.MustParsePrefix("fd00::10/64"), "not IPv4"},
		{"wrong prefix length", id, mac, netip.MustParsePrefix("10.202.0.10/32"), "prefix length"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := newEndpoint(n, c.id, c.mac, c.addr)
			if err == nil || !strings.Contains(err.Error(), c.reason) {
				t.Fatalf("error %v, want one saying %q", err, c.reason)
			}
		})
	}
}

func TestPeerSet(t *testing.T) {
	n := validNetwork()
	a, b := netip.MustParseAddr("10.201.0.3"), netip.MustParseAddr("10.201.0.2")
	got, err := peerSet(n, []netip.Addr{a, n.Local, b, a})
	if err != nil {
		t.Fatal(err)
	}
	if want := []netip.Addr{b, a}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("peers %v, want %v (sorted, deduplicated, without local)", got, want)
	}
	for _, bad := range []netip.Addr{{}, netip.MustParseAddr("fd00::2"), netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("239.1.1.1"), netip.MustParseAddr("10.202.0.5")} {
		if _, err := peerSet(n, []netip.Addr{bad}); err == nil {
			t.Errorf("peer %v accepted", bad)
		}
	}
}

func TestRemoteSet(t *testing.T) {
	n := validNetwork()
	ip := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	x := RemoteEndpoint{MAC: EndpointMAC(ip("10.202.0.10")), IP: ip("10.202.0.10"), Host: ip("10.201.0.2")}
	local := RemoteEndpoint{MAC: EndpointMAC(ip("10.202.0.20")), IP: ip("10.202.0.20"), Host: n.Local}
	got, err := remoteSet(n, []RemoteEndpoint{x, local, x})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[x.MAC.String()].Host != x.Host {
		t.Fatalf("remote set %v, want only %v", got, x)
	}
	moved := x
	moved.Host = ip("10.201.0.3")
	if _, err := remoteSet(n, []RemoteEndpoint{x, moved}); err == nil || !strings.Contains(err.Error(), "listed twice") {
		t.Fatalf("same mac on two hosts: %v", err)
	}
	sameIP := RemoteEndpoint{MAC: EndpointMAC(ip("10.202.0.99")), IP: x.IP, Host: x.Host}
	if _, err := remoteSet(n, []RemoteEndpoint{x, sameIP}); err == nil || !strings.Contains(err.Error(), "listed twice") {
		t.Fatalf("same ip with two macs: %v", err)
	}
	bad := x
	bad.IP = ip("10.9.9.9")
	if _, err := remoteSet(n, []RemoteEndpoint{bad}); err == nil {
		t.Fatal("endpoint outside the subnet accepted")
	}
}

func TestMACs(t *testing.T) {
	if got := EndpointMAC(netip.MustParseAddr("10.202.0.10")).String(); got != "02:ce:0a:ca:00:0a" {
		t.Errorf("endpoint mac %s", got)
	}
	if got := GatewayMAC(4242).String(); got != "02:63:6e:00:10:92" {
		t.Errorf("gateway mac %s", got)
	}
	for _, m := range []net.HardwareAddr{GatewayMAC(MaxVNI), EndpointMAC(netip.MustParseAddr("255.255.255.255"))} {
		if err := validMAC(m); err != nil {
			t.Errorf("%s: %v", m, err)
		}
		if m[0]&2 == 0 {
			t.Errorf("%s is not locally administered", m)
		}
	}
}

func TestGARPFrame(t *testing.T) {
	mac := net.HardwareAddr{0x02, 0x42, 0x0a, 0xca, 0x00, 0x0a}
	ip := netip.MustParseAddr("10.202.0.10")
	for _, op := range []uint16{arpRequest, arpReply} {
		f := garpFrame(op, mac, ip)
		if len(f) != minFrame {
			t.Fatalf("frame length %d", len(f))
		}
		bcast := bytes.Repeat([]byte{0xff}, 6)
		if !bytes.Equal(f[0:6], bcast) || !bytes.Equal(f[6:12], mac) || binary.BigEndian.Uint16(f[12:14]) != 0x0806 {
			t.Fatalf("ethernet header % x", f[:14])
		}
		arp := f[14:42]
		want := []byte{0, 1, 8, 0, 6, 4, 0, byte(op)}
		want = append(want, mac...)
		want = append(want, 10, 202, 0, 10)
		if op == arpReply {
			want = append(want, mac...)
		} else {
			want = append(want, 0, 0, 0, 0, 0, 0)
		}
		want = append(want, 10, 202, 0, 10)
		if !bytes.Equal(arp, want) {
			t.Fatalf("op %d arp\n got % x\nwant % x", op, arp, want)
		}
	}
	if htons(0x0806) == 0x0806 && binary.NativeEndian.Uint16([]byte{1, 0}) == 1 {
		t.Fatal("htons does not swap on a little-endian machine")
	}
}
