// Package engine talks to Docker hosts through the Docker Engine API. It is
// the one place that builds a Docker client, so every caller negotiates the
// API version: the hosts may run older engines (Debian's 20.10 speaks 1.41).
package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/docker/docker/client"
	"golang.org/x/sync/errgroup"
)

// Connect returns a client for a Docker endpoint such as
// "unix:///run/docker.sock" or "tcp://10.99.0.11:2375".
func Connect(endpoint string) (*client.Client, error) {
	c, err := client.NewClientWithOpts(client.WithHost(endpoint), client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client for %s: %w", endpoint, err)
	}
	return c, nil
}

// HostInfo is what a Docker host says about itself.
type HostInfo struct {
	Name              string `json:"name"`
	Addr              string `json:"addr,omitempty"`
	Docker            string `json:"docker"`
	State             string `json:"state"` // up or unreachable
	Hostname          string `json:"hostname,omitempty"`
	Version           string `json:"version,omitempty"`
	APIVersion        string `json:"api_version,omitempty"`
	Containers        int    `json:"containers"`
	ContainersRunning int    `json:"containers_running"`
	CPUs              int    `json:"cpus"`
	MemoryBytes       int64  `json:"memory_bytes"`
	Error             string `json:"error,omitempty"`
}

// Describe asks one host's engine for its version, containers and size.
// An unreachable host is reported, not returned as an error, so that a list
// of hosts still shows the others.
func Describe(ctx context.Context, name, addr, endpoint string) HostInfo {
	info := HostInfo{Name: name, Addr: addr, Docker: endpoint, State: "unreachable"}
	c, err := Connect(endpoint)
	if err != nil {
		info.Error = err.Error()
		return info
	}
	defer c.Close()
	sys, err := c.Info(ctx)
	if err != nil {
		info.Error = err.Error()
		return info
	}
	info.State = "up"
	info.Hostname = sys.Name
	info.Version = sys.ServerVersion
	info.APIVersion = c.ClientVersion()
	info.Containers = sys.Containers
	info.ContainersRunning = sys.ContainersRunning
	info.CPUs = sys.NCPU
	info.MemoryBytes = sys.MemTotal
	return info
}

// Endpoint names a Docker host and where its API is.
type Endpoint struct {
	Name, Addr, Docker string
}

// DescribeAll asks every host at once, each within timeout, keeping order.
func DescribeAll(ctx context.Context, hosts []Endpoint, timeout time.Duration) []HostInfo {
	out := make([]HostInfo, len(hosts))
	var g errgroup.Group
	for i, h := range hosts {
		g.Go(func() error {
			hctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			out[i] = Describe(hctx, h.Name, h.Addr, h.Docker)
			return nil
		})
	}
	_ = g.Wait()
	return out
}

// WaitReady polls an engine until it answers or ctx ends.
func WaitReady(ctx context.Context, endpoint string) error {
	c, err := Connect(endpoint)
	if err != nil {
		return err
	}
	defer c.Close()
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := c.Ping(pctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("docker at %s did not answer: %w", endpoint, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
