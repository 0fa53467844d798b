package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/clusterctl/clusterctl/store"
	"golang.org/x/sys/unix"
)

// killTimeout bounds waiting for a killed daemon to be gone.
const killTimeout = 10 * time.Second

// Kill crashes one daemon of a running host (SIGKILL, no chance to clean
// up) while the host, its dockerd and its containers keep running: what a
// crashed agent or manager leaves behind is what the tests want to see
// survived. A daemon that is not running is left alone.
func (lab *Lab) Kill(ctx context.Context, host, daemon string) error {
	if _, _, err := lab.hostForDaemon(host, daemon); err != nil {
		return err
	}
	pid, err := daemonPID(lab.Layout, host, daemon)
	if err != nil {
		lab.say("%s: %s is not running", host, daemon)
		return nil
	}
	if err := unix.Kill(pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("kill %s on %s (pid %d): %w", daemon, host, pid, err)
	}
	if err := waitGone(ctx, pid, killTimeout); err != nil {
		return fmt.Errorf("kill %s on %s: %w", daemon, host, err)
	}
	_ = os.Remove(lab.Layout.daemonPIDFile(host, daemon))
	lab.say("%s: %s killed (pid %d)", host, daemon, pid)
	return nil
}

// Revive starts a killed daemon of a running host again, with the same
// arguments and data, in the host's namespaces and cgroup, as lab up and
// lab start do, and waits until it is back: an agent until it has
// registered again, a manager until it answers and knows the leader. A
// daemon that runs is left alone.
func (lab *Lab) Revive(ctx context.Context, host, daemon string) error {
	st, h, err := lab.hostForDaemon(host, daemon)
	if err != nil {
		return err
	}
	if pid, err := daemonPID(lab.Layout, host, daemon); err == nil {
		lab.say("%s: %s is already running (pid %d)", host, daemon, pid)
		return nil
	}
	cgRoot, err := cgroup2Root(lab.Layout.RunDir)
	if err != nil {
		return err
	}
	start := time.Now()
	exited, err := lab.spawnDaemon(ctx, cgRoot, st, *h, daemon)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, controlPlaneTimeout)
	defer cancel()
	back := func(ctx context.Context) error { return lab.agentRegistered(ctx, st, host, start) }
	if daemon == daemonServer {
		back = func(ctx context.Context) error { return lab.serverAnswers(ctx, *h) }
	}
	if err := waitBack(ctx, back, exited); err != nil {
		log := filepath.Join(lab.Layout.hostDataDir(host), daemon+".log")
		return fmt.Errorf("revive %s on %s: %w (log %s: %s)", daemon, host, err, log, lastLogLine(log))
	}
	lab.say("%s: %s revived in %.1fs", host, daemon, time.Since(start).Seconds())
	return nil
}

// hostForDaemon checks a kill or revive: a known daemon of a host of the
// lab that is powered on.
func (lab *Lab) hostForDaemon(host, daemon string) (*State, *HostState, error) {
	st, h, err := lab.hostForChange(host)
	if err != nil {
		return nil, nil, err
	}
	if err := checkDaemon(st, h, daemon); err != nil {
		return nil, nil, err
	}
	return st, h, nil
}

// checkDaemon refuses a daemon the host does not run.
func checkDaemon(st *State, h *HostState, daemon string) error {
	switch {
	case daemon != daemonAgent && daemon != daemonServer:
		return fmt.Errorf("unknown daemon %q: want %s or %s", daemon, daemonAgent, daemonServer)
	case daemon == daemonServer && !st.isManager(h.Name):
		return fmt.Errorf("%s runs no manager (server): the managers are host1..host%d", h.Name, st.Managers)
	case h.Stopped:
		return fmt.Errorf("%s is stopped: run 'clusterctl lab start %s' first", h.Name, h.Name)
	}
	return nil
}

// daemonPID finds a running daemon of a host from its pid file, checking
// that the process is still that daemon (a pid can be reused).
func daemonPID(l Layout, host, daemon string) (int, error) {
	b, err := os.ReadFile(l.daemonPIDFile(host, daemon))
	if err != nil {
		return 0, fmt.Errorf("%s on %s is not running (no pid file)", daemon, host)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || !alive(pid) || !isDaemon(cmdline(pid), daemon, host) {
		return 0, fmt.Errorf("%s on %s is not running", daemon, host)
	}
	return pid, nil
}

// cmdline reads a process's arguments; nil if it is gone.
func cmdline(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}

// isDaemon says whether a command line is host's daemon as spawn starts
// it: clusterctl DAEMON ... --name HOST ...
func isDaemon(argv []string, daemon, host string) bool {
	if len(argv) < 2 || argv[1] != daemon {
		return false
	}
	i := slices.Index(argv, "--name")
	return i > 0 && i+1 < len(argv) && argv[i+1] == host
}

// alive says whether a process exists and is not a zombie (a killed daemon
// whose parent has not reaped it yet is dead).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// "PID (COMM) STATE ...": COMM may hold spaces and parentheses.
	_, rest, ok := strings.Cut(string(b), ") ")
	return ok && !strings.HasPrefix(rest, "Z") && !strings.HasPrefix(rest, "X")
}

// waitGone waits until a killed process is dead.
func waitGone(ctx context.Context, pid int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for alive(pid) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("pid %d still alive after %s", pid, timeout)
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// waitBack polls back until it succeeds, failing early if the daemon
// exits.
func waitBack(ctx context.Context, back func(context.Context) error, exited <-chan error) error {
	for {
		err := back(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not back within %s: %v", controlPlaneTimeout, err)
		case err := <-exited:
			return fmt.Errorf("it exited (%v)", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// agentRegistered says whether host's agent registered since `since`:
// registering records the time in the store, and a new agent registers
// before anything else it tells the managers, once its plugins listen.
func (lab *Lab) agentRegistered(ctx context.Context, st *State, host string, since time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := lab.client(st)
	if err != nil {
		return err
	}
	resp, err := c.Hosts(ctx, false)
	if err != nil {
		return err
	}
	for _, h := range resp.Hosts {
		if h.Name != host {
			continue
		}
		if h.State != store.HostUp || h.LastHeartbeat.Before(since) {
			return fmt.Errorf("%s is %s, last heard from at %s", host, h.State, h.LastHeartbeat.Format(time.TimeOnly))
		}
		return nil
	}
	return fmt.Errorf("the managers do not know %s", host)
}

// serverAnswers says whether host's manager answers and knows the leader.
func (lab *Lab) serverAnswers(ctx context.Context, h HostState) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	addr := fmt.Sprintf("%s:%d", h.Addr, apiPort)
	c, err := lab.clientOf([]string{addr})
	if err != nil {
		return err
	}
	self, err := c.Self(ctx, addr)
	if err != nil {
		return err
	}
	if self.LeaderName == "" {
		return fmt.Errorf("the manager on %s knows no leader (%s)", h.Name, self.State)
	}
	return nil
}
