package dataplane

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func TestOverlayCarriesTCPAcrossHosts(t *testing.T) {
	l := newTestLab(t, 2)
	h1, h2 := l.hosts[0], l.hosts[1]
	l.ensureAll()
	a := l.run(h1, "a", 10)
	b := l.run(h2, "b", 20)
	serveEcho(t, a)
	serveEcho(t, b)

	// 256 KiB each way: many full-size segments, so the MTU is right too.
	l.must(echo(a, b, 256<<10, 5*time.Second), "echo a -> b")
	l.must(echo(b, a, 256<<10, 5*time.Second), "echo b -> a")

	n := l.network(h1)
	br := l.mustLink(h1.testNS, n.BridgeName())
	vx := l.mustLink(h1.testNS, n.VXLANName())
	veth := l.mustLink(h1.testNS, a.ep.HostIfName)
	eth0 := l.mustLink(a.testNS, "eth0")
	for _, link := range []netlink.Link{br, vx, veth, eth0} {
		if got := link.Attrs().MTU; got != 1450 {
			t.Errorf("%s: mtu %d, want 1450", link.Attrs().Name, got)
		}
	}
	v := vx.(*netlink.Vxlan)
	if v.VxlanId != testVNI || !v.SrcAddr.Equal(net.IP(h1.addr.AsSlice())) || v.Port != VXLANPort || v.Learning {
		t.Errorf("vxlan id %d local %s port %d learning %v", v.VxlanId, v.SrcAddr, v.Port, v.Learning)
	}
	if vx.Attrs().MasterIndex != br.Attrs().Index || veth.Attrs().MasterIndex != br.Attrs().Index {
		t.Error("vxlan or endpoint not attached to the bridge")
	}
	if !slices.Equal(br.Attrs().HardwareAddr, GatewayMAC(testVNI)) {
		t.Errorf("bridge mac %s, want %s", br.Attrs().HardwareAddr, GatewayMAC(testVNI))
	}
	if !slices.Equal(eth0.Attrs().HardwareAddr, a.mac) {
		t.Errorf("container mac %s, want %s", eth0.Attrs().HardwareAddr, a.mac)
	}
	if got := bridgeAddrs(t, h1); !slices.Equal(got, []string{"10.202.0.1/24"}) {
		t.Errorf("bridge addresses %v", got)
	}
	pi, err := h1.nl.LinkGetProtinfo(vx)
	l.must(err, "protinfo")
	if !pi.NeighSuppress {
		t.Error("neighbour suppression is off on the vxlan port")
	}
	if got := floodList(t, h1); !slices.Equal(got, []netip.Addr{h2.addr}) {
		t.Errorf("flood list %v, want [%s]", got, h2.addr)
	}
	if mtu, err := h1.plane.UnderlayMTU(h1.addr); err != nil || mtu != 1500 {
		t.Errorf("underlay mtu %d, %v; want 1500", mtu, err)
	}
	if _, err := h1.plane.UnderlayMTU(netip.MustParseAddr("10.201.0.250")); err == nil {
		t.Error("underlay mtu of an address not on the host")
	}
}

