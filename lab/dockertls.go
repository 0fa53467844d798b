package lab

import (
	"fmt"
	"net"
	"path/filepath"
	"time"

	"github.com/clusterctl/clusterctl/pki"
	"github.com/clusterctl/clusterctl/transport"
)

// Every lab host's dockerd requires TLS on its TCP port (--tlsverify), as
// a Docker host exposed on a network should: the managers, the agents and
// the tests reach it with a client certificate. The lab's Docker CA is
// its own, not the cluster's (an operator's Docker hosts have theirs); it
// signs every host's server certificate and one client certificate per
// host, in the DOCKER_CERT_PATH layout the managers read
// (--docker-certs DIR: DIR/HOST/{ca,cert,key}.pem). Its key is never
// written down: a lab's hosts are all made when it is built.

// dockerCertsDir holds the client certificate of each host's Docker.
func (l Layout) dockerCertsDir() string { return filepath.Join(l.StateDir, "docker-certs") }

// DockerCertPath is the client certificate for a host's Docker.
func (l Layout) DockerCertPath(host string) string { return filepath.Join(l.dockerCertsDir(), host) }

// dockerServerTLS holds a host's dockerd certificate and the CA it trusts.
func (l Layout) dockerServerTLS(host string) string {
	return filepath.Join(l.hostDataDir(host), "docker-tls")
}

// makeDockerCerts makes the lab's Docker CA, and for every host its
// dockerd's certificate and a client certificate.
func makeDockerCerts(l Layout, hosts []HostState) error {
	ca, err := pki.NewCA("lab-docker", time.Now())
	if err != nil {
		return err
	}
	ca.LeafTTL = pki.CAValidity // a lab lives as long as it is not torn down
	for _, h := range hosts {
		ip := net.ParseIP(h.Addr)
		if _, err := transport.IssueTo(ca, l.dockerServerTLS(h.Name), "dockerd-"+h.Name, pki.RoleWorker, []net.IP{ip}); err != nil {
			return fmt.Errorf("docker certificate of %s: %w", h.Name, err)
		}
		if _, err := transport.IssueTo(ca, l.DockerCertPath(h.Name), "client-"+h.Name, pki.RoleWorker, nil); err != nil {
			return fmt.Errorf("docker client certificate of %s: %w", h.Name, err)
		}
	}
	return nil
}

// dockerTLSArgs are a host's dockerd flags for TLS on its TCP port.
func dockerTLSArgs(l Layout, host string) []string {
	dir := l.dockerServerTLS(host)
	return []string{"--tlsverify",
		"--tlscacert", filepath.Join(dir, "ca.pem"),
		"--tlscert", filepath.Join(dir, "cert.pem"),
		"--tlskey", filepath.Join(dir, "key.pem")}
}
