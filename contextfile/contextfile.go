// Package contextfile reads and writes the file that tells clusterctl
// commands where the cluster is, like a kubeconfig or a Docker context. The
// lab writes one; `--context` or CLUSTERCTL_CONTEXT points elsewhere.
package contextfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/transport"

	"github.com/google/renameio/v2"
)

// EnvVar names the environment variable that overrides the default path.
const EnvVar = "CLUSTERCTL_CONTEXT"

// Context is a cluster as the CLI finds it.
type Context struct {
	// Name says what wrote it ("lab" for the lab), so `lab down` removes
	// only its own file.
	Name  string `json:"name"`
	Hosts []Host `json:"hosts"`
	// Servers are the managers' API addresses (host:port).
	Servers []string `json:"servers,omitempty"`
	// TLS is the directory of the operator's credentials (ca.pem,
	// cert.pem, key.pem). In the file it may be relative to the file;
	// Load makes it absolute.
	TLS string `json:"tls,omitempty"`
}

// Creds loads the operator's credentials the context names.
func (c *Context) Creds() (*transport.Creds, error) {
	if c.TLS == "" {
		return nil, errors.New("the cluster context has no credentials: clusterctl login --servers HOST:PORT --token MANAGER-TOKEN")
	}
	return transport.LoadCreds(c.TLS)
}

// Client is a client of the context's managers, as its operator.
func (c *Context) Client() (*api.Client, error) {
	creds, err := c.Creds()
	if err != nil {
		return nil, err
	}
	return api.NewClient(c.Servers, creds), nil
}

// CredsDirFor is where `clusterctl login` keeps the credentials of the
// context at path: beside it, named after it.
func CredsDirFor(path string) string {
	return strings.TrimSuffix(path, filepath.Ext(path)) + "-tls"
}

// Host is a Docker host of the cluster.
type Host struct {
	Name   string `json:"name"`
	Addr   string `json:"addr"`
	Docker string `json:"docker"` // Docker API endpoint, e.g. tcp://10.99.0.11:2376
	// DockerCertPath is the client certificate a Docker that requires TLS
	// takes (ca.pem, cert.pem, key.pem).
	DockerCertPath string `json:"docker_cert_path,omitempty"`
}

// Path resolves which context file to use: the flag if given, then the
// environment, then the per-user default.
func Path(flag string) string {
	if flag != "" {
		return flag
	}
	if env := os.Getenv(EnvVar); env != "" {
		return env
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "clusterctl", "context.json")
}

// Load reads a context file, with an error that says how to get one.
func Load(path string) (*Context, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no cluster context at %s: run 'clusterctl lab up', or pass --context", path)
	}
	if err != nil {
		return nil, fmt.Errorf("read context: %w", err)
	}
	var c Context
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("read context %s: %w", path, err)
	}
	if c.TLS != "" && !filepath.IsAbs(c.TLS) {
		c.TLS = filepath.Join(filepath.Dir(path), c.TLS)
	}
	return &c, nil
}

// Save writes a context file atomically, creating its directory.
func Save(path string, c *Context) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("encode context: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write context: %w", err)
	}
	if err := renameio.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write context: %w", err)
	}
	return nil
}

// RemoveIfOwned deletes the file at path if the named writer made it, so
// tearing down a lab never deletes a context the user pointed at a real
// cluster.
func RemoveIfOwned(path, owner string) error {
	c, err := Load(path)
	if err != nil || c.Name != owner {
		return nil
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("remove context %s: %w", path, err)
	}
	return nil
}