func TestEnsureReconcilesPeers(t *testing.T) {
	l := newTestLab(t, 2)
	h1, h2 := l.hosts[0], l.hosts[1]
	l.ensureAll()
	a := l.run(h1, "a", 10)
	b := l.run(h2, "b", 20)
	serveEcho(t, b)
	l.must(echo(a, b, 64, 2*time.Second), "echo before")

	l.must(h1.plane.Ensure(l.network(h1), nil), "ensure without peers")
	if got := floodList(t, h1); len(got) != 0 {
		t.Fatalf("flood list %v after removing the peer", got)
	}
	wantNoEcho(t, a, b, "peer removed")

	// Back, with the local address and a duplicate thrown in.
	l.must(h1.plane.Ensure(l.network(h1), []netip.Addr{h2.addr, h1.addr, h2.addr}), "ensure with peer")
	if got := floodList(t, h1); !slices.Equal(got, []netip.Addr{h2.addr}) {
		t.Fatalf("flood list %v, want [%s]", got, h2.addr)
	}
	took, err := waitEcho(a, b, 2*time.Second)
	l.must(err, "echo after the peer came back")
	t.Logf("traffic resumed %v after the peer was added back", took.Round(time.Microsecond))

	// A peer that is not there yet, then replacing the peer list.
	ghost := netip.MustParseAddr("10.201.0.99")
	l.must(h1.plane.Ensure(l.network(h1), []netip.Addr{ghost, h2.addr}), "ensure with two peers")
	if got := floodList(t, h1); !slices.Equal(got, []netip.Addr{h2.addr, ghost}) {
		t.Fatalf("flood list %v", got)
	}
	l.must(h1.plane.Ensure(l.network(h1), []netip.Addr{ghost}), "ensure with the ghost only")
	if got := floodList(t, h1); !slices.Equal(got, []netip.Addr{ghost}) {
		t.Fatalf("flood list %v, want [%s]", got, ghost)
	}
}

func TestEnsureIsIdempotent(t *testing.T) {
	l := newTestLab(t, 2)
	h1, h2 := l.hosts[0], l.hosts[1]
	l.ensureAll()
	a := l.run(h1, "a", 10)
	b := l.run(h2, "b", 20)
	n := l.network(h1)
	l.must(h1.plane.SetRemoteEndpoints(n, []RemoteEndpoint{a.remote(h1), b.remote(h2)}), "remote endpoints")
	first := takeSnapshot(t, h1)

	l.must(h1.plane.Ensure(n, l.peersOf(h1)), "second ensure")
	if second := takeSnapshot(t, h1); !slices.Equal(first, second) {
		t.Fatalf("second ensure changed state:\nfirst:\n%s\nsecond:\n%s", strings.Join(first, "\n"), strings.Join(second, "\n"))
	}

	// Drift: devices down, wrong MTU, a stray address and a stray peer.
	br := l.mustLink(h1.testNS, n.BridgeName())
	vx := l.mustLink(h1.testNS, n.VXLANName())
	l.must(h1.nl.LinkSetDown(vx), "vxlan down")
	l.must(h1.nl.LinkSetDown(br), "bridge down")
	l.must(h1.nl.LinkSetMTU(vx, 1300), "vxlan mtu")
	l.must(h1.nl.AddrAdd(br, &netlink.Addr{IPNet: ipNet(netip.MustParseAddr("10.202.0.77"), 24)}), "stray address")
	l.must(h1.nl.NeighAppend(vxlanEntry(vx, zeroMAC, netip.MustParseAddr("10.201.0.66"))), "stray peer")
	if drifted := takeSnapshot(t, h1); slices.Equal(first, drifted) {
		t.Fatal("drift did not show in the snapshot")
	}
	l.must(h1.plane.Ensure(n, l.peersOf(h1)), "repairing ensure")
	// Taking the bridge down flushed its neighbour entries: the agent
	// re-applies the store's endpoints after every Ensure.
	l.must(h1.plane.SetRemoteEndpoints(n, []RemoteEndpoint{a.remote(h1), b.remote(h2)}), "remote endpoints again")
	if repaired := takeSnapshot(t, h1); !slices.Equal(first, repaired) {
		t.Fatalf("ensure did not repair drift:\nwant:\n%s\ngot:\n%s", strings.Join(first, "\n"), strings.Join(repaired, "\n"))
	}
	serveEcho(t, b)
	l.must(echo(a, b, 64, 2*time.Second), "echo after repair")

	// A changed underlay address recreates the vxlan device (new index).
	eth0 := l.mustLink(h1.testNS, "eth0")
	moved := netip.MustParseAddr("10.201.0.101")
	l.must(h1.nl.AddrAdd(eth0, &netlink.Addr{IPNet: ipNet(moved, 24)}), "second underlay address")
	n.Local = moved
	l.must(h1.plane.Ensure(n, l.peersOf(h1)), "ensure with new local address")
	vx2 := l.mustLink(h1.testNS, n.VXLANName()).(*netlink.Vxlan)
	if vx2.Attrs().Index == vx.Attrs().Index || !vx2.SrcAddr.Equal(net.IP(moved.AsSlice())) {
		t.Fatalf("vxlan not recreated for the new local address: index %d->%d, local %s", vx.Attrs().Index, vx2.Attrs().Index, vx2.SrcAddr)
	}
	if vx2.Attrs().MasterIndex != br.Attrs().Index || vx2.Attrs().Flags&net.FlagUp == 0 {
		t.Fatal("recreated vxlan not on the bridge or not up")
	}
}

