// Package server is a manager: a Raft node holding the cluster's store, and
// the HTTP/JSON API that the CLI, the agents and the other managers use.
package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/clusterctl/clusterctl/pki"
	"github.com/google/renameio/v2"
)

// Default ports of a manager.
const (
	DefaultAPIPort  = 7400
	DefaultRaftPort = 7401
)

// Timeouts tuned for a LAN (round trips well under 1 ms): a follower that
// hears nothing from its leader for 500 ms starts an election, so a dead
// leader is replaced in about a second, while a leader is not deposed by an
// ordinary scheduling hiccup. See docs/ARCHITECTURE.md.
const (
	raftHeartbeatTimeout = 500 * time.Millisecond
	raftElectionTimeout  = 500 * time.Millisecond
	raftLeaderLease      = 250 * time.Millisecond
	raftCommitTimeout    = 5 * time.Millisecond
	applyTimeout         = 5 * time.Second
)

// Config is how a manager is started.
type Config struct {
	Name     string // unique among managers; the Raft server ID
	DataDir  string
	Bind     string // IP address to listen and advertise on
	APIPort  int
	RaftPort int
	// Bootstrap starts a new cluster of this one manager, with its
	// certificate authority and join tokens; the others join it.
	Bootstrap bool
	Join      []string // API addresses (host:port) of other managers
	// Token is the manager join token, needed by a manager that has no
	// credentials yet and joins.
	Token string
	// ClusterID, if set, is the only cluster this manager will be part of.
	ClusterID string
	// DockerCerts holds the client certificates for hosts whose Docker
	// requires TLS: DockerCerts/HOST/{ca,cert,key}.pem, or one set for
	// every host in DockerCerts itself.
	DockerCerts string
	// CertTTL is how long the certificates of a bootstrapped cluster last
	// (pki.LeafValidity when zero). Tests shorten it to see renewals.
	CertTTL time.Duration
	Log     *slog.Logger
}

// APIAddr is where this manager serves its API.
func (c Config) APIAddr() string { return net.JoinHostPort(c.Bind, strconv.Itoa(c.APIPort)) }

// RaftAddr is where this manager serves Raft.
func (c Config) RaftAddr() string { return net.JoinHostPort(c.Bind, strconv.Itoa(c.RaftPort)) }

// validName is a manager name: it goes into Raft's configuration, URLs and
// file names.
var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// Validate refuses a config that cannot work, before anything is opened.
func (c Config) Validate() error {
	if !validName.MatchString(c.Name) {
		return fmt.Errorf("--name %q: use 1-63 letters, digits, '.', '_' or '-'", c.Name)
	}
	if c.DataDir == "" {
		return errors.New("--data-dir is required")
	}
	if net.ParseIP(c.Bind) == nil {
		return fmt.Errorf("--bind %q is not an IP address", c.Bind)
	}
	if !c.Bootstrap && len(c.Join) == 0 {
		return errors.New("--join is required (the API addresses of the other managers, host:port,...), or --bootstrap to start a new cluster")
	}
	if c.CertTTL < 0 || (c.CertTTL > 0 && c.CertTTL < 3*time.Second) {
		return fmt.Errorf("--cert-ttl %s: use at least 3s", c.CertTTL)
	}
	return nil
}

// identity is what a data dir remembers of the manager that owns it, so
// that a manager is never started on another's data, or in another cluster.
type identity struct {
	Name      string `json:"name"`
	ClusterID string `json:"cluster_id,omitempty"`
}

func identityPath(dataDir string) string { return filepath.Join(dataDir, "server.json") }

// loadIdentity reads the data dir's identity; a new data dir has none.
func loadIdentity(dataDir string) (identity, error) {
	b, err := os.ReadFile(identityPath(dataDir))
	if errors.Is(err, fs.ErrNotExist) {
		return identity{}, nil
	}
	if err != nil {
		return identity{}, fmt.Errorf("read identity: %w", err)
	}
	var id identity
	if err := json.Unmarshal(b, &id); err != nil {
		return identity{}, fmt.Errorf("read identity %s: %w", identityPath(dataDir), err)
	}
	return id, nil
}

func saveIdentity(dataDir string, id identity) error {
	b, err := json.Marshal(id)
	if err != nil {
		return err
	}
	if err := renameio.WriteFile(identityPath(dataDir), b, 0o600); err != nil {
		return fmt.Errorf("write identity: %w", err)
	}
	return nil
}

// checkCreds refuses credentials that are not this manager's, in the
// cluster its data dir and flags say.
func checkCreds(c Config, id identity, creds pki.Identity) error {
	if creds.Name != c.Name {
		return fmt.Errorf("the certificate in %s names %q, not %q", c.DataDir, creds.Name, c.Name)
	}
	if id.ClusterID != "" && id.ClusterID != creds.Cluster {
		return fmt.Errorf("data dir %s belongs to cluster %s but its certificate to %s", c.DataDir, id.ClusterID, creds.Cluster)
	}
	if c.ClusterID != "" && c.ClusterID != creds.Cluster {
		return fmt.Errorf("the managers at %v are cluster %s, not %s (--cluster-id): refusing to join", c.Join, creds.Cluster, c.ClusterID)
	}
	return nil
}

// checkIdentity refuses a data dir that belongs to another manager or
// another cluster than the one asked for.
func checkIdentity(c Config, id identity) error {
	if id.Name != "" && id.Name != c.Name {
		return fmt.Errorf("data dir %s belongs to manager %q, not %q: use its own data dir", c.DataDir, id.Name, c.Name)
	}
	if c.ClusterID != "" && id.ClusterID != "" && c.ClusterID != id.ClusterID {
		return fmt.Errorf("data dir %s belongs to cluster %s, not %s: use a new data dir to join that cluster", c.DataDir, id.ClusterID, c.ClusterID)
	}
	return nil
}
