//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
)

// networkInfo is one network of `clusterctl network inspect`.
type networkInfo struct {
	Name    string `json:"name"`
	Subnet  string `json:"subnet"`
	Gateway string `json:"gateway"`
	VNI     int    `json:"vni"`
	Leases  []struct {
		Addr string `json:"addr"`
		MAC  string `json:"mac"`
		Task string `json:"task"`
	} `json:"leases"`
}

func (c *cli) network(name string) (networkInfo, error) {
	out, err := c.run("network", "inspect", name)
	if err != nil {
		return networkInfo{}, err
	}
	var nets []networkInfo
	if err := json.Unmarshal([]byte(out), &nets); err != nil || len(nets) != 1 {
		return networkInfo{}, fmt.Errorf("network inspect %s: %v: %q", name, err, out)
	}
	return nets[0], nil
}

// runOnNetwork starts kvdb on a Docker network, with an address if given.
func runOnNetwork(d *client.Client, name, net, ip string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ep := &network.EndpointSettings{}
	if ip != "" {
		ep.IPAMConfig = &network.EndpointIPAMConfig{IPv4Address: ip}
	}
	created, err := d.ContainerCreate(ctx, &container.Config{Image: "sample/kvdb:latest"}, &container.HostConfig{},
		&network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{net: ep}}, nil, name)
	if err != nil {
		return err
	}
	return d.ContainerStart(ctx, created.ID, container.StartOptions{})
}

// TestNetworkIPAM drives the clusteripam plugin through the lab hosts'
// real dockerd (with Docker's own bridge driver: the overlay driver comes
// next): the pool is the cluster network, every address a lease in the
// store, no address given twice across hosts, ad-hoc addresses freed with
// their container, bad input refused with the reason.
func TestNetworkIPAM(t *testing.T) {
	c := labCLI(t)
	c.must("lab", "up", "--hosts", "2", "--images", images)
	st := c.status()
	h1, h2 := st.Hosts[0], st.Hosts[1]
	d1, d2 := dockerAt(t, h1.Docker, h1.DockerCertPath), dockerAt(t, h2.Docker, h2.DockerCertPath)
	ctx := context.Background()

	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"network", "create", "a/b"}, `invalid network name "a/b"`},
		{[]string{"network", "create", "x", "--subnet", h1.Addr + "/24"}, "host bits set"},
		{[]string{"network", "create", "x", "--subnet", "10.99.0.0/24"}, "holds host host1's own address " + h1.Addr},
		{[]string{"network", "rm", "nosuch"}, `no network "nosuch"`},
	} {
		if _, err := c.run(bad.args...); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%v: want an error with %q, got %v", bad.args, bad.want, err)
		}
	}
	c.must("network", "create", "n1", "--subnet", "10.200.9.0/24")
	if _, err := c.run("network", "create", "n2", "--subnet", "10.200.9.128/25"); err == nil || !strings.Contains(err.Error(), "overlaps 10.200.9.0/24 of network n1") {
		t.Errorf("overlapping subnet: %v", err)
	}
	for _, d := range []*client.Client{d1, d2} {
		if _, err := d.NetworkCreate(ctx, "n1", network.CreateOptions{IPAM: &network.IPAM{Driver: "clusteripam",
			Config: []network.IPAMConfig{{Subnet: "10.200.9.0/24"}}}}); err != nil {
			t.Fatalf("docker network create n1: %v", err)
		}
	}
	_, err := d1.NetworkCreate(ctx, "stray", network.CreateOptions{IPAM: &network.IPAM{Driver: "clusteripam",
		Config: []network.IPAMConfig{{Subnet: "10.9.9.0/24"}}}})
	if err == nil || !strings.Contains(err.Error(), "no cluster network has subnet 10.9.9.0/24") {
		t.Errorf("docker network create with a subnet no cluster network has: %v", err)
	}

	if err := runOnNetwork(d1, "a1", "n1", ""); err != nil {
		t.Fatal(err)
	}
	info, err := d1.ContainerInspect(ctx, "a1")
	if err != nil {
		t.Fatal(err)
	}
	ep := info.NetworkSettings.Networks["n1"]
	if ep == nil || ep.IPAddress != "10.200.9.2" || ep.Gateway != "10.200.9.1" {
		t.Fatalf("a1 on n1: %+v, want 10.200.9.2 via 10.200.9.1", ep)
	}
	n, err := c.network("n1")
	if err != nil || len(n.Leases) != 1 || n.Leases[0].Addr != "10.200.9.2" || !strings.HasPrefix(n.Leases[0].Task, "docker:"+h1.Name+":") {
		t.Fatalf("n1 after a1 started: %+v, %v", n, err)
	}
	// The same address on another host: refused, it is leased.
	err = runOnNetwork(d2, "b1", "n1", "10.200.9.2")
	if err == nil || !strings.Contains(err.Error(), "address 10.200.9.2 of network n1 is leased") {
		t.Errorf("the same address on %s: %v", h2.Name, err)
	}
	if err := runOnNetwork(d2, "b2", "n1", "10.200.9.7"); err != nil {
		t.Fatalf("a free address on %s: %v", h2.Name, err)
	}
	for _, name := range []string{"a1"} {
		if err := d1.ContainerRemove(ctx, name, container.RemoveOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"b1", "b2"} {
		_ = d2.ContainerRemove(ctx, name, container.RemoveOptions{Force: true})
	}
	eventually(t, 10*time.Second, "ad-hoc leases freed with their containers", func() error {
		n, err := c.network("n1")
		if err != nil {
			return err
		}
		if len(n.Leases) != 0 {
			return fmt.Errorf("leases left: %+v", n.Leases)
		}
		return nil
	})
	for _, d := range []*client.Client{d1, d2} {
		if err := d.NetworkRemove(ctx, "n1"); err != nil {
			t.Fatal(err)
		}
	}
	c.must("network", "rm", "n1")
	if out := c.must("network", "ls"); strings.Contains(out, "n1") {
		t.Errorf("network ls after rm: %s", out)
	}
}