func TestEnsureRefusesToBreakTheHost(t *testing.T) {
	l := newTestLab(t, 1)
	h := l.hosts[0]
	n := l.network(h)
	n.Local = netip.MustParseAddr("10.201.0.200")
	if err := h.plane.Ensure(n, nil); err == nil || !strings.Contains(err.Error(), "not assigned to any link") {
		t.Fatalf("ensure with a foreign local address: %v", err)
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name = "other0"
	l.must(h.nl.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}), "other link")
	other := l.mustLink(h.testNS, "other0")
	l.must(h.nl.AddrAdd(other, &netlink.Addr{IPNet: ipNet(netip.MustParseAddr("10.202.0.200"), 25)}), "other address")
	if err := h.plane.Ensure(l.network(h), nil); err == nil || !strings.Contains(err.Error(), "overlaps 10.202.0.128/25") {
		t.Fatalf("ensure with a subnet already used on the host: %v", err)
	}
	l.must(h.nl.LinkDel(other), "delete other link")
	attrs = netlink.NewLinkAttrs()
	attrs.Name = BridgeName(testVNI)
	veth := netlink.NewVeth(attrs)
	veth.PeerName = "foreign1"
	l.must(h.nl.LinkAdd(veth), "foreign link")
	if err := h.plane.Ensure(l.network(h), nil); err == nil || !strings.Contains(err.Error(), "not a bridge") {
		t.Fatalf("ensure over a foreign link: %v", err)
	}
	if got := cnLinks(t, h); !slices.Equal(got, []string{BridgeName(testVNI)}) {
		t.Fatalf("links after refusals: %v (want only the foreign one)", got)
	}
}

func TestRemoveLeavesNoLinks(t *testing.T) {
	l := newTestLab(t, 2)
	h1 := l.hosts[0]
	l.ensureAll()
	a := l.run(h1, "a", 10)
	// An endpoint whose container side never left the host namespace.
	_, err := h1.plane.CreateEndpoint(l.network(h1), "b", EndpointMAC(netip.MustParseAddr("10.202.0.11")), netip.MustParsePrefix("10.202.0.11/24"))
	l.must(err, "second endpoint")
	if got := len(cnLinks(t, h1)); got != 5 {
		t.Fatalf("%d overlay links before remove, want 5: %v", got, cnLinks(t, h1))
	}
	vnis, err := h1.plane.ListNetworks()
	l.must(err, "list networks")
	if !slices.Equal(vnis, []uint32{testVNI}) {
		t.Fatalf("networks %v", vnis)
	}

	l.must(h1.plane.Remove(l.network(h1)), "remove")
	if got := cnLinks(t, h1); len(got) != 0 {
		t.Fatalf("links left after remove: %v", got)
	}
	if links, _ := a.nl.LinkList(); len(links) != 1 {
		t.Fatalf("container still has %d links, want only lo", len(links))
	}
	l.must(h1.plane.Remove(l.network(h1)), "second remove")
	l.must(h1.plane.Remove(Network{VNI: testVNI}), "remove by vni only")
	l.must(h1.plane.DeleteEndpoint("a"), "delete endpoint after remove")
	vnis, err = h1.plane.ListNetworks()
	l.must(err, "list networks")
	if len(vnis) != 0 {
		t.Fatalf("networks %v after remove", vnis)
	}
	if err := h1.plane.Remove(Network{VNI: 0}); err == nil {
		t.Fatal("remove of vni 0 accepted")
	}
}

