package lab

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/pki"
	"github.com/clusterctl/clusterctl/server"
	"github.com/clusterctl/clusterctl/transport"
)

// The lab runs a manager on each of the first MaxManagers hosts and an agent
// on every host, started inside the host the way a user starts them on a
// real machine: `clusterctl server ...` and `clusterctl agent ...`.
const (
	MaxManagers = 3
	apiPort     = 7400
	// controlPlaneTimeout bounds waiting for a leader and every agent.
	controlPlaneTimeout = 60 * time.Second
)

// managers is how many managers a lab of n hosts runs.
func managers(n int) int { return min(n, MaxManagers) }

// serverAddrs lists the managers' API addresses.
func (s *State) serverAddrs() []string {
	var addrs []string
	for _, h := range s.Hosts[:s.Managers] {
		addrs = append(addrs, net.JoinHostPort(h.Addr, strconv.Itoa(apiPort)))
	}
	return addrs
}

// isManager says whether a host runs a manager.
func (s *State) isManager(name string) bool {
	for _, h := range s.Hosts[:s.Managers] {
		if h.Name == name {
			return true
		}
	}
	return false
}

// The daemons a lab host runs beside its dockerd, as lab kill and lab
// revive name them.
const (
	daemonServer = "server"
	daemonAgent  = "agent"
)

// startDaemons starts a host's manager (if it is one) and its agent. All
// but the first manager join with a token, which they wait for.
func (lab *Lab) startDaemons(ctx context.Context, cgRoot string, st *State, h HostState) error {
	if st.isManager(h.Name) {
		if _, err := lab.spawnDaemon(ctx, cgRoot, st, h, daemonServer); err != nil {
			return err
		}
	}
	_, err := lab.spawnDaemon(ctx, cgRoot, st, h, daemonAgent)
	return err
}

// spawnDaemon starts one daemon of a host, with the join tokens ready if
// it needs them. The channel reports its exit.
func (lab *Lab) spawnDaemon(ctx context.Context, cgRoot string, st *State, h HostState, daemon string) (<-chan error, error) {
	if !bootstraps(st, h, daemon) {
		if err := lab.ensureTokens(ctx, st); err != nil {
			return nil, err
		}
	}
	return spawn(lab.Layout, cgRoot, h.Name, daemon, lab.daemonArgs(st, h, daemon))
}

// bootstraps says whether a daemon starts the cluster: the first host's
// manager, which makes the cluster's CA and tokens.
func bootstraps(st *State, h HostState, daemon string) bool {
	return daemon == daemonServer && h.Name == st.Hosts[0].Name
}

// credsDir holds the operator's credentials that the first manager made
// (its DATA_DIR/admin), which the lab's CLI uses.
func (l Layout) credsDir() string { return filepath.Join(l.StateDir, "tls") }

// tokenFile holds a role's join token for the lab's daemons.
func (l Layout) tokenFile(role string) string { return filepath.Join(l.StateDir, "tokens", role) }

// ensureTokens makes sure the lab has the operator's credentials and the
// join tokens: it waits for the first manager to make them, then asks it.
func (lab *Lab) ensureTokens(ctx context.Context, st *State) error {
	lab.joining.Lock()
	defer lab.joining.Unlock()
	if fileExists(lab.Layout.tokenFile(pki.RoleManager)) && fileExists(lab.Layout.tokenFile(pki.RoleWorker)) {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, controlPlaneTimeout)
	defer cancel()
	admin := filepath.Join(lab.Layout.hostDataDir(st.Hosts[0].Name), "server", server.AdminDirName)
	for !transport.HaveCreds(admin) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("the first manager made no credentials in %s within %s: see its server.log", admin, controlPlaneTimeout)
		case <-time.After(50 * time.Millisecond):
		}
	}
	if err := copyCreds(admin, lab.Layout.credsDir()); err != nil {
		return err
	}
	c, err := lab.client(st)
	if err != nil {
		return err
	}
	for _, role := range []string{pki.RoleManager, pki.RoleWorker} {
		tok, err := c.Token(ctx, role)
		if err != nil {
			return fmt.Errorf("join token: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(lab.Layout.tokenFile(role)), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(lab.Layout.tokenFile(role), []byte(tok.Token+"\n"), 0o600); err != nil {
			return fmt.Errorf("write the %s token: %w", role, err)
		}
	}
	return nil
}

