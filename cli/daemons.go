package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/clusterctl/clusterctl/agent"
	"github.com/clusterctl/clusterctl/agentapi"
	"github.com/clusterctl/clusterctl/server"
	"github.com/spf13/cobra"
)

func newServerCmd() *cobra.Command {
	cfg := server.Config{}
	var tokenFile string
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run a manager: a Raft node with the cluster's state and the API",
		Long: `Run a manager. Three (or five) managers hold the cluster's state, replicated
with Raft; the CLI and the agents talk to their API, all over mutual TLS.

The first manager starts the cluster with --bootstrap: it makes the cluster's
certificate authority, the join tokens, and an operator's credentials in
DATA_DIR/admin. The others join it with --join and the manager token
(clusterctl token show manager). A manager restarted with its data dir
rejoins by itself, without a token.`,
		Example: `  clusterctl server --name m1 --bind 10.0.0.1 --bootstrap
  clusterctl server --name m2 --bind 10.0.0.2 --join 10.0.0.1:7400 --token-file /root/manager.token`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if cfg.Token, err = readToken(cfg.Token, tokenFile); err != nil {
				return err
			}
			cfg.Log = daemonLogger()
			srv, err := server.Start(cfg)
			if err != nil {
				return err
			}
			return srv.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Name, "name", hostname(), "manager name, unique in the cluster")
	f.StringVar(&cfg.DataDir, "data-dir", "/var/lib/clusterctl/server", "where Raft's log and snapshots live")
	f.StringVar(&cfg.Bind, "bind", defaultAddr(), "IP address to listen and advertise on")
	f.IntVar(&cfg.APIPort, "api-port", server.DefaultAPIPort, "API port")
	f.IntVar(&cfg.RaftPort, "raft-port", server.DefaultRaftPort, "Raft port")
	f.BoolVar(&cfg.Bootstrap, "bootstrap", false, "start a new cluster of this manager, with its certificate authority")
	f.StringSliceVar(&cfg.Join, "join", nil, "API addresses (host:port) of the other managers")
	f.StringVar(&cfg.Token, "token", "", "manager join token, for a manager that has not joined yet")
	f.StringVar(&tokenFile, "token-file", "", "file holding the manager join token (keeps it out of ps)")
	f.DurationVar(&cfg.CertTTL, "cert-ttl", 0, "lifetime of the certificates a bootstrapped cluster issues (default 90 days)")
	_ = f.MarkHidden("cert-ttl")
	f.StringVar(&cfg.ClusterID, "cluster-id", "", "refuse to be part of any other cluster")
	f.StringVar(&cfg.DockerCerts, "docker-certs", "", "client certificates for hosts whose Docker requires TLS: DIR/HOST/{ca,cert,key}.pem, or DIR/{ca,cert,key}.pem for all")
	return cmd
}

func newAgentCmd(g *globals) *cobra.Command {
	cfg := agent.Config{}
	var tokenFile string
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run a host's agent: registers the host, heartbeats, reports its containers",
		Example: `  clusterctl agent --name host1 --addr 10.0.0.1 --servers 10.0.0.1:7400,10.0.0.2:7400 \
    --label zone=a --docker unix:///var/run/docker.sock`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			servers, err := g.servers()
			if err != nil {
				return err
			}
			if cfg.Token, err = readToken(cfg.Token, tokenFile); err != nil {
				return err
			}
			cfg.Servers, cfg.Log = servers, daemonLogger()
			a, err := agent.New(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			return a.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Name, "name", hostname(), "host name, unique in the cluster")
	f.StringVar(&cfg.Addr, "addr", defaultAddr(), "the host's address on the cluster network")
	f.StringVar(&cfg.Docker, "docker", "unix:///var/run/docker.sock", "the host's Docker endpoint")
	f.StringVar(&cfg.DockerCertPath, "docker-cert-path", os.Getenv("DOCKER_CERT_PATH"), "client certificate for a Docker that requires TLS ({ca,cert,key}.pem)")
	f.StringToStringVar(&cfg.Labels, "label", nil, "placement label key=value (repeatable)")
	f.StringVar(&cfg.DataDir, "data-dir", "/var/lib/clusterctl/agent", "the agent's state and copy volumes' data")
	f.StringVar(&cfg.UsageCgroup, "usage-cgroup", "", "cgroup (v2, below /sys/fs/cgroup) whose CPU and memory use is the host's (default: the whole machine)")
	f.StringVar(&cfg.SharedDir, "shared-dir", "/var/lib/clusterctl/shared", "block volumes' images: storage every host reaches")
	f.StringVar(&cfg.PluginDir, "plugin-dir", "/run/docker/plugins", "where dockerd finds plugin sockets")
	f.IntVar(&cfg.DataPort, "data-port", agentapi.DefaultPort, "the agent's API port: volume operations and data")
	f.StringVar(&cfg.Token, "token", "", "worker join token, for an agent that has not joined yet")
	f.StringVar(&tokenFile, "token-file", "", "file holding the worker join token (keeps it out of ps)")
	return cmd
}

// readToken is the join token from --token or --token-file (not both).
func readToken(token, file string) (string, error) {
	if file == "" {
		return token, nil
	}
	if token != "" {
		return "", errors.New("--token and --token-file: pass one")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// daemonLogger logs to stderr, for daemons run by a supervisor.
func daemonLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}

// defaultAddr is the first IPv4 address of an interface that is up and not
// loopback: on a typical server, its LAN address.
func defaultAddr() string {
	ifaces, _ := net.Interfaces()
	for _, iface := range ifaces {
		if iface.Flags&net.FlagUp == 0 || iface.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := iface.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
				return ipn.IP.String()
			}
		}
	}
	return ""
}

// errNoServers says where managers come from.
var errNoServers = errors.New("no managers: pass --servers host:port,... or use a context file with servers (clusterctl lab up writes one)")

// servers is the managers' API addresses: the flag, else the context file.
func (g *globals) servers() ([]string, error) {
	if len(g.serversFlag) > 0 {
		return g.serversFlag, nil
	}
	c, err := loadContext(g)
	if err != nil {
		return nil, fmt.Errorf("%w (%v)", errNoServers, err)
	}
	if len(c.Servers) == 0 {
		return nil, errNoServers
	}
	return c.Servers, nil
}
