package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"time"

	netplugin "github.com/docker/go-plugins-helpers/network"

	"github.com/clusterctl/clusterctl/agent/network"
	"github.com/clusterctl/clusterctl/agent/network/dataplane"
	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/store"
)

// dnsPort is where the agents answer service names, on each cluster
// network's gateway address.
const dnsPort = 53

// startNetworks serves the clusternet plugin on its socket and keeps the
// host's data plane and name service in line with the store until ctx
// ends. It returns a function that stops the plugin and the name service.
func (a *Agent) startNetworks(ctx context.Context) (stop func(), err error) {
	local, err := netip.ParseAddr(a.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("--addr %q: %w", a.cfg.Addr, err)
	}
	plane, err := dataplane.New()
	if err != nil {
		return nil, fmt.Errorf("network data plane: %w", err)
	}
	state, err := network.LoadState(filepath.Join(a.cfg.DataDir, "networks.json"))
	if err != nil {
		plane.Close()
		return nil, err
	}
	d := &network.Driver{Host: a.cfg.Name, Cluster: a.api, Plane: &network.HostPlane{Plane: plane, Local: local},
		State: state, Log: a.cfg.Log, Announce: network.Announce}
	sock, err := a.servePlugin(network.DriverName, netplugin.NewHandler(d).Serve)
	if err != nil {
		plane.Close()
		return nil, err
	}
	names := &network.DNS{Records: &network.Records{}, Port: dnsPort, Log: a.cfg.Log}
	changed := make(chan struct{}, 1)
	go a.watchNetworkChanges(ctx, changed)
	go d.Follow(ctx, changed, func(ctx context.Context, nets []api.Network) error { return a.serveNames(ctx, nets, state, names) })
	return func() {
		sock.Close()
		_ = names.Stop("")
		plane.Close()
	}, nil
}

// watchNetworkChanges signals changed on every change of the store that
// moves an endpoint or a name: hosts, networks, leases, tasks.
func (a *Agent) watchNetworkChanges(ctx context.Context, changed chan<- struct{}) {
	var index uint64
	for ctx.Err() == nil {
		err := a.api.Events(ctx, index, func(ev store.Event) error {
			index = ev.Index
			if networkEvent(ev.Type) {
				notify(changed)
			}
			return nil
		})
		if ctx.Err() != nil {
			return
		}
		// Events gone from the managers' buffer: start again from now
		// (the periodic pass covers what was missed).
		a.cfg.Log.Warn("store events for the network plugin", "err", err)
		if st, err := a.api.Status(ctx); err == nil {
			index = st.Index
		}
		select {
		case <-ctx.Done():
		case <-time.After(HeartbeatInterval):
		}
	}
}

// networkEvent says whether a store event can move an endpoint or a name:
// a change of hosts, networks, leases or tasks.
func networkEvent(typ string) bool {
	return slices.ContainsFunc([]string{"host.", "network.", "lease.", "task."}, func(p string) bool { return strings.HasPrefix(typ, p) })
}

// notify signals c without waiting: a signal already pending covers this
// one.
func notify(c chan<- struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// serveNames refreshes the service names from nets and the tasks, and
// answers them on the gateway of every cluster network this host has.
func (a *Agent) serveNames(ctx context.Context, nets []api.Network, state *network.State, names *network.DNS) error {
	tasks, err := a.api.Tasks(ctx, "")
	if err != nil {
		return fmt.Errorf("list tasks: %w", err)
	}
	names.Records.Set(network.BuildRecords(nets, tasks.Tasks))
	local := map[string]bool{}
	for _, n := range state.Networks() {
		local[n] = true
	}
	var errs []error
	for _, n := range nets {
		if !local[n.Name] {
			_ = names.Stop(n.Name)
			continue
		}
		gw, err := netip.ParseAddr(n.Gateway)
		if err != nil {
			continue
		}
		errs = append(errs, names.Serve(n.Name, gw))
	}
	return errors.Join(errs...)
}
