package dataplane

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The kernel tests build throwaway "hosts" and "containers" as unnamed
// network namespaces: they are never pinned under /run/netns, so the kernel
// frees them (and every link inside) when the test closes its handles, or
// when the test process dies. Nothing is created in the root namespace.
//
// Underlay 10.201.0.0/24 (hosts on a switch namespace), overlay
// 10.202.0.0/24: both apart from the project lab's 10.99.0.0/24, and since
// they live only inside these namespaces they cannot clash with the
// machine's routes anyway.

const (
	testVNI   = 4242
	echoPort  = 7000
	underlay  = "10.201.0.%d"
	overlayIP = "10.202.0.%d"
)

// requireRoot fails (not skips) the kernel tests when not root: CI runs them
// as root, and a silent skip would hide that they never ran.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test programs network namespaces, bridges and vxlan devices and must run as root (sudo go test ./agent/network/dataplane/)")
	}
}

// testNS is one throwaway network namespace with a netlink handle into it.
type testNS struct {
	name string
	ns   netns.NsHandle
	nl   *netlink.Handle
}

// newTestNS creates an unnamed namespace without moving the test's threads
// into it, with lo up, and closes it when the test ends.
func newTestNS(t *testing.T, name string) *testNS {
	t.Helper()
	ns, err := newUnnamedNetns()
	if err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	t.Cleanup(func() { ns.Close() })
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatalf("netlink in %s: %v", name, err)
	}
	t.Cleanup(h.Close)
	n := &testNS{name: name, ns: ns, nl: h}
	lo, err := h.LinkByName("lo")
	if err != nil {
		t.Fatalf("lo in %s: %v", name, err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		t.Fatalf("lo up in %s: %v", name, err)
	}
	return n
}

// newUnnamedNetns runs netns.New on a locked thread and puts the thread
// back; if that fails the thread stays locked and dies with its goroutine.
func newUnnamedNetns() (netns.NsHandle, error) {
	type result struct {
		ns  netns.NsHandle
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer orig.Close()
		ns, err := netns.New()
		if err != nil {
			ch <- result{err: err} // thread state unknown: let it die
			return
		}
		if err := netns.Set(orig); err != nil {
			ns.Close()
			ch <- result{err: err}
			return
		}
		runtime.UnlockOSThread()
		ch <- result{ns: ns}
	}()
	r := <-ch
	return r.ns, r.err
}

// testHost is a "host": a namespace with eth0 on the underlay switch and a
// Plane serving it.
type testHost struct {
	*testNS
	addr  netip.Addr
	plane *Plane
}

// testLab is a switch namespace and a few hosts on it.
type testLab struct {
	t     *testing.T
	sw    *testNS
	hosts []*testHost
}

// newTestLab wires n hosts to an underlay switch: host i has eth0 with
// 10.201.0.<i+1>/24 and MTU 1500.
func newTestLab(t *testing.T, n int) *testLab {
	t.Helper()
	requireRoot(t)
	l := &testLab{t: t, sw: newTestNS(t, "switch")}
	attrs := netlink.NewLinkAttrs()
	attrs.Name = "sw0"
	if err := l.sw.nl.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil {
		t.Fatalf("create switch: %v", err)
	}
	sw0 := l.mustLink(l.sw, "sw0")
	l.must(l.sw.nl.LinkSetUp(sw0), "switch up")
	for i := range n {
		l.hosts = append(l.hosts, l.addHost(i, sw0))
	}
	return l
}

func (l *testLab) addHost(i int, sw0 netlink.Link) *testHost {
	t := l.t
	t.Helper()
	h := &testHost{testNS: newTestNS(t, fmt.Sprintf("host%d", i+1)), addr: netip.MustParseAddr(fmt.Sprintf(underlay, i+1))}
	attrs := netlink.NewLinkAttrs()
	attrs.Name = "eth0"
	attrs.MTU = 1500
	veth := netlink.NewVeth(attrs)
	veth.PeerName = fmt.Sprintf("sw-h%d", i+1)
	veth.PeerNamespace = netlink.NsFd(int(l.sw.ns))
	l.must(h.nl.LinkAdd(veth), "underlay veth")
	port := l.mustLink(l.sw, veth.PeerName)
	l.must(l.sw.nl.LinkSetMaster(port, sw0), "underlay port")
	l.must(l.sw.nl.LinkSetUp(port), "underlay port up")
	eth0 := l.mustLink(h.testNS, "eth0")
	l.must(h.nl.AddrAdd(eth0, &netlink.Addr{IPNet: ipNet(h.addr, 24)}), "underlay address")
	l.must(h.nl.LinkSetUp(eth0), "eth0 up")
	p, err := NewAt(h.ns)
	l.must(err, "plane")
	t.Cleanup(p.Close)
	h.plane = p
	return h
}

func (l *testLab) must(err error, what string) {
	l.t.Helper()
	if err != nil {
		l.t.Fatalf("%s: %v", what, err)
	}
}

func (l *testLab) mustLink(n *testNS, name string) netlink.Link {
	l.t.Helper()
	link, err := n.nl.LinkByName(name)
	l.must(err, fmt.Sprintf("link %s in %s", name, n.name))
	return link
}

