package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/clusterctl/clusterctl/engine"
)

// Stop powers a host off: every process of it dies at once (dockerd, its
// containers, and whatever else runs there), its /run is cleared and its
// network namespace and cable are removed, so peers see it vanish rather
// than refuse. Its disk (Docker data root) stays for Start.
func (lab *Lab) Stop(ctx context.Context, name string) error {
	st, h, err := lab.hostForChange(name)
	if err != nil {
		return err
	}
	if h.Stopped {
		lab.say("%s is already stopped", name)
		return nil
	}
	if err := powerOff(ctx, lab.Layout, name); err != nil {
		return err
	}
	h.Stopped = true
	if err := st.save(lab.Layout); err != nil {
		return err
	}
	lab.say("%s: stopped", name)
	return nil
}

// powerOff kills a host's processes and removes its runtime state.
func powerOff(ctx context.Context, l Layout, name string) error {
	ctx, cancel := context.WithTimeout(ctx, clearTimeout)
	defer cancel()
	if root := findCgroup2Mount(); root != "" {
		if err := killCgroup(ctx, hostCgroup(root, name)); err != nil {
			return fmt.Errorf("power off %s: %w", name, err)
		}
	}
	if err := removeLabCgroups(name); err != nil {
		return fmt.Errorf("power off %s: %w", name, err)
	}
	if err := unplugHost(name); err != nil {
		return fmt.Errorf("power off %s: %w", name, err)
	}
	if err := os.RemoveAll(l.hostRunDir(name)); err != nil {
		return fmt.Errorf("power off %s: %w", name, err)
	}
	return nil
}

// Start boots a stopped (or crashed) host again with its address, MAC and
// data. A host that is already up is left alone.
func (lab *Lab) Start(ctx context.Context, name string) error {
	st, h, err := lab.hostForChange(name)
	if err != nil {
		return err
	}
	if _, err := dockerdPID(lab.Layout, name); err == nil && !h.Stopped {
		lab.say("%s is already up", name)
		return nil
	}
	// Whatever a crash left (processes, network) goes first.
	if err := powerOff(ctx, lab.Layout, name); err != nil {
		return err
	}
	cgRoot, err := cgroup2Root(lab.Layout.RunDir)
	if err != nil {
		return err
	}
	h.Stopped = false
	if err := lab.bootHost(ctx, cgRoot, st, *h, nil); err != nil {
		return err
	}
	return st.save(lab.Layout)
}

// Partition cuts a host off the lab network; Heal plugs it back in. The
// host keeps running and does not notice, as in a real network partition.
func (lab *Lab) Partition(name string) error { return lab.setCut(name, true) }

// Heal undoes Partition.
func (lab *Lab) Heal(name string) error { return lab.setCut(name, false) }

func (lab *Lab) setCut(name string, cut bool) error {
	_, h, err := lab.hostForChange(name)
	if err != nil {
		return err
	}
	if h.Stopped {
		return fmt.Errorf("%s is stopped: run 'clusterctl lab start %s' first", name, name)
	}
	if err := setPartitioned(name, cut); err != nil {
		return err
	}
	lab.say("%s: %s", name, map[bool]string{true: "partitioned", false: "healed"}[cut])
	return nil
}

// hostForChange loads the state and finds a host, after checking privileges.
func (lab *Lab) hostForChange(name string) (*State, *HostState, error) {
	if err := checkPrivileges(); err != nil {
		return nil, nil, err
	}
	st, err := loadState(lab.Layout)
	if err != nil {
		return nil, nil, err
	}
	h, err := st.host(name)
	return st, h, err
}

// Status is the lab as `lab status` shows it.
type Status struct {
	Subnet  string       `json:"subnet"`
	Gateway string       `json:"gateway"`
	Bridge  string       `json:"bridge"`
	Hosts   []HostStatus `json:"hosts"`
}

// HostStatus is one host's state: up, stopped, partitioned, or down (it
// should run but its dockerd does not answer).
type HostStatus struct {
	Name   string `json:"name"`
	Addr   string `json:"addr"`
	Docker string `json:"docker"`
	// DockerCertPath is the client certificate its Docker requires.
	DockerCertPath string `json:"docker_cert_path"`
	DockerSocket   string `json:"docker_socket"`
	State          string `json:"state"`
	Manager        bool   `json:"manager"` // runs a manager (clusterctl server)
	PID            int    `json:"pid,omitempty"`
	DataDir        string `json:"data_dir"`
	PluginDir      string `json:"plugin_dir"`
	Log            string `json:"log"`
}

// Status reports every host's state.
func (lab *Lab) Status(ctx context.Context) (*Status, error) {
	st, err := loadState(lab.Layout)
	if err != nil {
		return nil, err
	}
	out := &Status{Subnet: st.Subnet, Gateway: st.Gateway, Bridge: bridgeName}
	for _, h := range st.Hosts {
		hs := lab.hostStatus(ctx, h)
		hs.Manager = st.isManager(h.Name)
		out.Hosts = append(out.Hosts, hs)
	}
	return out, nil
}

func (lab *Lab) hostStatus(ctx context.Context, h HostState) HostStatus {
	hs := HostStatus{
		Name: h.Name, Addr: h.Addr, Docker: dockerEndpoint(h), DockerCertPath: lab.Layout.DockerCertPath(h.Name),
		DockerSocket: lab.Layout.DockerSocket(h.Name), DataDir: lab.Layout.hostDataDir(h.Name),
		PluginDir: lab.Layout.PluginDir(h.Name), Log: lab.Layout.dockerdLog(h.Name),
	}
	switch {
	case h.Stopped:
		hs.State = "stopped"
		return hs
	case !lab.answers(ctx, h.Name):
		hs.State = "down"
	case isPartitioned(h.Name):
		hs.State = "partitioned"
	default:
		hs.State = "up"
	}
	hs.PID, _ = dockerdPID(lab.Layout, h.Name)
	return hs
}

// answers says whether a host's dockerd answers on its unix socket.
func (lab *Lab) answers(ctx context.Context, host string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return engine.WaitReady(ctx, "unix://"+lab.Layout.DockerSocket(host)) == nil
}

// ExitError carries the exit code of a command run with Exec.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return "exit status " + strconv.Itoa(e.Code) }

// Exec runs a command inside a host's network, mount and UTS namespaces,
// with the caller's standard streams.
func (lab *Lab) Exec(name string, argv []string) error {
	if len(argv) == 0 {
		return errors.New("lab exec needs a command: clusterctl lab exec HOST -- CMD [ARGS...]")
	}
	_, h, err := lab.hostForChange(name)
	if err != nil {
		return err
	}
	if h.Stopped {
		return fmt.Errorf("%s is stopped: run 'clusterctl lab start %s' first", name, name)
	}
	pid, err := dockerdPID(lab.Layout, name)
	if err != nil {
		return err
	}
	args := append(append(hostNamespaces(pid), "--"), argv...)
	cmd := exec.Command("nsenter", args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// The command dies with this process (nsenter execs it in place, and
	// the parent-death signal survives the exec): killing `lab exec`
	// must not leave it running in the host, or past the lab.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return &ExitError{Code: exit.ExitCode()}
		}
		return fmt.Errorf("exec on %s: %w", name, err)
	}
	return nil
}
