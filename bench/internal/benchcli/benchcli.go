// Package benchcli is what the benchmark programs share: running the
// clusterctl binary with a context file of their own, and percentiles.
package benchcli

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// CLI runs one clusterctl binary against one context file.
type CLI struct {
	Bin     string
	Context string
}

// New returns a CLI whose context file is private to the named benchmark.
func New(bin, name string) CLI {
	return CLI{Bin: bin, Context: filepath.Join(os.TempDir(), name+"-context.json")}
}

// Command is clusterctl with args, to start.
func (c CLI) Command(args ...string) *exec.Cmd {
	cmd := exec.Command(c.Bin, args...)
	cmd.Env = append(os.Environ(), "CLUSTERCTL_CONTEXT="+c.Context)
	return cmd
}

// Run runs clusterctl and returns its output, or an error carrying it.
func (c CLI) Run(args ...string) (string, error) {
	cmd := c.Command(args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("clusterctl %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// RunStdout runs clusterctl and returns its standard output alone (what
// -o json prints), or an error carrying its standard error.
func (c CLI) RunStdout(args ...string) (string, error) {
	cmd := c.Command(args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("clusterctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// Timed runs clusterctl and returns its wall time.
func (c CLI) Timed(args ...string) (time.Duration, error) {
	start := time.Now()
	_, err := c.Run(args...)
	return time.Since(start), err
}

// Percentile is the p-th percentile of durations (p in 0..100).
func Percentile(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

// PrintTarget prints one target's verdict line: "target: WHAT: met (GOT)"
// or MISSED.
func PrintTarget(what string, ok bool, got string) {
	v := "met"
	if !ok {
		v = "MISSED"
	}
	fmt.Printf("target: %s: %s (%s)\n", what, v, got)
}

// LabHost is a host of `clusterctl lab status -o json`.
type LabHost struct {
	Name         string `json:"name"`
	Addr         string `json:"addr"`
	DockerSocket string `json:"docker_socket"`
	PID          int    `json:"pid"` // its dockerd's, in its namespaces
}

// LabHosts reads the lab's hosts by name.
func (c CLI) LabHosts() (map[string]LabHost, error) {
	out, err := c.RunStdout("lab", "status", "-o", "json")
	if err != nil {
		return nil, err
	}
	var st struct{ Hosts []LabHost }
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return nil, fmt.Errorf("lab status -o json: %w", err)
	}
	hosts := map[string]LabHost{}
	for _, h := range st.Hosts {
		hosts[h.Name] = h
	}
	return hosts, nil
}

// Finish ends a benchmark that brought up a lab: the lab goes whatever
// happened, and a failure (the run's, or the lab's removal) is printed as
// "name: error" with exit status 1.
func (c CLI) Finish(name string, err error) {
	if _, derr := c.Run("lab", "down"); err == nil {
		err = derr
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, name+": "+err.Error())
		os.Exit(1)
	}
}
