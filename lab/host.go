package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/clusterctl/clusterctl/engine"
	"github.com/docker/docker/client"
	"golang.org/x/sys/unix"
)

// dockerdStartTimeout bounds how long a host's dockerd may take to answer.
const dockerdStartTimeout = 60 * time.Second

// daemonConfig is a host's daemon.json. Containers go under the host's
// cgroup so that powering the host off kills them too.
func daemonConfig(host, storageDriver string) map[string]any {
	return map[string]any{
		"storage-driver": storageDriver,
		"cgroup-parent":  cgroupParent(host),
		"exec-opts":      []string{"native.cgroupdriver=cgroupfs"},
		"log-driver":     "json-file",
		"log-opts":       map[string]string{"max-size": "10m", "max-file": "2"},
	}
}

// dockerdLog is where a host's dockerd (and its containerd) write.
func (l Layout) dockerdLog(host string) string {
	return filepath.Join(l.hostDataDir(host), "dockerd.log")
}

// bootDockerd starts a host's dockerd in the host's namespaces, calls
// started once dockerd has written its pid file (its namespaces are then
// ready for the host's daemons), then waits until its API answers. The
// daemons start before the API answers because a dockerd that comes back
// with cluster networks asks their plugins (served by the agent) before it
// answers: waiting for it first would wait forever, as a host whose
// plugins start after dockerd does. The dockerd outlives this process: it
// is the host.
func bootDockerd(ctx context.Context, l Layout, cgroupRoot string, h HostState, storageDriver string, started func() error) error {
	spec, err := writeBootFiles(l, cgroupRoot, h, storageDriver)
	if err != nil {
		return err
	}
	// nsenter itself starts in new mount and UTS namespaces: the host's own.
	cmd, err := startSelf(l.dockerdLog(h.Name), unix.CLONE_NEWNS|unix.CLONE_NEWUTS,
		[]string{"--net=" + nsPath(h.Name)}, append(slices.Clone(BootArgs), spec))
	if err != nil {
		return fmt.Errorf("start dockerd on %s: %w", h.Name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	if err := waitPIDFile(ctx, l, h.Name, exited); err != nil {
		return err
	}
	if err := started(); err != nil {
		return err
	}
	return waitDockerd(ctx, l, h.Name, exited)
}

// waitPIDFile waits for a booting dockerd's pid file, failing early if it
// exits.
func waitPIDFile(ctx context.Context, l Layout, host string, exited <-chan error) error {
	ctx, cancel := context.WithTimeout(ctx, dockerdStartTimeout)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := dockerdPID(l, host); err == nil {
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("dockerd on %s exited (%v): %s (log %s)", host, err, lastLogLine(l.dockerdLog(host)), l.dockerdLog(host))
		case <-ctx.Done():
			return fmt.Errorf("dockerd on %s wrote no pid file within %s (log %s: %s)", host, dockerdStartTimeout, l.dockerdLog(host), lastLogLine(l.dockerdLog(host)))
		case <-tick.C:
		}
	}
}

// waitDockerd waits for a booting dockerd's API, failing early with its last
// log line if it exits.
func waitDockerd(ctx context.Context, l Layout, host string, exited <-chan error) error {
	ctx, cancel := context.WithTimeout(ctx, dockerdStartTimeout)
	defer cancel()
	ready := make(chan error, 1)
	go func() { ready <- engine.WaitReady(ctx, "unix://"+l.DockerSocket(host)) }()
	select {
	case err := <-ready:
		if err != nil {
			return fmt.Errorf("dockerd on %s did not answer within %s (log %s: %s)", host, dockerdStartTimeout, l.dockerdLog(host), lastLogLine(l.dockerdLog(host)))
		}
		return nil
	case err := <-exited:
		cancel()
		return fmt.Errorf("dockerd on %s exited (%v): %s (log %s)", host, err, lastLogLine(l.dockerdLog(host)), l.dockerdLog(host))
	}
}

// writeBootFiles writes a host's daemon.json and boot spec and returns the
// spec's path.
func writeBootFiles(l Layout, cgroupRoot string, h HostState, storageDriver string) (string, error) {
	data, run := l.hostDataDir(h.Name), l.hostRunDir(h.Name)
	for _, d := range []string{data, run, l.SharedDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", fmt.Errorf("prepare %s: %w", h.Name, err)
		}
	}
	cfg, err := json.MarshalIndent(daemonConfig(h.Name, storageDriver), "", "  ")
	if err != nil {
		return "", fmt.Errorf("daemon.json of %s: %w", h.Name, err)
	}
	cfgPath := filepath.Join(data, "daemon.json")
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		return "", fmt.Errorf("daemon.json of %s: %w", h.Name, err)
	}
	spec := bootSpec{
		Hostname:    h.Name,
		CgroupProcs: daemonsCgroupProcs(cgroupRoot, h.Name),
		SaveDir:     filepath.Join(run, "sys-save"),
		Binds: []bind{
			{Source: filepath.Join(run, "docker"), Target: "/run/docker"},
			{Source: filepath.Join(run, "containerd"), Target: "/run/containerd"},
			{Source: filepath.Join(data, "etc-docker"), Target: "/etc/docker"},
		},
		Command: append([]string{"dockerd",
			"--data-root", filepath.Join(data, "docker"),
			"--exec-root", filepath.Join(run, "exec"),
			"--pidfile", filepath.Join(run, "dockerd.pid"),
			"--config-file", cfgPath,
			"-H", "unix://" + l.DockerSocket(h.Name),
			"-H", fmt.Sprintf("tcp://%s:%d", h.Addr, DockerPort),
		}, dockerTLSArgs(l, h.Name)...),
	}
	b, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return "", fmt.Errorf("boot spec of %s: %w", h.Name, err)
	}
	specPath := filepath.Join(run, "boot.json")
	if err := os.WriteFile(specPath, b, 0o644); err != nil {
		return "", fmt.Errorf("boot spec of %s: %w", h.Name, err)
	}
	return specPath, nil
}

