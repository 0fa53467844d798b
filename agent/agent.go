// Package agent is the per-host daemon: it registers its host with the
// managers, heartbeats, and reports the host's containers. It keeps no truth
// of its own: everything it knows it reads again from Docker on every beat.
// Later issues add the Docker plugins it serves.
package agent

import (
	"sync"

	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/clusterctl/clusterctl/agent/volume"
	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/engine"
	"github.com/clusterctl/clusterctl/enroll"
	"github.com/clusterctl/clusterctl/migrate/live"
	"github.com/clusterctl/clusterctl/pki"
	"github.com/clusterctl/clusterctl/store"
	"github.com/clusterctl/clusterctl/transport"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
)

// HeartbeatInterval is how often an agent says its host is alive; the
// managers mark a host down after three missed beats.
const HeartbeatInterval = time.Second

// Config is how an agent is started.
type Config struct {
	Name    string            // host name, unique in the cluster
	Addr    string            // the host's address other hosts reach it at
	Docker  string            // the host's Docker endpoint
	Labels  map[string]string // placement labels (node.labels.KEY)
	Servers []string          // managers' API addresses
	Log     *slog.Logger
	// DataDir keeps the agent's local state and copy volumes' data.
	DataDir string
	// SharedDir holds block volumes' images: storage every host reaches.
	SharedDir string
	// PluginDir is where dockerd looks for plugin sockets.
	PluginDir string
	// DataPort serves the agent's API: volume operations and data.
	DataPort int
	// UsageCgroup is the cgroup (v2, below /sys/fs/cgroup) whose CPU and
	// memory use is the host's; "" measures the whole machine.
	UsageCgroup string
	// DockerCertPath holds the client certificate for a Docker that
	// requires TLS (ca.pem, cert.pem, key.pem); "" talks plain.
	DockerCertPath string
	// Token is the worker join token, needed only by an agent that has no
	// credentials in DataDir/tls yet.
	Token string
}

// credsDir is where an agent keeps its certificate and key.
func (c Config) credsDir() string { return filepath.Join(c.DataDir, "tls") }

// Validate refuses a config that cannot work.
func (c Config) Validate() error {
	if c.Name == "" {
		return errors.New("--name is required: the host's name in the cluster")
	}
	if net.ParseIP(c.Addr) == nil {
		return fmt.Errorf("--addr %q is not an IP address", c.Addr)
	}
	if c.DataPort < 1 || c.DataPort > 65535 {
		return fmt.Errorf("--data-port %d is not a port", c.DataPort)
	}
	if !filepath.IsAbs(c.DataDir) || !filepath.IsAbs(c.SharedDir) || !filepath.IsAbs(c.PluginDir) {
		return fmt.Errorf("--data-dir, --shared-dir and --plugin-dir must be absolute paths")
	}
	if len(c.Servers) == 0 {
		return errors.New("no managers: pass --servers host:port,... or a context file with servers")
	}
	return nil
}

// Agent is a running agent.
type Agent struct {
	cfg     Config
	creds   *transport.Creds
	docker  *client.Client
	api     *api.Client
	volumes *volume.Driver
	// live is why this host cannot checkpoint containers, probed once
	// (criu check takes a moment) and told at every registration.
	liveOnce sync.Once
	live     string
	usage    usageSampler
}

// liveRefusal probes the host's checkpoint support once.
func (a *Agent) liveRefusal(ctx context.Context, experimental bool) string {
	a.liveOnce.Do(func() { a.live = live.Probe(ctx, experimental) })
	return a.live
}

// New gets the agent its credentials (joining with the token if it has
// none) and connects to the host's Docker engine.
func New(ctx context.Context, cfg Config) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	creds, _, err := enroll.Ensure(ctx, enroll.Node{Dir: cfg.credsDir(), Name: cfg.Name, Addrs: []net.IP{net.ParseIP(cfg.Addr)}, Servers: cfg.Servers, Token: cfg.Token, Role: pki.RoleWorker})
	if err != nil {
		return nil, err
	}
	if id := creds.Identity(); id.Role != pki.RoleWorker || id.Name != cfg.Name {
		return nil, fmt.Errorf("the certificate in %s is %s %q's, not host %q's", cfg.credsDir(), id.Role, id.Name, cfg.Name)
	}
	d, err := engine.ConnectTLS(cfg.Docker, cfg.DockerCertPath)
	if err != nil {
		return nil, err
	}
	return &Agent{cfg: cfg, creds: creds, docker: d, api: api.NewClient(cfg.Servers, creds), usage: newUsageSampler(cfg.UsageCgroup)}, nil
}

// Run registers the host and heartbeats until ctx ends. Unreachable
// managers or Docker are retried, never fatal: an agent outlives both.
func (a *Agent) Run(ctx context.Context) error {
	defer a.docker.Close()
	go enroll.KeepRenewed(ctx, a.creds, enroll.Renewer(a.creds, a.api), a.cfg.Log)
	stop, err := a.startVolumes(ctx)
	if err != nil {
		return err
	}
	defer stop()
	stopIPAM, err := a.startIPAM()
	if err != nil {
		return err
	}
	defer stopIPAM()
	stopNetworks, err := a.startNetworks(ctx)
	if err != nil {
		return err
	}
	defer stopNetworks()
	registered := false
	tick := time.NewTicker(HeartbeatInterval)
	defer tick.Stop()
	changed := make(chan struct{}, 1)
	go a.watchContainers(ctx, changed)
	for {
		if !registered {
			registered = a.register(ctx)
		}
		if registered {
			registered = a.beat(ctx)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-changed:
			// A container started, died or changed health: report it now,
			// so a dependency waiting for it does not wait for the tick.
		}
	}
}

