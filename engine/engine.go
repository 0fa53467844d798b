// Package engine talks to Docker hosts through the Docker Engine API. It is
// the one place that builds a Docker client, so every caller negotiates the
// API version: the hosts may run older engines (Debian's 20.10 speaks 1.41).
package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/docker/docker/client"
	"golang.org/x/sync/errgroup"
)

// Connect returns a client for a Docker endpoint such as
// "unix:///run/docker.sock" or "tcp://10.99.0.11:2375".
func Connect(endpoint string) (*client.Client, error) { return ConnectTLS(endpoint, "") }

// ConnectTLS returns a client for a Docker endpoint that talks TLS with
// the client certificate in certDir, when certDir holds one: Docker's
// DOCKER_CERT_PATH layout (ca.pem, cert.pem, key.pem), for a host whose
// dockerd runs with --tlsverify. Without, it talks plain, as Connect.
func ConnectTLS(endpoint, certDir string) (*client.Client, error) {
	opts := []client.Opt{client.WithHost(endpoint), client.WithAPIVersionNegotiation()}
	if HasCerts(certDir) {
		opts = append(opts, client.WithTLSClientConfig(filepath.Join(certDir, "ca.pem"), filepath.Join(certDir, "cert.pem"), filepath.Join(certDir, "key.pem")))
	}
	c, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker client for %s: %w", endpoint, err)
	}
	return c, nil
}

// HasCerts says whether dir holds a Docker client certificate.
func HasCerts(dir string) bool {
	if dir == "" {
		return false
	}
	_, err := os.Stat(filepath.Join(dir, "cert.pem"))
	return err == nil
}

// CertDirOf is where a manager finds the client certificate for a host's
// Docker: root/HOST when it exists (each host its own CA), else root
// itself (one certificate for every host), else none.
func CertDirOf(root, host string) string {
	if root == "" {
		return ""
	}
	if dir := filepath.Join(root, host); HasCerts(dir) {
		return dir
	}
	return root
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
func Describe(ctx context.Context, h Endpoint) HostInfo {
	info := HostInfo{Name: h.Name, Addr: h.Addr, Docker: h.Docker, State: "unreachable"}
	c, err := ConnectTLS(h.Docker, h.CertDir)
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
	CertDir            string // its client certificate, for TLS ("" for none)
}

// DescribeAll asks every host at once, each within timeout, keeping order.
func DescribeAll(ctx context.Context, hosts []Endpoint, timeout time.Duration) []HostInfo {
	out := make([]HostInfo, len(hosts))
	var g errgroup.Group
	for i, h := range hosts {
		g.Go(func() error {
			hctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			out[i] = Describe(hctx, h)
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
