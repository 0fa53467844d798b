package orchestrator

import (
	"testing"

	"github.com/clusterctl/clusterctl/networks"
	"github.com/clusterctl/clusterctl/spec"
	specmock "github.com/clusterctl/clusterctl/spec/mock"
	"github.com/clusterctl/clusterctl/store"
	"github.com/clusterctl/clusterctl/store/mock"
)

// clusterApp is the mock app with its network on clusternet.
func clusterApp() spec.App {
	app := specmock.App()
	app.Networks[0].Driver = networks.DriverName
	app.Networks[0].IPAM = spec.IPAM{}
	for i := range app.Services {
		for j := range app.Services[i].Networks {
			app.Services[i].Networks[j].IPv4Address = "" // the mock's is of the bridge's subnet
		}
	}
	return app
}

// A task's container gets its leased address (the same one again when it
// is made again, as after a move) and the network's gateway as its DNS;
// the network's Docker side on every host is clusteripam with the cluster
// network's subnet; the address is freed once the task is gone.
func TestClusterNetworkAddresses(t *testing.T) {
	h := newHarness(t, 2)
	h.o.opts.Networks = networks.New(h.store, h.apply, nil)
	app := clusterApp()
	opts, cn, err := h.o.clusterNetwork(app, app.Networks[0])
	if err != nil {
		t.Fatal(err)
	}
	if opts.Driver != networks.DriverName || opts.IPAM == nil || opts.IPAM.Driver != networks.IPAMDriverName || opts.IPAM.Config[0].Subnet != cn.Subnet {
		t.Fatalf("docker network create options %+v for cluster network %+v", opts, cn)
	}
	task := mock.Task()
	storeApp := mock.App()
	storeApp.Name = app.Name
	task.App = app.Name
	h.must(store.CmdPutApp, storeApp)
	h.must(store.CmdPutTask, task)
	var addrs []string
	for range 2 {
		cfg, err := app.Container(app.Services[0], spec.TaskRef{ID: task.ID, Slot: task.Slot, Host: "host1"})
		if err != nil {
			t.Fatal(err)
		}
		if err := h.o.leaseAddresses(app, task, &cfg); err != nil {
			t.Fatal(err)
		}
		ep := cfg.Network.EndpointsConfig[app.Networks[0].DockerName]
		if ep == nil || ep.IPAMConfig == nil || len(cfg.Host.DNS) != 1 || cfg.Host.DNS[0] != cn.Gateway {
			t.Fatalf("container config: endpoint %+v, dns %v", ep, cfg.Host.DNS)
		}
		addrs = append(addrs, ep.IPAMConfig.IPv4Address)
	}
	if addrs[0] == "" || addrs[0] != addrs[1] {
		t.Errorf("addresses of the task's two containers: %v, want one and the same", addrs)
	}
	h.must(store.CmdDeleteTask, store.NameRef{Name: task.ID})
	h.o.releaseLeases(h.store.View())
	if leases := h.store.View().Leases(cn.Name); len(leases) != 0 {
		t.Errorf("leases after the task went: %+v", leases)
	}
	if _, ok := h.store.View().Network(cn.Name); !ok {
		t.Error("the cluster network went while its app is still there")
	}
	h.must(store.CmdDeleteApp, store.NameRef{Name: app.Name})
	h.o.releaseLeases(h.store.View())
	if _, ok := h.store.View().Network(cn.Name); ok {
		t.Error("the cluster network of a removed app is still there")
	}
}

// Compose's ipv4_address on a cluster network is the task's lease.
func TestClusterNetworkPreferredAddress(t *testing.T) {
	h := newHarness(t, 2)
	h.o.opts.Networks = networks.New(h.store, h.apply, nil)
	app := specmock.App() // db has ipv4_address 10.10.0.5 in 10.10.0.0/24
	app.Networks[0].Driver = networks.DriverName
	if _, _, err := h.o.clusterNetwork(app, app.Networks[0]); err != nil {
		t.Fatal(err)
	}
	task := mock.Task()
	cfg, err := app.Container(app.Services[0], spec.TaskRef{ID: task.ID, Slot: task.Slot, Host: "host1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.o.leaseAddresses(app, task, &cfg); err != nil {
		t.Fatal(err)
	}
	if ep := cfg.Network.EndpointsConfig[app.Networks[0].DockerName]; ep.IPAMConfig.IPv4Address != "10.10.0.5" {
		t.Errorf("address %s, want Compose's ipv4_address 10.10.0.5", ep.IPAMConfig.IPv4Address)
	}
	if l, ok := h.store.View().Lease(app.Networks[0].DockerName, "10.10.0.5"); !ok || l.TaskID != task.ID {
		t.Errorf("lease %+v, %v", l, ok)
	}
}
