package server_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/clusterctl/clusterctl/api"
)

// The network endpoints on a real manager: create, lease (for an ad-hoc
// owner: the leader frees leases of tasks not in the store), endpoint host,
// refusals with their status codes, removal.
func TestNetworkRequests(t *testing.T) {
	m, _ := runSingle(t, "m1")
	c := m.client()
	ctx := ctxT(t, 30*time.Second)
	n, err := c.CreateNetwork(ctx, api.NetworkCreate{Name: "shop_default"})
	if err != nil || n.Subnet != "10.200.0.0/24" || n.Gateway != "10.200.0.1" || n.VNI == 0 {
		t.Fatalf("create: %+v, %v", n, err)
	}
	l, err := c.LeaseAddress(ctx, "shop_default", api.LeaseRequest{Task: "docker:host2:test", Addr: "10.200.0.9"})
	if err != nil || l.Addr != "10.200.0.9" || l.MAC != "02:ce:0a:c8:00:09" {
		t.Fatalf("lease: %+v, %v", l, err)
	}
	if l, err = c.SetEndpointHost(ctx, "shop_default", "10.200.0.9", "host2"); err != nil || l.Host != "host2" {
		t.Fatalf("endpoint host: %+v, %v", l, err)
	}
	got, err := c.Network(ctx, "shop_default")
	if err != nil || len(got.Leases) != 1 || got.Leases[0] != (api.Lease{Addr: "10.200.0.9", MAC: "02:ce:0a:c8:00:09", Task: "docker:host2:test", Host: "host2"}) {
		t.Fatalf("inspect: %+v, %v", got, err)
	}
	for _, tc := range []struct {
		what string
		call func() error
		code int
		want string
	}{
		{"overlapping subnet", func() error {
			_, err := c.CreateNetwork(ctx, api.NetworkCreate{Name: "other", Subnet: "10.200.0.0/16"})
			return err
		}, http.StatusConflict, "overlaps 10.200.0.0/24 of network shop_default"},
		{"bad subnet", func() error {
			_, err := c.CreateNetwork(ctx, api.NetworkCreate{Name: "other", Subnet: "nope"})
			return err
		}, http.StatusBadRequest, `invalid subnet "nope"`},
		{"address of another task", func() error {
			_, err := c.LeaseAddress(ctx, "shop_default", api.LeaseRequest{Task: "shop-web-1", Addr: "10.200.0.9"})
			return err
		}, http.StatusConflict, "leased to task docker:host2:test"},
		{"unknown network", func() error {
			_, err := c.LeaseAddress(ctx, "nosuch", api.LeaseRequest{Task: "t"})
			return err
		}, http.StatusNotFound, `no network "nosuch"`},
		{"remove with leases", func() error { return c.RemoveNetwork(ctx, "shop_default") }, http.StatusConflict, "address(es) leased"},
	} {
		err := tc.call()
		se, ok := err.(*api.StatusError)
		if !ok || se.Code != tc.code || !strings.Contains(se.Message, tc.want) {
			t.Errorf("%s: %v, want %d %q", tc.what, err, tc.code, tc.want)
		}
	}
	if err := c.ReleaseAddress(ctx, "shop_default", "10.200.0.9"); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveNetwork(ctx, "shop_default"); err != nil {
		t.Fatal(err)
	}
	if list, err := c.Networks(ctx); err != nil || len(list.Networks) != 0 {
		t.Fatalf("networks after removal: %+v, %v", list, err)
	}
}
