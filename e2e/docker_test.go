//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/clusterctl/clusterctl/engine"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/go-connections/nat"
)

// dockerAt connects to a lab host's engine over the lab network.
func dockerAt(t *testing.T, endpoint, certPath string) *client.Client {
	t.Helper()
	c, err := engine.ConnectTLS(endpoint, certPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// startKV runs the sample kvdb on a host with its port published on the
// host's address, restarting with the host, data in a named volume.
func startKV(t *testing.T, c *client.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	port := nat.Port("7000/tcp")
	created, err := c.ContainerCreate(ctx,
		&container.Config{Image: "sample/kvdb:latest", ExposedPorts: nat.PortSet{port: {}}},
		&container.HostConfig{
			PortBindings:  nat.PortMap{port: {{HostPort: "7000"}}},
			RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyAlways},
			Binds:         []string{"e2e-kv:/data"},
		}, nil, nil, "e2e-kvdb")
	if err != nil {
		t.Fatalf("create kvdb: %v", err)
	}
	if err := c.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatalf("start kvdb: %v", err)
	}
}

// probeFrom runs a one-shot container on a host that checks a URL (kvdb's
// health subcommand) and returns its exit code: real traffic from a
// container on one host to another host's published port.
func probeFrom(c *client.Client, url string) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	created, err := c.ContainerCreate(ctx,
		&container.Config{Image: "sample/kvdb:latest", Cmd: []string{"health", url}},
		&container.HostConfig{AutoRemove: false}, nil, nil, "")
	if err != nil {
		return -1, fmt.Errorf("create probe: %w", err)
	}
	defer c.ContainerRemove(context.Background(), created.ID, container.RemoveOptions{Force: true})
	waitC, errC := c.ContainerWait(ctx, created.ID, container.WaitConditionNextExit)
	if err := c.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		return -1, fmt.Errorf("start probe: %w", err)
	}
	select {
	case res := <-waitC:
		return res.StatusCode, nil
	case err := <-errC:
		return -1, fmt.Errorf("wait probe: %w", err)
	}
}