func TestEndpointLifecycle(t *testing.T) {
	l := newTestLab(t, 1)
	h := l.hosts[0]
	n := l.network(h)
	ip := netip.MustParseAddr("10.202.0.10")
	mac := EndpointMAC(ip)
	id := strings.Repeat("0123456789abcdef", 4)
	if _, err := h.plane.CreateEndpoint(n, id, mac, netip.PrefixFrom(ip, 24)); err == nil || !strings.Contains(err.Error(), "ensure it first") {
		t.Fatalf("endpoint before ensure: %v", err)
	}
	l.must(h.plane.Ensure(n, nil), "ensure")
	ep, err := h.plane.CreateEndpoint(n, id, mac, netip.PrefixFrom(ip, 24))
	l.must(err, "create")
	if ep.HostIfName != HostIfName(id) || ep.ContainerIfName != ContainerIfName(id) || ep.MTU != 1450 {
		t.Fatalf("endpoint %+v", ep)
	}
	host := l.mustLink(h.testNS, ep.HostIfName)
	ctr := l.mustLink(h.testNS, ep.ContainerIfName)
	if host.Attrs().Flags&net.FlagUp == 0 || ctr.Attrs().Flags&net.FlagUp != 0 {
		t.Error("host side should be up and container side down (Docker brings it up)")
	}
	if !slices.Equal(ctr.Attrs().HardwareAddr, mac) || ctr.Attrs().MTU != 1450 {
		t.Errorf("container side mac %s mtu %d", ctr.Attrs().HardwareAddr, ctr.Attrs().MTU)
	}
	if got := staticEntries(t, h, ep.HostIfName); !slices.Equal(got, []string{mac.String()}) {
		t.Errorf("pinned macs on %s: %v", ep.HostIfName, got)
	}

	// Again: same links, nothing duplicated.
	ep2, err := h.plane.CreateEndpoint(n, id, mac, netip.PrefixFrom(ip, 24))
	l.must(err, "create again")
	if again := l.mustLink(h.testNS, ep2.HostIfName); again.Attrs().Index != host.Attrs().Index {
		t.Error("second create replaced the veth")
	}
	// A new MAC for the same endpoint replaces the pinned one.
	mac2 := EndpointMAC(netip.MustParseAddr("10.202.0.12"))
	_, err = h.plane.CreateEndpoint(n, id, mac2, netip.PrefixFrom(ip, 24))
	l.must(err, "create with a new mac")
	if got := staticEntries(t, h, ep.HostIfName); !slices.Equal(got, []string{mac2.String()}) {
		t.Errorf("pinned macs after mac change: %v", got)
	}
	ids, err := h.plane.ListEndpoints()
	l.must(err, "list endpoints")
	if !slices.Equal(ids, []string{id}) {
		t.Fatalf("endpoints %v", ids)
	}

	// A link under the endpoint's name that is not ours is left alone.
	l.must(h.nl.LinkSetAlias(host, "someone-else"), "alias")
	if err := h.plane.DeleteEndpoint(id); err == nil || !strings.Contains(err.Error(), "belongs to endpoint") {
		t.Fatalf("delete of a foreign veth: %v", err)
	}
	l.must(h.nl.LinkSetAlias(host, id), "alias back")

	l.must(h.plane.DeleteEndpoint(id), "delete")
	l.must(h.plane.DeleteEndpoint(id), "delete again")
	if got := cnLinks(t, h); !slices.Equal(got, []string{n.BridgeName(), n.VXLANName()}) {
		t.Fatalf("links after delete: %v", got)
	}
	if err := h.plane.DeleteEndpoint("../x"); err == nil {
		t.Fatal("bad id accepted")
	}
}

