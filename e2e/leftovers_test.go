//go:build e2e

package e2e

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestLabClearsLeftovers plants what a crashed or interrupted lab leaves on
// the machine (kernel state outlives processes) and checks that `lab up`
// clears it and works, and `lab down` leaves nothing.
func TestLabClearsLeftovers(t *testing.T) {
	c := labCLI(t)
	plant := [][]string{
		{"ip", "netns", "add", "lab-host9"},
		{"ip", "link", "add", "lab0", "type", "bridge"},
		{"ip", "link", "add", "lab-host9", "type", "veth", "peer", "name", "lab-peer9"},
		{"iptables", "-w", "-I", "FORWARD", "-i", "lab0", "-o", "lab0", "-m", "comment", "--comment", "clusterctl-lab", "-j", "ACCEPT"},
		{"mkdir", "-p", "/run/clusterctl/lab/host9/exec", "/var/lib/clusterctl/lab/hosts/host9/docker"},
	}
	for _, cmd := range plant {
		if out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("plant %v: %v: %s", cmd, err, out)
		}
	}
	// A stale process in the lab's cgroup, as a host whose kill was cut short.
	staleDied := make(chan error, 1)
	if root := cgroup2Mount(t); root != "" {
		dir := root + "/clusterctl-lab/host9/daemons"
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		sleeper := exec.Command("sleep", "600")
		if err := sleeper.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { staleDied <- sleeper.Wait() }()
		if err := os.WriteFile(dir+"/cgroup.procs", []byte(strconv.Itoa(sleeper.Process.Pid)), 0); err != nil {
			t.Fatal(err)
		}
	}
	out := c.must("lab", "up", "--hosts", "1", "--images", "")
	if !strings.Contains(out, "cleared an earlier lab") {
		t.Fatalf("lab up did not report clearing the leftovers: %s", out)
	}
	if cgroup2Mount(t) != "" {
		select {
		case <-staleDied:
		case <-time.After(5 * time.Second):
			t.Fatal("lab up left a stale process of an earlier lab running")
		}
	}
	if s := hostState(c, "host1"); s != "up" {
		t.Fatalf("host1: %s", s)
	}
	c.must("lab", "down")
	if left := labLeftovers(); len(left) > 0 {
		t.Fatalf("after lab down: %v", left)
	}
}

// cgroup2Mount finds the machine's cgroup2 hierarchy.
func cgroup2Mount(t *testing.T) string {
	out, err := exec.Command("findmnt", "-n", "-t", "cgroup2", "-o", "TARGET").Output()
	if err != nil {
		t.Logf("no cgroup2 mount found (%v): not planting a stale process", err)
		return ""
	}
	return strings.TrimSpace(strings.Split(string(out), "\n")[0])
}
