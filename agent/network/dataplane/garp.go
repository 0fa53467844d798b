package dataplane

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"slices"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

const (
	arpRequest = 1
	arpReply   = 2
	// minFrame is the shortest Ethernet frame (without FCS); shorter ones are
	// padded so that real NICs on the path do not drop them as runts.
	minFrame = 60
)

// Announce sends gratuitous ARP for an endpoint from inside its container:
// nsPath is the container's network namespace (/proc/<pid>/ns/net, or the
// SandboxKey Docker passes to Join), mac picks the interface and ip is the
// address announced. Call it once the container runs (Docker moves and
// configures the interface after Join). It refreshes the ARP caches and
// bridge FDB of everything on this host's segment. It does not cross to
// other hosts, by design: the VXLAN port suppresses gratuitous ARP, and with
// nolearning remote VTEPs could not learn from it anyway; other hosts are
// re-pointed by SetRemoteEndpoints. Since an IP keeps its MAC when the task
// moves (EndpointMAC), their caches stay valid.
func Announce(nsPath string, mac net.HardwareAddr, ip netip.Addr) error {
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		return fmt.Errorf("announce %s: open network namespace %s: %w", ip, nsPath, err)
	}
	defer ns.Close()
	return AnnounceIn(ns, mac, ip)
}

// AnnounceIn is Announce for a namespace the caller already holds open.
func AnnounceIn(ns netns.NsHandle, mac net.HardwareAddr, ip netip.Addr) error {
	if err := announce(ns, mac, ip); err != nil {
		return fmt.Errorf("announce %s (%s): %w", ip, mac, err)
	}
	return nil
}

func announce(ns netns.NsHandle, mac net.HardwareAddr, ip netip.Addr) error {
	if err := validMAC(mac); err != nil {
		return err
	}
	if !ip.Is4() {
		return fmt.Errorf("address %s is not IPv4", ip)
	}
	ifindex, err := interfaceWithMAC(ns, mac)
	if err != nil {
		return err
	}
	fd, err := socketIn(ns, unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ARP)))
	if err != nil {
		return fmt.Errorf("open packet socket: %w", err)
	}
	defer unix.Close(fd)
	to := &unix.SockaddrLinklayer{
		Protocol: htons(unix.ETH_P_ARP),
		Ifindex:  ifindex,
		Halen:    6,
		Addr:     [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	}
	// Both forms: some stacks only take the request (RFC 5227), others the
	// reply; Linux accepts either.
	for _, op := range []uint16{arpRequest, arpReply} {
		if err := unix.Sendto(fd, garpFrame(op, mac, ip), 0, to); err != nil {
			return fmt.Errorf("send gratuitous arp: %w", err)
		}
	}
	return nil
}

// interfaceWithMAC finds the up interface that has mac in namespace ns.
func interfaceWithMAC(ns netns.NsHandle, mac net.HardwareAddr) (int, error) {
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return 0, fmt.Errorf("open netlink in namespace: %w", err)
	}
	defer h.Close()
	links, err := retryDump(h.LinkList)
	if err != nil {
		return 0, fmt.Errorf("list links in namespace: %w", err)
	}
	for _, l := range links {
		a := l.Attrs()
		if !slices.Equal(a.HardwareAddr, mac) {
			continue
		}
		if a.Flags&net.FlagUp == 0 {
			return 0, fmt.Errorf("interface %s with mac %s is down", a.Name, mac)
		}
		return a.Index, nil
	}
	return 0, fmt.Errorf("no interface with mac %s in the namespace", mac)
}

// garpFrame builds a broadcast gratuitous ARP frame: sender and target
// protocol address are both ip. For a reply the target hardware address
// must equal the sender's, or Linux does not treat it as gratuitous.
func garpFrame(op uint16, mac net.HardwareAddr, ip netip.Addr) []byte {
	f := make([]byte, minFrame)
	copy(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(f[6:12], mac)
	binary.BigEndian.PutUint16(f[12:14], unix.ETH_P_ARP)
	arp := f[14:]
	binary.BigEndian.PutUint16(arp[0:2], 1) // hardware: Ethernet
	binary.BigEndian.PutUint16(arp[2:4], unix.ETH_P_IP)
	arp[4], arp[5] = 6, 4
	binary.BigEndian.PutUint16(arp[6:8], op)
	a := ip.As4()
	copy(arp[8:14], mac)
	copy(arp[14:18], a[:])
	if op == arpReply {
		copy(arp[18:24], mac)
	}
	copy(arp[24:28], a[:])
	return f
}

// socketIn opens a socket inside network namespace ns; the socket stays in
// ns whichever thread uses it afterwards. It runs on a dedicated, locked
// thread: if the thread cannot be put back in its own namespace it is left
// locked, and the Go runtime discards it when the goroutine exits, so no
// other goroutine ever runs in the wrong namespace.
func socketIn(ns netns.NsHandle, domain, typ, proto int) (int, error) {
	fd := -1
	err := inNetns(ns, func() error {
		var err error
		fd, err = unix.Socket(domain, typ|unix.SOCK_CLOEXEC, proto)
		return err
	})
	if err != nil && fd >= 0 {
		unix.Close(fd)
		return -1, err
	}
	return fd, err
}

// inNetns runs fn on a fresh OS thread switched into ns (see socketIn).
func inNetns(ns netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("get current network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			runtime.UnlockOSThread() // setns failed: still in orig
			errc <- fmt.Errorf("enter network namespace: %w", err)
			return
		}
		fnErr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- fmt.Errorf("leave network namespace: %w", err)
			return // stay locked: the thread dies with this goroutine
		}
		runtime.UnlockOSThread()
		errc <- fnErr
	}()
	return <-errc
}

// htons converts to network byte order as the kernel reads it from memory
// (socket(2) and sockaddr_ll take the protocol that way).
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}