func TestSetRemoteEndpointsReconciles(t *testing.T) {
	l := newTestLab(t, 2)
	h1, h2 := l.hosts[0], l.hosts[1]
	l.ensureAll()
	n := l.network(h1)
	a := l.run(h1, "a", 10)
	b := l.run(h2, "b", 20)
	ghostIP := netip.MustParseAddr("10.202.0.50")
	ghost := RemoteEndpoint{MAC: EndpointMAC(ghostIP), IP: ghostIP, Host: h2.addr}

	l.must(h1.plane.SetRemoteEndpoints(n, []RemoteEndpoint{a.remote(h1), b.remote(h2), ghost}), "set")
	wantRemote(t, h1, map[string]netip.Addr{b.mac.String(): h2.addr, ghost.MAC.String(): h2.addr},
		map[string]string{"10.202.0.20": b.mac.String(), "10.202.0.50": ghost.MAC.String()})

	// The ghost moves to another host, then goes away.
	ghost.Host = netip.MustParseAddr("10.201.0.3")
	l.must(h1.plane.SetRemoteEndpoints(n, []RemoteEndpoint{b.remote(h2), ghost}), "move ghost")
	wantRemote(t, h1, map[string]netip.Addr{b.mac.String(): h2.addr, ghost.MAC.String(): ghost.Host},
		map[string]string{"10.202.0.20": b.mac.String(), "10.202.0.50": ghost.MAC.String()})
	l.must(h1.plane.SetRemoteEndpoints(n, []RemoteEndpoint{b.remote(h2)}), "drop ghost")
	wantRemote(t, h1, map[string]netip.Addr{b.mac.String(): h2.addr}, map[string]string{"10.202.0.20": b.mac.String()})

	// A stale list still placing a (which lives here) on h2 cannot take it.
	l.must(h1.plane.SetRemoteEndpoints(n, []RemoteEndpoint{a.remote(h2), b.remote(h2)}), "stale list")
	wantRemote(t, h1, map[string]netip.Addr{b.mac.String(): h2.addr}, map[string]string{"10.202.0.20": b.mac.String()})
	if got := staticEntries(t, h1, a.ep.HostIfName); !slices.Equal(got, []string{a.mac.String()}) {
		t.Fatalf("a's pinned mac moved: %v", got)
	}

	// Ensure leaves the per-endpoint entries alone; an empty list clears them.
	l.must(h1.plane.Ensure(n, l.peersOf(h1)), "ensure")
	wantRemote(t, h1, map[string]netip.Addr{b.mac.String(): h2.addr}, map[string]string{"10.202.0.20": b.mac.String()})
	serveEcho(t, b)
	l.must(echo(a, b, 64, 2*time.Second), "echo with remote entries")
	l.must(h1.plane.SetRemoteEndpoints(n, nil), "clear")
	wantRemote(t, h1, map[string]netip.Addr{}, map[string]string{})
	if got := floodList(t, h1); !slices.Equal(got, []netip.Addr{h2.addr}) {
		t.Fatalf("clearing endpoints touched the flood list: %v", got)
	}

	if err := l.hosts[1].plane.SetRemoteEndpoints(Network{Name: "x", VNI: 7, Subnet: n.Subnet, Gateway: n.Gateway, Local: h2.addr, UnderlayMTU: 1500}, nil); err == nil || !strings.Contains(err.Error(), "ensure it first") {
		t.Fatalf("remote endpoints on a missing network: %v", err)
	}
}