// network is the test network as host h sees it.
func (l *testLab) network(h *testHost) Network {
	return Network{
		Name:        "testnet",
		VNI:         testVNI,
		Subnet:      netip.MustParsePrefix("10.202.0.0/24"),
		Gateway:     netip.MustParseAddr("10.202.0.1"),
		Local:       h.addr,
		UnderlayMTU: 1500,
	}
}

// peersOf is every other host's underlay address.
func (l *testLab) peersOf(h *testHost) []netip.Addr {
	var out []netip.Addr
	for _, o := range l.hosts {
		if o != h {
			out = append(out, o.addr)
		}
	}
	return out
}

// ensureAll puts the network on every host with all others as peers.
func (l *testLab) ensureAll() {
	l.t.Helper()
	for _, h := range l.hosts {
		l.must(h.plane.Ensure(l.network(h), l.peersOf(h)), "ensure on "+h.name)
	}
}

// testContainer is a "container": a namespace holding an endpoint's
// container side, renamed eth0 and addressed as Docker would do it.
type testContainer struct {
	*testNS
	ip  netip.Addr
	mac net.HardwareAddr
	ep  Endpoint
}

// run creates endpoint id on h and does what Docker does after Join: move
// SrcName into a new namespace, rename it, add the address and default
// route via the gateway, bring it up.
func (l *testLab) run(h *testHost, id string, octet int) *testContainer {
	l.t.Helper()
	n := l.network(h)
	ip := netip.MustParseAddr(fmt.Sprintf(overlayIP, octet))
	mac := EndpointMAC(ip)
	ep, err := h.plane.CreateEndpoint(n, id, mac, netip.PrefixFrom(ip, 24))
	l.must(err, "create endpoint")
	c := &testContainer{testNS: newTestNS(l.t, "ctr-"+id), ip: ip, mac: mac, ep: ep}
	link := l.mustLink(h.testNS, ep.ContainerIfName)
	l.must(h.nl.LinkSetNsFd(link, int(c.ns)), "move into container")
	link = l.mustLink(c.testNS, ep.ContainerIfName)
	l.must(c.nl.LinkSetName(link, "eth0"), "rename")
	l.must(c.nl.AddrAdd(link, &netlink.Addr{IPNet: ipNet(ip, 24)}), "container address")
	l.must(c.nl.LinkSetUp(link), "container eth0 up")
	gw := net.IP(n.Gateway.AsSlice())
	l.must(c.nl.RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Gw: gw}), "default route")
	return c
}

// remote is c as the store would list it, living on h.
func (c *testContainer) remote(h *testHost) RemoteEndpoint {
	return RemoteEndpoint{MAC: c.mac, IP: c.ip, Host: h.addr}
}

// serve answers TCP connections on addr inside namespace n: it reads the
// request to EOF and writes reply(request) back.
func serve(t *testing.T, n *testNS, addr string, reply func([]byte) []byte) {
	t.Helper()
	var ln net.Listener
	err := inNetns(n.ns, func() error {
		var err error
		ln, err = net.Listen("tcp4", addr)
		return err
	})
	if err != nil {
		t.Fatalf("listen on %s in %s: %v", addr, n.name, err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(5 * time.Second))
				req, err := io.ReadAll(conn)
				if err == nil {
					conn.Write(reply(req))
				}
			}()
		}
	}()
}

// serveEcho is serve with an echo.
func serveEcho(t *testing.T, c *testContainer) {
	serve(t, c.testNS, fmt.Sprintf("%s:%d", c.ip, echoPort), func(b []byte) []byte { return b })
}

// talk dials addr from namespace n, sends msg, half-closes and returns the
// whole answer, all within timeout.
func talk(n *testNS, addr string, msg []byte, timeout time.Duration) ([]byte, error) {
	var out []byte
	err := inNetns(n.ns, func() error {
		deadline := time.Now().Add(timeout)
		conn, err := net.DialTimeout("tcp4", addr, timeout)
		if err != nil {
			return err
		}
		defer conn.Close()
		conn.SetDeadline(deadline)
		if _, err := conn.Write(msg); err != nil {
			return err
		}
		if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
			return err
		}
		out, err = io.ReadAll(conn)
		return err
	})
	return out, err
}

// echo checks a TCP echo from one container to another's echo server.
func echo(from, to *testContainer, size int, timeout time.Duration) error {
	msg := make([]byte, size)
	rand.Read(msg)
	got, err := talk(from.testNS, fmt.Sprintf("%s:%d", to.ip, echoPort), msg, timeout)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("echo returned %d bytes that differ from the %d sent", len(got), len(msg))
	}
	return nil
}

// waitEcho retries short echoes until one succeeds, returning how long it
// took; each try has a short dial timeout so a lost SYN does not wait for
// TCP's 1 s retransmission.
func waitEcho(from, to *testContainer, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	var err error
	for time.Since(start) < limit {
		if err = echo(from, to, 64, 100*time.Millisecond); err == nil {
			return time.Since(start), nil
		}
	}
	return time.Since(start), fmt.Errorf("no echo within %v: %w", limit, err)
}

// wantNoEcho asserts that the path is cut.
func wantNoEcho(t *testing.T, from, to *testContainer, why string) {
	t.Helper()
	err := echo(from, to, 64, 300*time.Millisecond)
	if err == nil {
		t.Fatalf("%s: %s still reaches %s", why, from.name, to.name)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Logf("%s: echo failed with %v (not a timeout)", why, err)
	}
}
