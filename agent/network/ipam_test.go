package network

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	ipamplugin "github.com/docker/go-plugins-helpers/ipam"
	"github.com/hashicorp/raft"

	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/networks"
	"github.com/clusterctl/clusterctl/store"
)

// managers is the cluster as the driver sees it, over a real
// networks.Manager and store (what the API serves, without HTTP).
type managers struct {
	st *store.Store
	m  *networks.Manager
}

func newManagers(t *testing.T) *managers {
	t.Helper()
	st := store.New(nil)
	apply := func(b []byte) (uint64, error) {
		l := rawLog(st, b)
		return l.Index, store.ResponseError(st.Apply(l))
	}
	return &managers{st: st, m: networks.New(st, apply, nil)}
}

// rawLog is the next raft log entry of st carrying b.
func rawLog(st *store.Store, b []byte) *raft.Log {
	return &raft.Log{Index: st.AppliedIndex() + 1, Type: raft.LogCommand, Data: b, AppendedAt: time.Now()}
}

func (c *managers) info(n store.Network) *api.Network {
	out := &api.Network{Name: n.Name, Subnet: n.Subnet, Gateway: n.Gateway, VNI: n.VNI}
	for _, l := range c.st.View().Leases(n.Name) {
		out.Leases = append(out.Leases, api.Lease{Addr: l.Addr, MAC: l.MAC, Task: l.TaskID, Host: l.Host})
	}
	return out
}

func (c *managers) CreateNetwork(_ context.Context, req api.NetworkCreate) (*api.Network, error) {
	n, err := c.m.Create(networks.Request{Name: req.Name, Subnet: req.Subnet})
	if err != nil {
		return nil, err
	}
	return c.info(n), nil
}

func (c *managers) Networks(context.Context) (*api.NetworksResponse, error) {
	out := &api.NetworksResponse{}
	for _, n := range c.st.View().Networks() {
		out.Networks = append(out.Networks, *c.info(n))
	}
	return out, nil
}

func (c *managers) Network(_ context.Context, name string) (*api.Network, error) {
	n, ok := c.st.View().Network(name)
	if !ok {
		return nil, &api.StatusError{Code: 404, Message: "no network " + name}
	}
	return c.info(n), nil
}

func (c *managers) LeaseAddress(_ context.Context, network string, req api.LeaseRequest) (*api.Lease, error) {
	l, err := c.m.Lease(network, req.Task, req.Addr)
	if err != nil {
		return nil, err
	}
	return &api.Lease{Addr: l.Addr, MAC: l.MAC, Task: l.TaskID}, nil
}

func (c *managers) ReleaseAddress(_ context.Context, network, addr string) error {
	return c.m.Release(network, addr)
}

func TestIPAMPoolsAreClusterNetworks(t *testing.T) {
	c := newManagers(t)
	d := &IPAM{Host: "host1", Cluster: c}
	if _, err := c.m.Create(networks.Request{Name: "shop_default", Subnet: "10.200.3.0/24"}); err != nil {
		t.Fatal(err)
	}
	pool, err := d.RequestPool(&ipamplugin.RequestPoolRequest{Pool: "10.200.3.0/24"})
	if err != nil || pool.PoolID != "shop_default" || pool.Pool != "10.200.3.0/24" || pool.Data[gatewayAddress] != "10.200.3.1/24" {
		t.Fatalf("pool by subnet: %+v, %v", pool, err)
	}
	named, err := d.RequestPool(&ipamplugin.RequestPoolRequest{Options: map[string]string{OptNetwork: "fresh"}})
	if err != nil || named.PoolID != "fresh" || named.Pool == "" {
		t.Fatalf("pool by name: %+v, %v", named, err)
	}
	for _, bad := range []struct {
		req  ipamplugin.RequestPoolRequest
		want string
	}{
		{ipamplugin.RequestPoolRequest{}, "needs the subnet of a cluster network"},
		{ipamplugin.RequestPoolRequest{Pool: "10.9.0.0/24"}, "no cluster network has subnet 10.9.0.0/24"},
		{ipamplugin.RequestPoolRequest{V6: true}, "IPv4 only"},
		{ipamplugin.RequestPoolRequest{Pool: "10.200.3.0/24", SubPool: "10.200.3.0/25"}, "--ip-range"},
		{ipamplugin.RequestPoolRequest{Pool: "10.200.3.128/25", Options: map[string]string{OptNetwork: "clash"}}, "overlaps"},
	} {
		if _, err := d.RequestPool(&bad.req); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("pool %+v: %v, want %q", bad.req, err, bad.want)
		}
	}
}

func TestIPAMAddresses(t *testing.T) {
	c := newManagers(t)
	d := &IPAM{Host: "host1", Cluster: c}
	if _, err := c.m.Create(networks.Request{Name: "net", Subnet: "10.200.4.0/24"}); err != nil {
		t.Fatal(err)
	}
	gw, err := d.RequestAddress(&ipamplugin.RequestAddressRequest{PoolID: "net", Options: map[string]string{requestAddressType: gatewayAddress}})
	if err != nil || gw.Address != "10.200.4.1/24" {
		t.Fatalf("gateway: %+v, %v", gw, err)
	}
	// A task's address, leased by the orchestrator, is handed to its
	// container and stays leased when Docker releases it.
	if _, err := c.m.Lease("net", "shop-db-1", "10.200.4.9"); err != nil {
		t.Fatal(err)
	}
	got, err := d.RequestAddress(&ipamplugin.RequestAddressRequest{PoolID: "net", Address: "10.200.4.9"})
	if err != nil || got.Address != "10.200.4.9/24" {
		t.Fatalf("task address: %+v, %v", got, err)
	}
	if err := d.ReleaseAddress(&ipamplugin.ReleaseAddressRequest{PoolID: "net", Address: "10.200.4.9"}); err != nil {
		t.Fatal(err)
	}
	if l, ok := c.st.View().Lease("net", "10.200.4.9"); !ok || l.TaskID != "shop-db-1" {
		t.Errorf("a task's address was freed when its container let it go: %+v", l)
	}
	// A container started by hand gets an ad-hoc lease, freed on release.
	adhoc, err := d.RequestAddress(&ipamplugin.RequestAddressRequest{PoolID: "net"})
	if err != nil || adhoc.Address != "10.200.4.2/24" {
		t.Fatalf("ad-hoc address: %+v, %v", adhoc, err)
	}
	if err := d.ReleaseAddress(&ipamplugin.ReleaseAddressRequest{PoolID: "net", Address: "10.200.4.2"}); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.st.View().Lease("net", "10.200.4.2"); ok {
		t.Error("an ad-hoc address stayed leased after its release")
	}
	// Nobody else gets a task's address or a bogus gateway.
	if _, err := c.m.Lease("net", "shop-web-1", "10.200.4.9"); !errors.Is(err, store.ErrConflict) {
		t.Errorf("another task takes a leased address: %v", err)
	}
	if _, err := d.RequestAddress(&ipamplugin.RequestAddressRequest{PoolID: "net", Address: "10.200.4.77", Options: map[string]string{requestAddressType: gatewayAddress}}); err == nil {
		t.Error("a gateway other than the network's was accepted")
	}
	if _, err := d.RequestAddress(&ipamplugin.RequestAddressRequest{PoolID: "nosuch"}); err == nil {
		t.Error("an address of an unknown pool was handed out")
	}
}
