package networks

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/clusterctl/clusterctl/store"
)

// Lease gives owner (a task ID, or an ad-hoc "docker:..." endpoint) an
// address of network: preferred if given (Compose's ipv4_address, or the
// address a moving task keeps), else the lowest free one. Asking again
// for what the owner holds returns its lease: a container re-created for
// a move finds its address again.
func (m *Manager) Lease(network, owner, preferred string) (store.IPLease, error) {
	if owner == "" {
		return store.IPLease{}, store.Refuse(store.ErrInvalid, "a lease needs its task")
	}
	var want netip.Addr
	if preferred != "" {
		a, err := netip.ParseAddr(preferred)
		if err != nil || !a.Is4() {
			return store.IPLease{}, store.Refuse(store.ErrInvalid, "invalid address %q: want an IPv4 address", preferred)
		}
		want = a
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var l store.IPLease
	// A conflict means another lease took the address meanwhile: deciding
	// again refuses a preferred one, or picks the next free one.
	index, err := store.Retry(m.store, m.apply, conflictRetries, "addresses of network "+network, func(v *store.View) ([]byte, error) {
		var err error
		if l, err = m.decideLease(v, network, owner, want); err != nil || l.ModifyIndex != 0 {
			return nil, err
		}
		return encode(store.CmdPutLease, l), nil
	})
	if index != 0 {
		l.ModifyIndex = index
	}
	return l, err
}

// decideLease picks the lease to put: the owner's own (returned with its
// ModifyIndex set: nothing to commit), the preferred address, or the
// lowest free one.
func (m *Manager) decideLease(v *store.View, network, owner string, want netip.Addr) (store.IPLease, error) {
	n, ok := v.Network(network)
	if !ok {
		return store.IPLease{}, store.Refuse(store.ErrNotFound, "no network %q", network)
	}
	subnet, err := netip.ParsePrefix(n.Subnet)
	if err != nil {
		return store.IPLease{}, fmt.Errorf("network %s: bad subnet %q in the store: %w", network, n.Subnet, err)
	}
	leases := v.Leases(network)
	for _, l := range leases {
		if l.TaskID == owner && (!want.IsValid() || l.Addr == want.String()) {
			return l, nil
		}
	}
	if want.IsValid() {
		if err := checkAddr(n, subnet, want); err != nil {
			return store.IPLease{}, err
		}
		if l, ok := v.Lease(network, want.String()); ok {
			return store.IPLease{}, store.Refuse(store.ErrConflict, "address %s of network %s is leased to task %s", want, network, l.TaskID)
		}
		return newLease(network, owner, want), nil
	}
	taken := map[string]bool{}
	for _, l := range leases {
		taken[l.Addr] = true
	}
	for a := Gateway(subnet).Next(); subnet.Contains(a) && a != broadcast(subnet); a = a.Next() {
		if !taken[a.String()] {
			return newLease(network, owner, a), nil
		}
	}
	return store.IPLease{}, store.Refuse(store.ErrConflict, "network %s has no free address left (%s: %d leased)", network, n.Subnet, len(leases))
}

// checkAddr refuses an address a task cannot have: outside the subnet,
// the subnet's own address, its gateway, its broadcast address.
func checkAddr(n store.Network, subnet netip.Prefix, a netip.Addr) error {
	switch {
	case !subnet.Contains(a):
		return store.Refuse(store.ErrInvalid, "address %s is not in network %s's subnet %s", a, n.Name, n.Subnet)
	case a == subnet.Masked().Addr() || a == broadcast(subnet):
		return store.Refuse(store.ErrInvalid, "address %s is not a host address of subnet %s", a, n.Subnet)
	case a == Gateway(subnet):
		return store.Refuse(store.ErrInvalid, "address %s is network %s's gateway", a, n.Name)
	}
	return nil
}

// broadcast is a subnet's last address.
func broadcast(p netip.Prefix) netip.Addr {
	hostBits := uint32(1)<<(32-p.Bits()) - 1
	return fromUint32(toUint32(p.Masked().Addr()) | hostBits)
}

func newLease(network, owner string, a netip.Addr) store.IPLease {
	return store.IPLease{Network: network, Addr: a.String(), TaskID: owner, MAC: MAC(a).String()}
}

// Release frees an address; releasing one that is free is fine.
func (m *Manager) Release(network, addr string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.store.View().Lease(network, addr); !ok {
		return nil
	}
	if _, err := m.apply(encode(store.CmdDeleteLease, store.NameRef{Name: network + "/" + addr})); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("release %s of network %s: %w", addr, network, err)
	}
	return nil
}

// ReleaseTask frees every address a removed task holds.
func (m *Manager) ReleaseTask(taskID string) error {
	var errs []error
	for _, l := range m.store.View().Leases("") {
		if l.TaskID == taskID {
			errs = append(errs, m.Release(l.Network, l.Addr))
		}
	}
	return errors.Join(errs...)
}

// ClearEndpointHost records that an address's endpoint on host is gone,
// unless the lease already says it is elsewhere: a host that is slow to
// say its endpoint went (a move's source) must not undo the endpoint the
// address has on its new host.
func (m *Manager) ClearEndpointHost(network, addr, host string) (store.IPLease, error) {
	return m.changeEndpointHost(network, addr, func(l *store.IPLease) bool {
		if l.Host != host {
			return false
		}
		l.Host = ""
		return true
	})
}

// SetEndpointHost records where an address's endpoint now is ("" for
// nowhere): the host's agent calls it when Docker creates or deletes the
// endpoint, and every host's data plane follows, so that traffic for the
// address goes to its new host as soon as it is there.
func (m *Manager) SetEndpointHost(network, addr, host string) (store.IPLease, error) {
	return m.changeEndpointHost(network, addr, func(l *store.IPLease) bool {
		if l.Host == host {
			return false
		}
		l.Host = host
		return true
	})
}

// changeEndpointHost applies change to an address's lease and records it
// if change says it changed.
func (m *Manager) changeEndpointHost(network, addr string, change func(*store.IPLease) bool) (store.IPLease, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var l store.IPLease
	index, err := store.Retry(m.store, m.apply, conflictRetries, "address "+addr+" of network "+network, func(v *store.View) ([]byte, error) {
		var ok bool
		if l, ok = v.Lease(network, addr); !ok {
			return nil, store.Refuse(store.ErrNotFound, "address %s of network %s is not leased", addr, network)
		}
		if !change(&l) {
			return nil, nil
		}
		return encode(store.CmdPutLease, l), nil
	})
	if index != 0 {
		l.ModifyIndex = index
	}
	return l, err
}
