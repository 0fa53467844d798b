package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/clusterctl/clusterctl/store"
)

// resyncInterval is how often the data plane is brought in line with the
// store even when no change was heard of: a missed event costs at most
// this long.
const resyncInterval = 5 * time.Second

// Reconcile brings this host's data plane in line with the store: every
// cluster network a Docker network here stands for has its devices, its
// flooding pointed at the hosts that are up, and its forwarding entries
// for the endpoints on other hosts, where the store says they are now.
// That is how a moved endpoint is found at its new host.
func (d *Driver) Reconcile(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	nets, err := d.Cluster.Networks(ctx)
	if err != nil {
		return fmt.Errorf("list cluster networks: %w", err)
	}
	hosts, err := d.Cluster.Hosts(ctx, true)
	if err != nil {
		return fmt.Errorf("list hosts: %w", err)
	}
	addrOf := map[string]netip.Addr{}
	var peers []netip.Addr
	for _, h := range hosts.Hosts {
		a, err := netip.ParseAddr(h.Addr)
		if err != nil {
			continue
		}
		addrOf[h.Name] = a
		if h.Name != d.Host && h.State == store.HostUp {
			peers = append(peers, a)
		}
	}
	local := map[string]bool{}
	for _, name := range d.State.Networks() {
		local[name] = true
	}
	var errs []error
	for _, n := range nets.Networks {
		if !local[n.Name] {
			continue
		}
		seg, err := segmentOf(n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := d.Plane.Ensure(seg, peers); err != nil {
			errs = append(errs, fmt.Errorf("network %s: %w", n.Name, err))
			continue
		}
		var remote []Remote
		for _, l := range n.Leases {
			host, ok := addrOf[l.Host]
			mac, merr := net.ParseMAC(l.MAC)
			addr, aerr := netip.ParseAddr(l.Addr)
			if l.Host == "" || l.Host == d.Host || !ok || merr != nil || aerr != nil {
				continue
			}
			remote = append(remote, Remote{MAC: mac, Addr: addr, Host: host})
		}
		if err := d.Plane.SetRemote(seg, remote); err != nil {
			errs = append(errs, fmt.Errorf("network %s: %w", n.Name, err))
		}
	}
	return errors.Join(errs...)
}

// Follow reconciles at once whenever changed fires (the store changed),
// and every resyncInterval anyway, until ctx ends; after each pass it
// calls also (if not nil), which keeps what else follows the store
// (the name service) in line too.
func (d *Driver) Follow(ctx context.Context, changed <-chan struct{}, also func(context.Context) error) {
	tick := time.NewTicker(resyncInterval)
	defer tick.Stop()
	for {
		if err := d.Reconcile(ctx); err != nil && ctx.Err() == nil {
			d.Log.Warn("network data plane", "err", err)
		}
		if also != nil {
			if err := also(ctx); err != nil && ctx.Err() == nil {
				d.Log.Warn("network names", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-tick.C:
		}
	}
}