// relookAfter is when a container event is reported a second time.
const relookAfter = 50 * time.Millisecond

// watchContainers signals changed whenever Docker reports a container
// event, reconnecting when the stream breaks. Bursts collapse into one
// signal: the next beat lists every container anyway.
func (a *Agent) watchContainers(ctx context.Context, changed chan<- struct{}) {
	// Not exec events: every healthcheck probe is one.
	f := filters.NewArgs(filters.Arg("type", "container"))
	// "stop" comes once a stopped container's state says so (a "die" may
	// come before the listing shows it exited): a move waits for that.
	for _, ev := range []string{"create", "start", "die", "stop", "destroy", "health_status"} {
		f.Add("event", ev)
	}
	opts := events.ListOptions{Filters: f}
	for ctx.Err() == nil {
		msgs, errs := a.docker.Events(ctx, opts)
	stream:
		for {
			select {
			case <-ctx.Done():
				return
			case <-msgs:
				notify(changed)
				// A container that died by itself has no "stop" event,
				// and its listing may lag the "die": look again shortly.
				time.AfterFunc(relookAfter, func() { notify(changed) })
			case <-errs:
				break stream
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(HeartbeatInterval):
		}
	}
}

// register tells the managers about the host, with its size from Docker.
func (a *Agent) register(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := a.docker.Info(ctx)
	if err != nil {
		a.cfg.Log.Warn("docker not answering", "docker", a.cfg.Docker, "err", err)
		return false
	}
	req := api.RegisterHost{
		Name: a.cfg.Name, Addr: a.cfg.Addr, Docker: a.cfg.Docker, DockerVersion: info.ServerVersion,
		Labels: a.cfg.Labels, CPUs: info.NCPU, MemoryBytes: info.MemTotal, AgentAPI: a.dataURL(),
		LiveRefusal: a.liveRefusal(ctx, info.ExperimentalBuild),
	}
	if err := a.api.RegisterHost(ctx, req); err != nil {
		a.cfg.Log.Warn("register host", "err", err)
		return false
	}
	a.cfg.Log.Info("host registered", "name", a.cfg.Name, "addr", a.cfg.Addr, "docker", info.ServerVersion)
	return true
}

// beat sends one heartbeat with the host's containers. It reports false
// when the managers no longer know the host, so that it registers again.
func (a *Agent) beat(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	containers, err := a.containers(ctx)
	if err != nil {
		a.cfg.Log.Warn("list containers", "err", err)
		return true // still registered; try again next beat
	}
	err = a.api.Heartbeat(ctx, a.cfg.Name, api.Heartbeat{Containers: containers, Usage: a.usage.sample(time.Now())})
	if api.IsNotFound(err) {
		return false
	}
	if err != nil {
		a.cfg.Log.Warn("heartbeat", "err", err)
	}
	return true
}

// containers lists the host's containers as the store records them.
func (a *Agent) containers(ctx context.Context) ([]store.Container, error) {
	list, err := a.docker.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil {
		return nil, err
	}
	out := make([]store.Container, 0, len(list))
	for _, c := range list {
		name := ""
		if len(c.Names) > 0 {
			name = strings.TrimPrefix(c.Names[0], "/")
		}
		out = append(out, store.Container{ID: c.ID, Name: name, Image: c.Image, State: c.State, Labels: c.Labels,
			Health: healthOf(c.Status), ExitCode: exitCodeOf(c.Status), Volumes: clusterVolumes(c.Mounts)})
	}
	return out, nil
}

// clusterVolumes names the cluster volumes among a container's mounts.
func clusterVolumes(mounts []container.MountPoint) []string {
	var out []string
	for _, m := range mounts {
		if m.Driver == volume.DriverName {
			out = append(out, m.Name)
		}
	}
	return out
}

// exitedStatus matches Docker's status line of a stopped container,
// "Exited (137) 5 seconds ago".
var exitedStatus = regexp.MustCompile(`^Exited \((-?\d+)\)`)

// exitCodeOf reads the exit code from a container's status line; 0 when
// it has not exited. The list call has it; inspecting each container on
// every beat would cost a request per container.
func exitCodeOf(status string) int {
	m := exitedStatus.FindStringSubmatch(status)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// healthOf reads the health from a container's status line ("Up 5
// seconds (healthy)"): healthy, unhealthy, starting, or "" without a
// healthcheck.
func healthOf(status string) string {
	switch {
	case strings.HasSuffix(status, "(healthy)"):
		return "healthy"
	case strings.HasSuffix(status, "(unhealthy)"):
		return "unhealthy"
	case strings.HasSuffix(status, "(health: starting)"):
		return "starting"
	}
	return ""
}