func TestMovedEndpointIsReachableWithinASecond(t *testing.T) {
	l := newTestLab(t, 3)
	hA, hB, hC := l.hosts[0], l.hosts[1], l.hosts[2]
	l.ensureAll()
	x := l.run(hA, "x-on-a", 10)
	y := l.run(hC, "y-on-c", 30)
	serveEcho(t, x)
	serveEcho(t, y)
	setAll := func(eps ...RemoteEndpoint) {
		t.Helper()
		for _, h := range l.hosts {
			l.must(h.plane.SetRemoteEndpoints(l.network(h), eps), "remote endpoints on "+h.name)
		}
	}
	setAll(x.remote(hA), y.remote(hC))
	l.must(echo(y, x, 64, 2*time.Second), "echo y -> x before the move")

	// The move: the endpoint goes on A, comes back on B with the same MAC
	// and IP (a new container, so a new namespace and endpoint id).
	start := time.Now()
	l.must(hA.plane.DeleteEndpoint(x.ep.ID), "delete on A")
	x2 := l.run(hB, "x-on-b", 10)
	serveEcho(t, x2)
	l.must(AnnounceIn(x2.ns, x2.mac, x2.ip), "announce on B")
	plumbed := time.Since(start)

	// Until the store's new location is applied, C still sends to A.
	wantNoEcho(t, y, x2, "before the update")

	update := time.Now()
	setAll(x2.remote(hB), y.remote(hC))
	applied := time.Since(update)
	took, err := waitEcho(y, x2, 3*time.Second)
	l.must(err, "echo y -> x after the move")
	total := time.Since(update)
	t.Logf("move: endpoint re-created on B in %v; SetRemoteEndpoints on 3 hosts took %v; peer on C reached the moved endpoint %v after the update began (first echo %v after the update)",
		plumbed.Round(time.Microsecond), applied.Round(time.Microsecond), total.Round(time.Microsecond), took.Round(time.Microsecond))
	if total > time.Second {
		t.Fatalf("moved endpoint reachable only after %v, want under 1s", total)
	}
	l.must(echo(x2, y, 64<<10, 2*time.Second), "echo x -> y after the move")
	if got := remoteFDB(t, hC); got[x2.mac.String()] != hB.addr {
		t.Fatalf("C's fdb for x: %v", got)
	}
}

func TestGatewayIsLocalOnEveryHost(t *testing.T) {
	l := newTestLab(t, 2)
	h1, h2 := l.hosts[0], l.hosts[1]
	l.ensureAll()
	a := l.run(h1, "a", 10)
	b := l.run(h2, "b", 20)
	for _, h := range l.hosts {
		name := h.name
		serve(t, h.testNS, "10.202.0.1:7001", func([]byte) []byte { return []byte(name) })
	}
	for _, c := range []struct {
		ctr  *testContainer
		want string
	}{{a, h1.name}, {b, h2.name}} {
		got, err := talk(c.ctr.testNS, "10.202.0.1:7001", []byte("who"), 2*time.Second)
		l.must(err, "talk to the gateway from "+c.ctr.name)
		if string(got) != c.want {
			t.Errorf("%s reached the gateway of %s, want %s", c.ctr.name, got, c.want)
		}
		if mac := neighbour(t, c.ctr.testNS, "eth0", netip.MustParseAddr("10.202.0.1")); mac != GatewayMAC(testVNI).String() {
			t.Errorf("%s resolved the gateway to %s", c.ctr.name, mac)
		}
	}
	// The host reaches its own containers from the gateway address.
	serveEcho(t, a)
	msg := []byte("from the host")
	got, err := talk(h1.testNS, fmt.Sprintf("%s:%d", a.ip, echoPort), msg, 2*time.Second)
	if err != nil || string(got) != string(msg) {
		t.Errorf("host1 -> a: %q, %v", got, err)
	}
	// The ARP request for the gateway never crossed: the other host's
	// bridge did not learn the asker as a neighbour.
	if mac := neighbour(t, h2.testNS, BridgeName(testVNI), a.ip); mac != "" {
		t.Errorf("host2 saw a's gateway ARP (has neighbour %s)", mac)
	}
}

