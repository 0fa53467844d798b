package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/clusterctl/clusterctl/api"
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
	nets, err := d.Cluster.Networks(ctx)
	if err != nil {
		return fmt.Errorf("list cluster networks: %w", err)
	}
	return d.reconcile(ctx, nets.Networks)
}

// reconcile is Reconcile with the cluster networks already listed.
func (d *Driver) reconcile(ctx context.Context, nets []api.Network) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	addrOf, peers, err := d.hostAddresses(ctx)
	if err != nil {
		return err
	}
	local := map[string]bool{}
	for _, name := range d.State.Networks() {
		local[name] = true
	}
	var errs []error
	for _, n := range nets {
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

// hostAddresses reads every host's address, and the peers among them:
// the other hosts that are up, which a network's flooding goes to.
func (d *Driver) hostAddresses(ctx context.Context) (addrOf map[string]netip.Addr, peers []netip.Addr, err error) {
	resp, err := d.Cluster.Hosts(ctx, true)
	if err != nil {
		return nil, nil, fmt.Errorf("list hosts: %w", err)
	}
	addrOf = map[string]netip.Addr{}
	for _, h := range resp.Hosts {
		a, err := netip.ParseAddr(h.Addr)
		if err != nil {
			continue
		}
		addrOf[h.Name] = a
		if h.Name != d.Host && h.State == store.HostUp {
			peers = append(peers, a)
		}
	}
	return addrOf, peers, nil
}

// Follow reconciles at once whenever changed fires (the store changed),
// and every resyncInterval anyway, until ctx ends; after each pass it
// calls also (if not nil) with the networks it listed, to keep what else
// follows the store (the name service) in line too.
func (d *Driver) Follow(ctx context.Context, changed <-chan struct{}, also func(context.Context, []api.Network) error) {
	tick := time.NewTicker(resyncInterval)
	defer tick.Stop()
	for {
		if err := d.pass(ctx, also); err != nil && ctx.Err() == nil {
			d.Log.Warn("network data plane", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-tick.C:
		}
	}
}

// pass is one of Follow's passes, the networks listed once for both.
func (d *Driver) pass(ctx context.Context, also func(context.Context, []api.Network) error) error {
	nets, err := d.Cluster.Networks(ctx)
	if err != nil {
		return fmt.Errorf("list cluster networks: %w", err)
	}
	err = d.reconcile(ctx, nets.Networks)
	if also != nil {
		err = errors.Join(err, also(ctx, nets.Networks))
	}
	return err
}
