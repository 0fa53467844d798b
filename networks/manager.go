// Package networks is the managers' side of cluster networks: it creates
// them (a subnet that overlaps no other network and none of the hosts'
// own addresses, a VXLAN network identifier of their own, a gateway) and
// leases their addresses. A lease belongs to a task, not to a container:
// the task keeps its address, and the MAC derived from it, when its
// container is re-created elsewhere, and the address is freed only when
// the task is removed. The store refuses an address leased to another
// task and a subnet that overlaps another network's, so two racing
// requests cannot both win. Agents serve Docker's network and IPAM
// plugins from these records.
package networks

import (
	"encoding/binary"
	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"sync"
	"time"

	"github.com/clusterctl/clusterctl/store"
)

// conflictRetries bounds how often an operation re-reads the store after
// a concurrent change refused its command.
const conflictRetries = 8

// Automatic subnets are /24s of this pool, the first one free.
var (
	autoPool = netip.MustParsePrefix("10.200.0.0/16")
	autoBits = 24
)

// VNIs of cluster networks start here (low ones are often used by hand).
const firstVNI = 4096

// maxVNI is VXLAN's limit (24 bits).
const maxVNI = 1<<24 - 1

// Manager runs on the leader and changes networks and leases through Raft.
type Manager struct {
	// mu makes this leader's own changes one at a time: requests racing
	// for the lowest free address would otherwise each pick it and all
	// but one retry, again and again. The store still refuses a clash
	// with anyone else's change.
	mu    sync.Mutex
	store *store.Store
	apply func([]byte) (uint64, error)
	log   *slog.Logger
	now   func() time.Time
}

// New returns a manager that reads st and commits encoded commands with
// apply (on the leader).
func New(st *store.Store, apply func([]byte) (uint64, error), log *slog.Logger) *Manager {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{store: st, apply: apply, log: log, now: time.Now}
}

// Request asks for a network: a subnet ("" picks a free /24 of
// 10.200.0.0/16) and labels.
type Request struct {
	Name   string
	Subnet string
	Labels map[string]string
}

// validName is Docker's rule for network names, kept short enough for the
// names of the devices made from them.
var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)

// ValidateName refuses names Docker would refuse, or that could walk out
// of a directory.
func ValidateName(name string) error {
	if !validName.MatchString(name) || name == "." || name == ".." {
		return store.Refuse(store.ErrInvalid, "invalid network name %q: letters, digits, '_', '.', '-', starting with a letter or digit", name)
	}
	return nil
}

// Create records a network. One that exists with the same subnet (or
// none asked) is returned as it is: every host that needs the network
// creates its Docker side, and each may ask.
func (m *Manager) Create(req Request) (store.Network, error) {
	if err := ValidateName(req.Name); err != nil {
		return store.Network{}, err
	}
	var want netip.Prefix
	if req.Subnet != "" {
		p, err := parseSubnet(req.Subnet)
		if err != nil {
			return store.Network{}, err
		}
		want = p
	}
	return m.retry(func(v *store.View) (store.Network, []byte, error) {
		if old, ok := v.Network(req.Name); ok {
			if want.IsValid() && old.Subnet != want.String() {
				return old, nil, store.Refuse(store.ErrConflict, "network %s exists with subnet %s, not %s", req.Name, old.Subnet, want)
			}
			return old, nil, nil
		}
		subnet := want
		if !subnet.IsValid() {
			var err error
			if subnet, err = freeSubnet(v); err != nil {
				return store.Network{}, nil, err
			}
		}
		if err := checkSubnet(v, req.Name, subnet); err != nil {
			return store.Network{}, nil, err
		}
		vni, err := freeVNI(v)
		if err != nil {
			return store.Network{}, nil, err
		}
		n := store.Network{Name: req.Name, Subnet: subnet.String(), Gateway: Gateway(subnet).String(),
			VNI: vni, Labels: req.Labels, Created: m.now().UTC()}
		return n, encode(store.CmdPutNetwork, n), nil
	})
}