func TestAnnounceUpdatesNeighbours(t *testing.T) {
	l := newTestLab(t, 2)
	h1 := l.hosts[0]
	l.ensureAll()
	c1 := l.run(h1, "c1", 10)
	c2 := l.run(h1, "c2", 11)
	far := l.run(l.hosts[1], "far", 20)
	wrong := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x99}
	for _, c := range []*testContainer{c2, far} {
		eth0 := l.mustLink(c.testNS, "eth0")
		l.must(c.nl.NeighSet(&netlink.Neigh{LinkIndex: eth0.Attrs().Index, Family: unix.AF_INET, State: netlink.NUD_STALE, IP: net.IP(c1.ip.AsSlice()), HardwareAddr: wrong}), "stale neighbour")
	}

	path := fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), int(c1.ns))
	start := time.Now()
	l.must(Announce(path, c1.mac, c1.ip), "announce")
	var got string
	for time.Since(start) < time.Second {
		if got = neighbour(t, c2.testNS, "eth0", c1.ip); got == c1.mac.String() {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got != c1.mac.String() {
		t.Fatalf("neighbour on the same host still %s after announce, want %s", got, c1.mac)
	}
	t.Logf("same-host neighbour updated %v after the announcement", time.Since(start).Round(time.Microsecond))
	// As Announce documents, the announcement does not cross the VXLAN: the
	// port's neighbour suppression keeps gratuitous ARP local.
	time.Sleep(50 * time.Millisecond)
	if got := neighbour(t, far.testNS, "eth0", c1.ip); got != wrong.String() {
		t.Fatalf("the announcement reached the other host (neighbour %s): update Announce's doc", got)
	}

	if err := AnnounceIn(c1.ns, EndpointMAC(netip.MustParseAddr("10.202.0.99")), c1.ip); err == nil || !strings.Contains(err.Error(), "no interface") {
		t.Fatalf("announce with an unknown mac: %v", err)
	}
	if err := Announce("/nonexistent/ns", c1.mac, c1.ip); err == nil {
		t.Fatal("announce in a missing namespace succeeded")
	}
}

// --- inspection helpers -------------------------------------------------

// cnLinks lists the overlay's links on a host, sorted.
func cnLinks(t *testing.T, h *testHost) []string {
	t.Helper()
	links, err := h.nl.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Name, "cn") {
			out = append(out, l.Attrs().Name)
		}
	}
	slices.Sort(out)
	return out
}