// copyCreds copies the operator's credentials into the lab's directory.
func copyCreds(from, to string) error {
	var pems [3][]byte
	for i, name := range []string{"ca.pem", "cert.pem", "key.pem"} {
		b, err := os.ReadFile(filepath.Join(from, name))
		if err != nil {
			return fmt.Errorf("operator's credentials: %w", err)
		}
		pems[i] = b
	}
	_, err := transport.SaveCreds(to, pems[0], pems[1], pems[2])
	return err
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// client is a client of the lab's managers, as the operator.
func (lab *Lab) client(st *State) (*api.Client, error) {
	return lab.clientOf(st.serverAddrs())
}

// clientOf is a client of some of the lab's managers, as the operator.
func (lab *Lab) clientOf(servers []string) (*api.Client, error) {
	creds, err := transport.LoadCreds(lab.Layout.credsDir())
	if err != nil {
		return nil, err
	}
	return api.NewClient(servers, creds), nil
}

// daemonArgs is the command line of a host's daemon, the same at every
// start (lab up, start and revive): its identity and data come from the
// lab's state, so a daemon started again finds what it had.
func (lab *Lab) daemonArgs(st *State, h HostState, daemon string) []string {
	servers := strings.Join(st.serverAddrs(), ",")
	if daemon == daemonServer {
		args := []string{"server", "--name", h.Name, "--bind", h.Addr,
			"--data-dir", filepath.Join(lab.Layout.hostDataDir(h.Name), "server"), "--join", servers,
			"--docker-certs", lab.Layout.dockerCertsDir()}
		if bootstraps(st, h, daemon) {
			return append(args, "--bootstrap")
		}
		return append(args, "--token-file", lab.Layout.tokenFile(pki.RoleManager))
	}
	// The agent registers the engine's TCP address: the managers on other
	// hosts create containers through it.
	return []string{"agent", "--name", h.Name, "--addr", h.Addr,
		"--docker", dockerEndpoint(h), "--docker-cert-path", lab.Layout.DockerCertPath(h.Name), "--servers", servers,
		"--data-dir", filepath.Join(lab.Layout.hostDataDir(h.Name), "agent"),
		"--shared-dir", lab.Layout.SharedDir(), "--usage-cgroup", cgroupParent(h.Name),
		"--token-file", lab.Layout.tokenFile(pki.RoleWorker)}
}

// daemonPIDFile records a daemon's pid for lab kill. It is in the host's
// run directory, which goes when the host powers off, as the daemon does.
func (l Layout) daemonPIDFile(host, daemon string) string {
	return filepath.Join(l.hostRunDir(host), daemon+".pid")
}

// spawn starts a daemon inside a host: in its network, mount and UTS
// namespaces (entered through its dockerd) and in its cgroup, so that it
// lives and dies with the host. Its output goes to NAME.log on the host's
// disk and its pid to NAME.pid in the host's run directory. The channel
// reports its exit while this process runs.
func spawn(l Layout, cgRoot, host, name string, args []string) (<-chan error, error) {
	pid, err := dockerdPID(l, host)
	if err != nil {
		return nil, err
	}
	cmd, err := startSelf(filepath.Join(l.hostDataDir(host), name+".log"), 0, hostNamespaces(pid), args)
	if err != nil {
		return nil, fmt.Errorf("start %s on %s: %w", name, host, err)
	}
	// nsenter execs clusterctl in place, so this pid is the daemon's.
	pidText := strconv.Itoa(cmd.Process.Pid)
	if err := os.WriteFile(daemonsCgroupProcs(cgRoot, host), []byte(pidText), 0); err != nil {
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("put %s of %s in the host's cgroup: %w", name, host, err)
	}
	if err := os.WriteFile(l.daemonPIDFile(host, name), []byte(pidText+"\n"), 0o644); err != nil {
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("record the pid of %s on %s: %w", name, host, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }() // reap it if it dies while we still run
	return exited, nil
}

// waitControlPlane waits until the managers have a leader and have all
// registered, and every running host's agent has registered and is up.
func (lab *Lab) waitControlPlane(ctx context.Context, st *State) error {
	ctx, cancel := context.WithTimeout(ctx, controlPlaneTimeout)
	defer cancel()
	want := 0
	for _, h := range st.Hosts {
		if !h.Stopped {
			want++
		}
	}
	c, err := lab.client(st)
	if err != nil {
		return err
	}
	var last string
	for {
		status, err := c.Status(ctx)
		if err == nil && status.Leader != "" && allRegistered(status, st.Managers) {
			up, err := upHosts(ctx, c)
			if err == nil && up >= want {
				lab.say("control plane: leader %s, %d managers, %d hosts up", status.Leader, len(status.Servers), up)
				return nil
			}
			last = fmt.Sprintf("%d of %d hosts up", up, want)
		} else if err != nil {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("control plane not ready within %s (%s): see server.log and agent.log in %s", controlPlaneTimeout, last, filepath.Join(lab.Layout.StateDir, "hosts"))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// allRegistered says whether every manager has recorded its API address,
// so that `clusterctl status` right after `lab up` shows all of them.
func allRegistered(status *api.Status, managers int) bool {
	n := 0
	for _, s := range status.Servers {
		if s.API != "" {
			n++
		}
	}
	return n == managers
}

// upHosts counts the hosts the store has as up.
func upHosts(ctx context.Context, c *api.Client) (int, error) {
	resp, err := c.Hosts(ctx, false)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, h := range resp.Hosts {
		if h.State == "up" {
			n++
		}
	}
	return n, nil
}
