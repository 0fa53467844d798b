package orchestrator

import (
	"fmt"
	"slices"

	"github.com/docker/docker/api/types/network"

	"github.com/clusterctl/clusterctl/networks"
	"github.com/clusterctl/clusterctl/spec"
	"github.com/clusterctl/clusterctl/store"
)

// Cluster networks (Compose `driver: clusternet`) span hosts: the leader
// records the network in the store (subnet, VNI) before any host creates
// its Docker side, leases each task its address before its container is
// made (Compose's ipv4_address if it has one; the same address again for
// a task whose container is re-created, on this host or another), points
// the container's DNS at the network's gateway, where the agents answer
// the services' names, and frees a task's addresses when the task is gone.

func isClusterNet(n spec.Network) bool { return n.Driver == networks.DriverName }

// clusterNetwork records n in the store (or finds it) and returns the
// create call every host makes for its Docker side: the cluster network's
// subnet, through clusteripam.
func (o *Orchestrator) clusterNetwork(app spec.App, n spec.Network) (network.CreateOptions, store.Network, error) {
	if o.opts.Networks == nil {
		return network.CreateOptions{}, store.Network{}, fmt.Errorf("network %s: cluster networks need the managers' network service", n.Name)
	}
	req := networks.Request{Name: n.DockerName, Labels: map[string]string{spec.LabelProject: app.Name}}
	if len(n.IPAM.Subnets) > 0 {
		req.Subnet = n.IPAM.Subnets[0].Subnet
	}
	cn, err := o.opts.Networks.Create(req)
	if err != nil {
		return network.CreateOptions{}, cn, fmt.Errorf("cluster network %s: %w", n.DockerName, err)
	}
	opts := app.NetworkCreate(n)
	opts.IPAM = &network.IPAM{Driver: networks.IPAMDriverName, Config: []network.IPAMConfig{{Subnet: cn.Subnet}}}
	return opts, cn, nil
}

// leaseAddresses gives the task its address on each cluster network of
// cfg and points its DNS at the first one's gateway.
func (o *Orchestrator) leaseAddresses(app spec.App, t store.Task, cfg *spec.ContainerConfig) error {
	eps := map[string]*network.EndpointSettings{}
	if cfg.Network != nil {
		for name, ep := range cfg.Network.EndpointsConfig {
			eps[name] = ep
		}
	}
	for _, c := range cfg.Connect {
		eps[c.Network] = c.Endpoint
	}
	for _, n := range app.Networks {
		ep, ok := eps[n.DockerName]
		if !ok || !isClusterNet(n) {
			continue
		}
		if o.opts.Networks == nil {
			return fmt.Errorf("network %s: cluster networks need the managers' network service", n.Name)
		}
		preferred := ""
		if ep.IPAMConfig != nil {
			preferred = ep.IPAMConfig.IPv4Address
		}
		l, err := o.opts.Networks.Lease(n.DockerName, t.ID, preferred)
		if err != nil {
			return fmt.Errorf("address of %s on %s: %w", t.ID, n.DockerName, err)
		}
		ep.IPAMConfig = &network.EndpointIPAMConfig{IPv4Address: l.Addr}
		if ep.DriverOpts == nil {
			ep.DriverOpts = map[string]string{}
		}
		ep.DriverOpts[networks.EndpointTaskOpt] = t.ID // the driver refuses the address to any other endpoint
		cn, _ := o.opts.Store.View().Network(n.DockerName)
		if cn.Gateway != "" && !slices.Contains(cfg.Host.DNS, cn.Gateway) {
			cfg.Host.DNS = append(cfg.Host.DNS, cn.Gateway)
		}
	}
	return nil
}

// releaseLeases frees the addresses of tasks that are gone: those a pass
// just deleted, and any a crash left behind (a lease whose task is no
// longer in the store). Addresses Docker took for containers run by hand
// are the agents' business. Then it removes the cluster networks of apps
// that are gone, once nothing holds their addresses.
func (o *Orchestrator) releaseLeases(v *store.View) {
	if o.opts.Networks == nil {
		return
	}
	defer o.removeAppNetworks()
	for _, l := range v.Leases("") {
		if networks.IsAdHoc(l.TaskID) {
			continue
		}
		if _, ok := v.Task(l.TaskID); ok {
			continue
		}
		if err := o.opts.Networks.Release(l.Network, l.Addr); err != nil {
			o.log.Warn("free the address of a removed task", "network", l.Network, "addr", l.Addr, "task", l.TaskID, "err", err)
		}
	}
}

// removeAppNetworks removes the cluster networks an app made (its project
// label says which) once the app is gone and no address of them is held.
// The app goes only after its hosts removed their Docker networks.
func (o *Orchestrator) removeAppNetworks() {
	v := o.opts.Store.View()
	for _, n := range v.Networks() {
		app := n.Labels[spec.LabelProject]
		if app == "" || len(v.Leases(n.Name)) > 0 {
			continue
		}
		if _, ok := v.App(app); ok {
			continue
		}
		if err := o.opts.Networks.Remove(n.Name); err != nil {
			o.log.Warn("remove the cluster network of a removed app", "network", n.Name, "app", app, "err", err)
		}
	}
}