func bridgeAddrs(t *testing.T, h *testHost) []string {
	t.Helper()
	br, err := h.nl.LinkByName(BridgeName(testVNI))
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := h.nl.AddrList(br, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range addrs {
		out = append(out, a.IPNet.String())
	}
	slices.Sort(out)
	return out
}

// vxlanSelf lists the vxlan device's own FDB entries.
func vxlanSelf(t *testing.T, h *testHost) []netlink.Neigh {
	t.Helper()
	vx, err := h.nl.LinkByName(VXLANName(testVNI))
	if err != nil {
		t.Fatal(err)
	}
	neighs, err := h.nl.NeighList(vx.Attrs().Index, unix.AF_BRIDGE)
	if err != nil {
		t.Fatal(err)
	}
	var out []netlink.Neigh
	for _, nb := range neighs {
		if nb.Flags&netlink.NTF_SELF != 0 && nb.IP != nil {
			out = append(out, nb)
		}
	}
	return out
}

// floodList is the peers in the vxlan's all-zero entries, sorted.
func floodList(t *testing.T, h *testHost) []netip.Addr {
	t.Helper()
	var out []netip.Addr
	for _, nb := range vxlanSelf(t, h) {
		if isZeroMAC(nb.HardwareAddr) {
			a, _ := addrOf(nb.IP)
			out = append(out, a)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// remoteFDB is the vxlan's per-MAC entries.
func remoteFDB(t *testing.T, h *testHost) map[string]netip.Addr {
	t.Helper()
	out := map[string]netip.Addr{}
	for _, nb := range vxlanSelf(t, h) {
		if !isZeroMAC(nb.HardwareAddr) {
			a, _ := addrOf(nb.IP)
			if old, dup := out[nb.HardwareAddr.String()]; dup {
				t.Fatalf("%s has two destinations %s and %s", nb.HardwareAddr, old, a)
			}
			out[nb.HardwareAddr.String()] = a
		}
	}
	return out
}

// staticEntries lists the static bridge FDB entries on a port.
func staticEntries(t *testing.T, h *testHost, port string) []string {
	t.Helper()
	link, err := h.nl.LinkByName(port)
	if err != nil {
		t.Fatal(err)
	}
	neighs, err := h.nl.NeighList(link.Attrs().Index, unix.AF_BRIDGE)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, nb := range neighs {
		if isStaticPortEntry(nb) {
			out = append(out, nb.HardwareAddr.String())
		}
	}
	slices.Sort(out)
	return out
}

// permanentNeighbours lists the bridge's permanent ARP entries.
func permanentNeighbours(t *testing.T, h *testHost) map[string]string {
	t.Helper()
	br, err := h.nl.LinkByName(BridgeName(testVNI))
	if err != nil {
		t.Fatal(err)
	}
	neighs, err := h.nl.NeighList(br.Attrs().Index, unix.AF_INET)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, nb := range neighs {
		if nb.State&netlink.NUD_PERMANENT != 0 {
			out[nb.IP.String()] = nb.HardwareAddr.String()
		}
	}
	return out
}

// wantRemote checks all three kinds of per-endpoint state on a host.
func wantRemote(t *testing.T, h *testHost, fdb map[string]netip.Addr, neigh map[string]string) {
	t.Helper()
	if got := remoteFDB(t, h); fmt.Sprint(got) != fmt.Sprint(fdb) {
		t.Fatalf("vxlan fdb %v, want %v", got, fdb)
	}
	var macs []string
	for mac := range fdb {
		macs = append(macs, mac)
	}
	slices.Sort(macs)
	if got := staticEntries(t, h, VXLANName(testVNI)); !slices.Equal(got, macs) {
		t.Fatalf("static entries on the vxlan port %v, want %v", got, macs)
	}
	if got := permanentNeighbours(t, h); fmt.Sprint(got) != fmt.Sprint(neigh) {
		t.Fatalf("bridge neighbours %v, want %v", got, neigh)
	}
}

// neighbour is the MAC a namespace has for ip on a link ("" if none).
func neighbour(t *testing.T, n *testNS, link string, ip netip.Addr) string {
	t.Helper()
	l, err := n.nl.LinkByName(link)
	if err != nil {
		t.Fatal(err)
	}
	neighs, err := n.nl.NeighList(l.Attrs().Index, unix.AF_INET)
	if err != nil {
		t.Fatal(err)
	}
	for _, nb := range neighs {
		if a, _ := addrOf(nb.IP); a == ip && nb.HardwareAddr != nil {
			return nb.HardwareAddr.String()
		}
	}
	return ""
}

// takeSnapshot renders a host's overlay state (not learned entries, which
// change with traffic) as sorted lines.
func takeSnapshot(t *testing.T, h *testHost) []string {
	t.Helper()
	links, err := h.nl.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	names := map[int]string{}
	var out []string
	for _, l := range links {
		a := l.Attrs()
		names[a.Index] = a.Name
		if !strings.HasPrefix(a.Name, "cn") {
			continue
		}
		line := fmt.Sprintf("link %s index=%d type=%s mtu=%d master=%d up=%v mac=%s alias=%q",
			a.Name, a.Index, l.Type(), a.MTU, a.MasterIndex, a.Flags&net.FlagUp != 0, a.HardwareAddr, a.Alias)
		if v, ok := l.(*netlink.Vxlan); ok {
			line += fmt.Sprintf(" vni=%d local=%s port=%d learning=%v", v.VxlanId, v.SrcAddr, v.Port, v.Learning)
		}
		out = append(out, line)
	}
	for _, a := range bridgeAddrs(t, h) {
		out = append(out, "addr "+a)
	}
	neighs, err := h.nl.NeighList(0, unix.AF_BRIDGE)
	if err != nil {
		t.Fatal(err)
	}
	for _, nb := range neighs {
		if !strings.HasPrefix(names[nb.LinkIndex], "cn") || nb.State&(netlink.NUD_PERMANENT|netlink.NUD_NOARP) == 0 {
			continue
		}
		out = append(out, fmt.Sprintf("fdb %s dev %s flags=%#x state=%#x dst=%s", nb.HardwareAddr, names[nb.LinkIndex], nb.Flags, nb.State, nb.IP))
	}
	for ip, mac := range permanentNeighbours(t, h) {
		out = append(out, fmt.Sprintf("neigh %s %s", ip, mac))
	}
	slices.Sort(out)
	return out
}
