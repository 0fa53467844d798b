package network

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	netplugin "github.com/docker/go-plugins-helpers/network"

	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/networks"
	"github.com/clusterctl/clusterctl/store"
)

// fakePlane records what the driver asks of the data plane.
type fakePlane struct {
	nets      map[string][]netip.Addr // network -> peers
	endpoints map[string]netip.Prefix // endpoint ID -> address
	remote    map[string][]Remote
}

func newFakePlane() *fakePlane {
	return &fakePlane{nets: map[string][]netip.Addr{}, endpoints: map[string]netip.Prefix{}, remote: map[string][]Remote{}}
}

func (p *fakePlane) Ensure(n Segment, peers []netip.Addr) error {
	p.nets[n.Name] = slices.Clone(peers)
	return nil
}
func (p *fakePlane) Remove(n Segment) error { delete(p.nets, n.Name); return nil }
func (p *fakePlane) CreateEndpoint(n Segment, id string, _ net.HardwareAddr, addr netip.Prefix) (string, error) {
	p.endpoints[id] = addr
	return "cnc" + id[:min(8, len(id))], nil
}
func (p *fakePlane) DeleteEndpoint(id string) error { delete(p.endpoints, id); return nil }
func (p *fakePlane) SetRemote(n Segment, eps []Remote) error {
	p.remote[n.Name] = eps
	return nil
}

// driverManagers adds what the network driver needs to the IPAM tests'
// managers: hosts, and where endpoints are.
type driverManagers struct{ *managers }

func (c driverManagers) Hosts(context.Context, bool) (*api.HostsResponse, error) {
	return &api.HostsResponse{Hosts: c.st.View().Hosts()}, nil
}

func (c driverManagers) SetEndpointHost(_ context.Context, network, addr, host string) (*api.Lease, error) {
	l, err := c.m.SetEndpointHost(network, addr, host)
	if err != nil {
		return nil, err
	}
	return &api.Lease{Addr: l.Addr, MAC: l.MAC, Task: l.TaskID, Host: l.Host}, nil
}

func (c driverManagers) ClearEndpointHost(_ context.Context, network, addr, host string) (*api.Lease, error) {
	l, err := c.m.ClearEndpointHost(network, addr, host)
	if err != nil {
		return nil, err
	}
	return &api.Lease{Addr: l.Addr, MAC: l.MAC, Task: l.TaskID, Host: l.Host}, nil
}

