//go:build e2e

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestLabBadInput checks that every bad request gets a one-line error naming
// the fix, a non-zero exit, and leaves the machine as it was.
func TestLabBadInput(t *testing.T) {
	if left := labLeftovers(); len(left) > 0 {
		t.Fatalf("a lab is left from before the test: %v", left)
	}
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		t.Fatal(err)
	}
	onlyNsenter := t.TempDir()
	if err := os.Symlink(nsenter, filepath.Join(onlyNsenter, "nsenter")); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		cmd   func() *exec.Cmd
		setup func(t *testing.T)
		want  string
	}{
		{name: "too many hosts", want: "--hosts must be between 1 and 16", cmd: labUp("--hosts", "17")},
		{name: "no hosts", want: "--hosts must be between 1 and 16", cmd: labUp("--hosts", "0")},
		{name: "bad subnet", want: "not an IPv4 CIDR", cmd: labUp("--subnet", "10.99.0.0/33")},
		{name: "subnet too small", want: "too small for 3 hosts", cmd: labUp("--subnet", "10.99.0.0/29")},
		{name: "no images", want: "run 'make images'", cmd: labUp("--images", "/nonexistent/images")},
		{name: "address range in use", want: "already used on this machine by e2e-dummy0", cmd: labUp("--subnet", "10.97.5.0/24"), setup: dummyLink},
		{name: "not root", want: "needs root", cmd: func() *exec.Cmd {
			return exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", binary, "lab", "up")
		}},
		{name: "no dockerd", want: "dockerd not found", cmd: func() *exec.Cmd {
			cmd := exec.Command(binary, "lab", "up", "--images", "")
			cmd.Env = append(os.Environ(), "PATH="+onlyNsenter)
			return cmd
		}},
		{name: "exec without a lab", want: "no lab is up", cmd: func() *exec.Cmd {
			return exec.Command(binary, "lab", "exec", "host1", "--", "true")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup(t)
			}
			cmd := tc.cmd()
			cmd.Env = append(cmd.Environ(), "CLUSTERCTL_CONTEXT="+filepath.Join(t.TempDir(), "ctx.json"))
			out, err := cmd.CombinedOutput()
			msg := strings.TrimSpace(string(out))
			if err == nil {
				t.Fatalf("succeeded, want an error: %s", msg)
			}
			if !strings.Contains(msg, tc.want) || strings.Count(msg, "\n") > 0 {
				t.Fatalf("want one line containing %q, got %q", tc.want, msg)
			}
			if left := labLeftovers(); len(left) > 0 {
				t.Fatalf("bad input changed the machine: %v", left)
			}
		})
	}
}

// labUp is `clusterctl lab up` with extra flags.
func labUp(args ...string) func() *exec.Cmd {
	return func() *exec.Cmd { return exec.Command(binary, append([]string{"lab", "up"}, args...)...) }
}

// dummyLink puts an address of 10.97.5.0/24 on the machine, as another
// network would.
func dummyLink(t *testing.T) {
	run := func(args ...string) {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	_ = exec.Command("ip", "link", "del", "e2e-dummy0").Run()
	run("link", "add", "e2e-dummy0", "type", "bridge")
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", "e2e-dummy0").Run() })
	run("addr", "add", "10.97.5.1/24", "dev", "e2e-dummy0")
}
