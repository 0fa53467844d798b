package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	netplugin "github.com/docker/go-plugins-helpers/network"

	"github.com/clusterctl/clusterctl/agent/network"
	"github.com/clusterctl/clusterctl/agent/network/dataplane"
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
	sock, err := listenPlugin(a.cfg.PluginDir, network.DriverName)
	if err != nil {
		plane.Close()
		return nil, err
	}
	go func() {
		if err := netplugin.NewHandler(d).Serve(sock); err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, http.ErrServerClosed) {
			a.cfg.Log.Error("network plugin stopped", "err", err)
		}
	}()
	names := &network.DNS{Records: &network.Records{}, Port: dnsPort, Log: a.cfg.Log}
	changed := make(chan struct{}, 1)
	go a.watchNetworkChanges(ctx, changed)
	go d.Follow(ctx, changed, func(ctx context.Context) error { return a.serveNames(ctx, state, names) })
	return func() {
		sock.Close()
		_ = names.Stop("")
		plane.Close()
	}, nil
}

// watchNetworkChanges signals changed on every change of the store that
// moves an endpoint or a name: hosts, networks, leases, tasks.
func (a *Agent) watchNetworkChanges(ctx context.Context, changed chan<- struct{}) {
	relevant := []string{"host.", "network.", "lease.", "task."}
	var index uint64
	for ctx.Err() == nil {
		err := a.api.Events(ctx, index, func(ev store.Event) error {
			index = ev.Index
			for _, p := range relevant {
				if strings.HasPrefix(ev.Type, p) {
					select {
					case changed <- struct{}{}:
					default:
					}
					break
				}
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

// serveNames refreshes the service names and answers them on the gateway
// of every cluster network this host has.
func (a *Agent) serveNames(ctx context.Context, state *network.State, names *network.DNS) error {
	nets, err := a.api.Networks(ctx)
	if err != nil {
		return fmt.Errorf("list cluster networks: %w", err)
	}
	tasks, err := a.api.Tasks(ctx, "")
	if err != nil {
		return fmt.Errorf("list tasks: %w", err)
	}
	names.Records.Set(network.BuildRecords(nets.Networks, tasks.Tasks))
	local := map[string]bool{}
	for _, n := range state.Networks() {
		local[n] = true
	}
	var errs []error
	for _, n := range nets.Networks {
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