// parseSubnet reads an IPv4 subnet with room for a gateway and a task.
func parseSubnet(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() {
		return netip.Prefix{}, store.Refuse(store.ErrInvalid, "invalid subnet %q: want an IPv4 prefix such as 10.200.7.0/24", s)
	}
	if p.Bits() > 29 {
		return netip.Prefix{}, store.Refuse(store.ErrInvalid, "subnet %s is too small: at most /29", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, store.Refuse(store.ErrInvalid, "subnet %s has host bits set: did you mean %s?", s, p.Masked())
	}
	return p, nil
}

// checkSubnet refuses a subnet that overlaps another network's or holds a
// host's own address: traffic to that host would go into the overlay.
func checkSubnet(v *store.View, name string, subnet netip.Prefix) error {
	for _, n := range v.Networks() {
		if o, err := netip.ParsePrefix(n.Subnet); err == nil && n.Name != name && o.Overlaps(subnet) {
			return store.Refuse(store.ErrConflict, "subnet %s overlaps %s of network %s", subnet, n.Subnet, n.Name)
		}
	}
	for _, h := range v.Hosts() {
		if a, err := netip.ParseAddr(h.Addr); err == nil && subnet.Contains(a) {
			return store.Refuse(store.ErrConflict, "subnet %s holds host %s's own address %s: pick another", subnet, h.Name, h.Addr)
		}
	}
	return nil
}

// freeSubnet is the first /24 of the automatic pool that clashes with
// nothing.
func freeSubnet(v *store.View) (netip.Prefix, error) {
	for p := netip.PrefixFrom(autoPool.Addr(), autoBits); autoPool.Contains(p.Addr()); p = nextPrefix(p) {
		if checkSubnet(v, "", p) == nil {
			return p, nil
		}
	}
	return netip.Prefix{}, store.Refuse(store.ErrConflict, "no free /%d left in %s: give the network a subnet", autoBits, autoPool)
}

// nextPrefix is the prefix of the same size right after p.
func nextPrefix(p netip.Prefix) netip.Prefix {
	return netip.PrefixFrom(fromUint32(toUint32(p.Addr())+1<<(32-p.Bits())), p.Bits())
}

// toUint32 and fromUint32 convert IPv4 addresses for arithmetic.
func toUint32(a netip.Addr) uint32 { return binary.BigEndian.Uint32(a.AsSlice()) }

func fromUint32(n uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], n)
	return netip.AddrFrom4(b)
}

// freeVNI is the lowest VNI no network uses.
func freeVNI(v *store.View) (int, error) {
	used := map[int]bool{}
	for _, n := range v.Networks() {
		used[n.VNI] = true
	}
	for vni := firstVNI; vni <= maxVNI; vni++ {
		if !used[vni] {
			return vni, nil
		}
	}
	return 0, store.Refuse(store.ErrConflict, "no VXLAN network identifier left")
}

// Gateway is a subnet's gateway: its first address, held by the bridge on
// every host.
func Gateway(subnet netip.Prefix) netip.Addr { return subnet.Masked().Addr().Next() }

// MAC is the MAC address that goes with a cluster address: derived from
// it, so a task that keeps its address keeps its MAC, wherever it runs,
// and peers' neighbour caches stay right across a move. (02: locally
// administered; ce: clusterctl endpoints.)
func MAC(addr netip.Addr) net.HardwareAddr {
	a := addr.As4()
	return net.HardwareAddr{0x02, 0xce, a[0], a[1], a[2], a[3]}
}

// Remove deletes a network that no lease uses any more.
func (m *Manager) Remove(name string) error {
	_, err := m.retry(func(v *store.View) (store.Network, []byte, error) {
		n, ok := v.Network(name)
		if !ok {
			return n, nil, store.Refuse(store.ErrNotFound, "no network %q", name)
		}
		if leases := v.Leases(name); len(leases) > 0 {
			return n, nil, store.Refuse(store.ErrConflict, "network %s has %d address(es) leased, to %s first: remove its tasks first", name, len(leases), leases[0].TaskID)
		}
		return n, encode(store.CmdDeleteNetwork, store.NameRef{Name: name}), nil
	})
	return err
}

// retry reads a view, lets decide return the network and the command to
// commit (nil: nothing), commits it, and tries again from a new view when
// a concurrent change made the store refuse it.
func (m *Manager) retry(decide func(*store.View) (store.Network, []byte, error)) (store.Network, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var n store.Network
	index, err := store.Retry(m.store, m.apply, conflictRetries, "networks", func(v *store.View) ([]byte, error) {
		var data []byte
		var err error
		n, data, err = decide(v)
		return data, err
	})
	if index != 0 {
		n.ModifyIndex = index
	}
	return n, err
}

func encode(t store.CommandType, payload any) []byte { return store.MustEncode(t, payload) }