// startSelf starts `nsenter NSARGS -- clusterctl ARGS...` in its own
// session (signals to this terminal do not reach it), with its output
// appended to logPath. The process outlives this one: it is part of a host.
func startSelf(logPath string, cloneflags uintptr, nsArgs, args []string) (*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find clusterctl binary: %w", err)
	}
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	defer logFile.Close()
	argv := append(append(slices.Clone(nsArgs), "--", self), args...)
	cmd := exec.Command("nsenter", argv...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: cloneflags, Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return cmd, nil
}

// hostNamespaces are nsenter's flags to enter a running host's network,
// mount and UTS namespaces, through its dockerd.
func hostNamespaces(dockerdPID int) []string {
	return []string{"-t", strconv.Itoa(dockerdPID), "-m", "-n", "-u"}
}

// dockerdPID reads a running host's dockerd pid from its pid file.
func dockerdPID(l Layout, host string) (int, error) {
	b, err := os.ReadFile(filepath.Join(l.hostRunDir(host), "dockerd.pid"))
	if err != nil {
		return 0, fmt.Errorf("%s is not running (no dockerd pid file): run 'clusterctl lab start %s'", host, host)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || unix.Kill(pid, 0) != nil {
		return 0, fmt.Errorf("%s is not running (dockerd is gone): run 'clusterctl lab start %s'", host, host)
	}
	return pid, nil
}

// lastLogLine gives the last non-empty line of a log, for one-line errors.
func lastLogLine(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "no log"
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > 64<<10 {
		_, _ = f.Seek(-64<<10, io.SeekEnd)
	}
	last := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			last = line
		}
	}
	return last
}

// loadImages loads image archives (docker save output) into a host.
func loadImages(ctx context.Context, l Layout, host string, archives []string) error {
	c, err := engine.Connect("unix://" + l.DockerSocket(host))
	if err != nil {
		return err
	}
	defer c.Close()
	for _, path := range archives {
		if err := loadImage(ctx, c, path); err != nil {
			return fmt.Errorf("load %s into %s: %w", filepath.Base(path), host, err)
		}
	}
	return nil
}

// loadImage streams one archive into an engine and reads the engine's
// answer to the end, which is when the load has finished.
func loadImage(ctx context.Context, c *client.Client, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	resp, err := c.ImageLoad(ctx, f, client.ImageLoadWithQuiet(true))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// findArchives lists the image archives in dir (*.tar), or dir itself if it
// is a file.
func findArchives(dir string) ([]string, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("no sample images at %s: run 'make images' (or pass --images DIR, or --images '' to skip)", dir)
	}
	if !st.IsDir() {
		return []string{dir}, nil
	}
	archives, _ := filepath.Glob(filepath.Join(dir, "*.tar"))
	if len(archives) == 0 {
		return nil, fmt.Errorf("no image archives (*.tar) in %s: run 'make images' (or pass --images '' to skip)", dir)
	}
	return archives, nil
}
