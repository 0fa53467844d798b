package lab

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestMain lets the test binary stand in for a daemon: run with
// LAB_FAKE_DAEMON=1 and a daemon's arguments, it just waits to be killed.
func TestMain(m *testing.M) {
	if os.Getenv("LAB_FAKE_DAEMON") == "1" {
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestIsDaemon(t *testing.T) {
	agent := []string{"/usr/bin/clusterctl", "agent", "--name", "host1", "--addr", "10.99.0.11"}
	for _, tc := range []struct {
		argv         []string
		daemon, host string
		want         bool
	}{
		{agent, "agent", "host1", true},
		{agent, "server", "host1", false},
		{agent, "agent", "host2", false},
		{[]string{"/usr/bin/clusterctl", "agent", "--addr", "10.99.0.11", "--name", "host12"}, "agent", "host1", false},
		{[]string{"/usr/bin/clusterctl", "agent", "--name"}, "agent", "host1", false},
		{[]string{"sleep", "agent"}, "agent", "host1", false},
		{nil, "agent", "host1", false},
	} {
		if got := isDaemon(tc.argv, tc.daemon, tc.host); got != tc.want {
			t.Errorf("isDaemon(%q, %s, %s) = %v, want %v", tc.argv, tc.daemon, tc.host, got, tc.want)
		}
	}
}

func TestCheckDaemon(t *testing.T) {
	st := &State{Managers: 1, Hosts: []HostState{{Name: "host1"}, {Name: "host2"}, {Name: "host3", Stopped: true}}}
	for _, tc := range []struct {
		host, daemon, want string
	}{
		{"host1", "agent", ""},
		{"host1", "server", ""},
		{"host2", "agent", ""},
		{"host1", "dockerd", `unknown daemon "dockerd": want agent or server`},
		{"host2", "server", "host2 runs no manager (server): the managers are host1..host1"},
		{"host3", "agent", "host3 is stopped: run 'clusterctl lab start host3' first"},
	} {
		h, err := st.host(tc.host)
		if err != nil {
			t.Fatal(err)
		}
		err = checkDaemon(st, h, tc.daemon)
		if (tc.want == "") != (err == nil) || (err != nil && err.Error() != tc.want) {
			t.Errorf("checkDaemon(%s, %s) = %v, want %q", tc.host, tc.daemon, err, tc.want)
		}
	}
}

// TestDaemonPIDAndKill finds a daemon by its pid file, refuses a pid file
// that names another process, and sees a killed daemon as gone even while
// it is a zombie.
func TestDaemonPIDAndKill(t *testing.T) {
	l := Layout{StateDir: t.TempDir(), RunDir: t.TempDir()}
	cmd := exec.Command(os.Args[0], "agent", "--name", "host1")
	cmd.Env = append(os.Environ(), "LAB_FAKE_DAEMON=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	pid := cmd.Process.Pid
	if _, err := daemonPID(l, "host1", "agent"); err == nil || !strings.Contains(err.Error(), "agent on host1 is not running (no pid file)") {
		t.Fatalf("no pid file: %v", err)
	}
	for _, host := range []string{"host1", "host2"} {
		if err := os.MkdirAll(l.hostRunDir(host), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(l.daemonPIDFile(host, "agent"), []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := daemonPID(l, "host1", "agent"); err != nil || got != pid {
		t.Fatalf("daemonPID = %d, %v; want %d", got, err, pid)
	}
	// host2's pid file names a process that is not host2's agent.
	if _, err := daemonPID(l, "host2", "agent"); err == nil {
		t.Fatal("a pid file naming another host's daemon was taken")
	}
	if err := unix.Kill(pid, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Not reaped yet: a zombie, which is dead.
	if err := waitGone(context.Background(), pid, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := daemonPID(l, "host1", "agent"); err == nil {
		t.Fatal("a killed daemon is still found")
	}
	if !strings.HasSuffix(l.daemonPIDFile("host1", "agent"), filepath.Join("host1", "agent.pid")) {
		t.Errorf("pid file %s", l.daemonPIDFile("host1", "agent"))
	}
}

func TestDaemonArgs(t *testing.T) {
	lab := &Lab{Layout: Layout{StateDir: "/var/lib/x", RunDir: "/run/x"}}
	st := &State{Managers: 1, Hosts: []HostState{{Name: "host1", Addr: "10.99.0.11"}}}
	h := st.Hosts[0]
	agent := strings.Join(lab.daemonArgs(st, h, daemonAgent), " ")
	want := "agent --name host1 --addr 10.99.0.11 --docker tcp://10.99.0.11:2376 --docker-cert-path /var/lib/x/docker-certs/host1 --servers 10.99.0.11:7400 --data-dir /var/lib/x/hosts/host1/agent --shared-dir /var/lib/x/shared --usage-cgroup /clusterctl-lab/host1 --token-file /var/lib/x/tokens/worker"
	if agent != want {
		t.Errorf("agent args %q, want %q", agent, want)
	}
	server := strings.Join(lab.daemonArgs(st, h, daemonServer), " ")
	want = "server --name host1 --bind 10.99.0.11 --data-dir /var/lib/x/hosts/host1/server --join 10.99.0.11:7400 --docker-certs /var/lib/x/docker-certs --bootstrap"
	if server != want {
		t.Errorf("server args %q, want %q", server, want)
	}
	// The other managers join the first with the manager token.
	st.Managers = 2
	st.Hosts = append(st.Hosts, HostState{Name: "host2", Addr: "10.99.0.12"})
	joiner := strings.Join(lab.daemonArgs(st, st.Hosts[1], daemonServer), " ")
	want = "server --name host2 --bind 10.99.0.12 --data-dir /var/lib/x/hosts/host2/server --join 10.99.0.11:7400,10.99.0.12:7400 --docker-certs /var/lib/x/docker-certs --token-file /var/lib/x/tokens/manager"
	if joiner != want {
		t.Errorf("joining server args %q, want %q", joiner, want)
	}
}