func registerHost(t *testing.T, c *managers, name, addr string) {
	t.Helper()
	b, err := store.Encode(store.CmdRegisterHost, store.Host{Name: name, Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.ResponseError(c.st.Apply(rawLog(c.st, b))); err != nil {
		t.Fatal(err)
	}
}

func newTestDriver(t *testing.T, c *managers, host string) (*Driver, *fakePlane) {
	t.Helper()
	st, err := LoadState(filepath.Join(t.TempDir(), "networks.json"))
	if err != nil {
		t.Fatal(err)
	}
	plane := newFakePlane()
	return &Driver{Host: host, Cluster: driverManagers{c}, Plane: plane, State: st, Log: slog.New(slog.DiscardHandler)}, plane
}

func TestDriverNetworkAndEndpointLifecycle(t *testing.T) {
	c := newManagers(t)
	registerHost(t, c, "host1", "10.99.0.11")
	registerHost(t, c, "host2", "10.99.0.12")
	if _, err := c.m.Create(networks.Request{Name: "shop_default", Subnet: "10.200.3.0/24"}); err != nil {
		t.Fatal(err)
	}
	d, plane := newTestDriver(t, c, "host1")
	if err := d.CreateNetwork(&netplugin.CreateNetworkRequest{NetworkID: "n1", IPv4Data: []*netplugin.IPAMData{{Pool: "10.200.3.0/24"}}}); err != nil {
		t.Fatal(err)
	}
	if got := plane.nets["shop_default"]; len(got) != 1 || got[0] != netip.MustParseAddr("10.99.0.12") {
		t.Fatalf("peers of shop_default: %v, want host2 only", got)
	}
	if _, err := c.m.Lease("shop_default", "shop-db-1", "10.200.3.9"); err != nil {
		t.Fatal(err)
	}
	// Another container asking for shop-db-1's address is refused.
	_, err := d.CreateEndpoint(&netplugin.CreateEndpointRequest{NetworkID: "n1", EndpointID: "intruder",
		Interface: &netplugin.EndpointInterface{Address: "10.200.3.9/24"}})
	if err == nil || !strings.Contains(err.Error(), "leased to task shop-db-1") {
		t.Fatalf("another endpoint with shop-db-1's address: %v", err)
	}
	taskOpts := map[string]any{OptTask: "shop-db-1"} // as Docker passes an endpoint's driver options
	resp, err := d.CreateEndpoint(&netplugin.CreateEndpointRequest{NetworkID: "n1", EndpointID: "e1234567890",
		Interface: &netplugin.EndpointInterface{Address: "10.200.3.9/24"}, Options: taskOpts})
	if err != nil || resp.Interface == nil || resp.Interface.MacAddress != "02:ce:0a:c8:03:09" {
		t.Fatalf("create endpoint: %+v, %v; want the MAC derived from the address", resp, err)
	}
	if l, _ := c.st.View().Lease("shop_default", "10.200.3.9"); l.Host != "host1" {
		t.Errorf("lease after the endpoint was made: %+v, want its host recorded", l)
	}
	join, err := d.Join(&netplugin.JoinRequest{NetworkID: "n1", EndpointID: "e1234567890"})
	if err != nil || join.InterfaceName.SrcName != "cnce1234567" || join.InterfaceName.DstPrefix != "eth" || !join.DisableGatewayService {
		t.Fatalf("join: %+v, %v", join, err)
	}
	if err := d.Leave(&netplugin.LeaveRequest{NetworkID: "n1", EndpointID: "e1234567890"}); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteEndpoint(&netplugin.DeleteEndpointRequest{NetworkID: "n1", EndpointID: "e1234567890"}); err != nil {
		t.Fatal(err)
	}
	l, ok := c.st.View().Lease("shop_default", "10.200.3.9")
	if !ok || l.Host != "" || l.TaskID != "shop-db-1" {
		t.Errorf("lease after the endpoint went: %+v, %v; want it kept for its task, with no host", l, ok)
	}
	if len(plane.endpoints) != 0 {
		t.Errorf("endpoints left in the data plane: %v", plane.endpoints)
	}
	if err := d.DeleteNetwork(&netplugin.DeleteNetworkRequest{NetworkID: "n1"}); err != nil {
		t.Fatal(err)
	}
	if _, ok := plane.nets["shop_default"]; ok {
		t.Error("the network's devices stayed after its Docker network was deleted")
	}
}

func TestDriverRefusals(t *testing.T) {
	c := newManagers(t)
	d, _ := newTestDriver(t, c, "host1")
	for _, tc := range []struct {
		req  netplugin.CreateNetworkRequest
		want string
	}{
		{netplugin.CreateNetworkRequest{NetworkID: "n"}, "exactly one IPv4 subnet"},
		{netplugin.CreateNetworkRequest{NetworkID: "n", IPv4Data: []*netplugin.IPAMData{{Pool: "10.9.0.0/24"}}}, "no cluster network has subnet 10.9.0.0/24"},
	} {
		if err := d.CreateNetwork(&tc.req); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("create network %+v: %v, want %q", tc.req, err, tc.want)
		}
	}
	if _, err := d.CreateEndpoint(&netplugin.CreateEndpointRequest{NetworkID: "n", EndpointID: "e", Interface: &netplugin.EndpointInterface{}}); err == nil {
		t.Error("an endpoint without an address was accepted")
	}
	if _, err := d.Join(&netplugin.JoinRequest{NetworkID: "n", EndpointID: "nosuch"}); err == nil {
		t.Error("joined an unknown endpoint")
	}
}

// After a restart the driver knows its networks and endpoints again, and
// Reconcile points traffic at the endpoints where the store says they are:
// an address whose endpoint moved to host3 is sent to host3.
func TestReconcileFollowsMovedEndpoints(t *testing.T) {
	c := newManagers(t)
	for i, h := range []string{"host1", "host2", "host3"} {
		registerHost(t, c, h, fmt.Sprintf("10.99.0.%d", 11+i))
	}
	if _, err := c.m.Create(networks.Request{Name: "net", Subnet: "10.200.5.0/24"}); err != nil {
		t.Fatal(err)
	}
	d, _ := newTestDriver(t, c, "host1")
	if err := d.CreateNetwork(&netplugin.CreateNetworkRequest{NetworkID: "n1", IPv4Data: []*netplugin.IPAMData{{Pool: "10.200.5.0/24"}}}); err != nil {
		t.Fatal(err)
	}
	again, err := LoadState(d.State.file) // the agent restarted
	if err != nil {
		t.Fatal(err)
	}
	d2, plane := newTestDriver(t, c, "host1")
	d2.State = again
	if _, err := c.m.Lease("net", "db-1", "10.200.5.9"); err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"host2", "host3"} {
		if _, err := c.m.SetEndpointHost("net", "10.200.5.9", host); err != nil {
			t.Fatal(err)
		}
		if err := d2.Reconcile(context.Background()); err != nil {
			t.Fatal(err)
		}
		eps := plane.remote["net"]
		if len(eps) != 1 || eps[0].Addr != netip.MustParseAddr("10.200.5.9") || eps[0].MAC.String() != "02:ce:0a:c8:05:09" {
			t.Fatalf("remote endpoints with db-1 on %s: %+v", host, eps)
		}
		want, _ := c.st.View().Host(host)
		if eps[0].Host.String() != want.Addr {
			t.Errorf("db-1's traffic goes to %s, want %s (%s)", eps[0].Host, host, want.Addr)
		}
	}
	if peers := plane.nets["net"]; len(peers) != 2 {
		t.Errorf("peers after a restart: %v, want host2 and host3", peers)
	}
}
