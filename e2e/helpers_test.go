//go:build e2e

// Package e2e drives the clusterctl binary against real Docker engines in a
// real lab on this machine. It needs root, dockerd and the binary and sample
// images that `make build images` writes; without them it fails and says
// why, it never skips.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/contextfile"
)

// binary and images are what `make build images` produced.
var (
	binary, _ = filepath.Abs("../bin/clusterctl")
	images, _ = filepath.Abs("../bin/images")
)

// TestMain refuses to run, loudly, on a machine that cannot run the lab.
func TestMain(m *testing.M) {
	if reason := cannotRun(); reason != "" {
		fmt.Fprintln(os.Stderr, "e2e: cannot run: "+reason)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func cannotRun() string {
	if os.Geteuid() != 0 {
		return "the end-to-end tests need root (they build a lab of Docker hosts): run 'sudo make test'"
	}
	if _, err := exec.LookPath("dockerd"); err != nil {
		return "dockerd is not installed: apt-get install docker.io (.ci/run does this)"
	}
	for _, p := range []string{binary, images} {
		if _, err := os.Stat(p); err != nil {
			return p + " is missing: run 'make build images' ('make test' does)"
		}
	}
	return ""
}

// cli runs clusterctl with a context file private to the test.
type cli struct {
	t       *testing.T
	context string
}

func newCLI(t *testing.T) *cli {
	return &cli{t: t, context: filepath.Join(t.TempDir(), "context.json")}
}

// with is the same CLI reporting to a subtest.
// labCLI is newCLI for a test that brings up its own lab: whatever
// happens, the lab's logs are printed if the test failed, and the lab is
// removed.
func labCLI(t *testing.T) *cli {
	c := newCLI(t)
	t.Cleanup(func() {
		dumpLabLogs(t)
		if _, err := c.run("lab", "down"); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return c
}

func (c *cli) with(t *testing.T) *cli { return &cli{t: t, context: c.context} }

// client is a client of the lab's managers (or of the given ones), with
// the operator's credentials the lab put in its context file.
func (c *cli) client(servers ...string) *api.Client {
	c.t.Helper()
	ctxFile, err := contextfile.Load(c.context)
	if err != nil {
		c.t.Fatal(err)
	}
	creds, err := ctxFile.Creds()
	if err != nil {
		c.t.Fatal(err)
	}
	if len(servers) == 0 {
		servers = ctxFile.Servers
	}
	return api.NewClient(servers, creds)
}

// run returns stdout, and an error carrying stderr.
func (c *cli) run(args ...string) (string, error) {
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "CLUSTERCTL_CONTEXT="+c.context)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String(), fmt.Errorf("clusterctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// must runs and fails the test on error.
func (c *cli) must(args ...string) string {
	c.t.Helper()
	out, err := c.run(args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// labStatus is `lab status -o json`.
type labStatus struct {
	Hosts []labHost `json:"hosts"`
}

func (c *cli) status() labStatus {
	c.t.Helper()
	var st labStatus
	if err := json.Unmarshal([]byte(c.must("lab", "status", "-o", "json")), &st); err != nil {
		c.t.Fatalf("lab status -o json: %v", err)
	}
	return st
}

// eventually polls check until it succeeds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	eventuallyTimed(t, timeout, 100*time.Millisecond, what, check)
}

// eventuallyTimed polls check every poll until it succeeds, failing the
// test after timeout, and returns how long it took.
func eventuallyTimed(t *testing.T, timeout, poll time.Duration, what string, check func() error) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		err := check()
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(poll)
	}
}

// httpGet fetches a URL from the root namespace with a short timeout.
func httpGet(url string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return b.String(), fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return b.String(), nil
}

// labLeftovers looks at the machine itself (not at the lab's own view of
// it) for anything a lab leaves: namespaces, links, mounts, rules,
// processes, files, cgroups.
func labLeftovers() []string {
	var left []string
	if out, _ := exec.Command("ip", "netns", "list").Output(); bytes.Contains(out, []byte("lab-host")) {
		left = append(left, "netns: "+strings.TrimSpace(string(out)))
	}
	if out, _ := exec.Command("ip", "-o", "link").Output(); bytes.Contains(out, []byte(" lab0")) || bytes.Contains(out, []byte(" lab-host")) {
		left = append(left, "links")
	}
	if b, _ := os.ReadFile("/proc/self/mountinfo"); bytes.Contains(b, []byte("/clusterctl/lab")) {
		left = append(left, "mounts")
	}
	if out, _ := exec.Command("iptables", "-w", "-S").Output(); bytes.Contains(out, []byte("clusterctl-lab")) {
		left = append(left, "iptables rules")
	}
	for _, p := range []string{"/run/clusterctl/lab", "/var/lib/clusterctl/lab", "/sys/fs/cgroup/unified/clusterctl-lab", "/sys/fs/cgroup/pids/clusterctl-lab", "/sys/fs/cgroup/clusterctl-lab"} {
		if _, err := os.Stat(p); err == nil {
			left = append(left, p)
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if b, _ := os.ReadFile(p); bytes.Contains(b, []byte("/clusterctl/lab/")) {
			left = append(left, "process "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return left
}

// machineDocker lists the machine's own containers and images, to check the
// lab never touches them.
func machineDocker(t *testing.T) string {
	t.Helper()
	ps, err := exec.Command("docker", "ps", "-aq", "--no-trunc").Output()
	if err != nil {
		t.Fatalf("docker ps on the machine's own engine: %v", err)
	}
	imgs, err := exec.Command("docker", "images", "-aq", "--no-trunc").Output()
	if err != nil {
		t.Fatalf("docker images on the machine's own engine: %v", err)
	}
	// Sorted: the engine lists images created in the same second in any order.
	lines := strings.Fields(string(ps) + " images: " + string(imgs))
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// httpPut puts body at a URL from the root namespace with a short timeout.
func httpPut(url, body string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, url, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("PUT %s: %s", url, resp.Status)
	}
	return nil
}

// dumpLabLogs prints the end of every lab host's daemon logs when the test
// failed, before the lab (and its logs) are removed: a failure in CI can
// then be read from its output.
func dumpLabLogs(t *testing.T) {
	if !t.Failed() {
		return
	}
	logs, _ := filepath.Glob("/var/lib/clusterctl/lab/hosts/*/*.log")
	for _, path := range logs {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		t.Logf("--- last lines of %s:\n%s", path, strings.Join(lines[max(0, len(lines)-40):], "\n"))
	}
}
