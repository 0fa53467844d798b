package cli_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/clusterctl/clusterctl/engine/enginetest"

	"github.com/clusterctl/clusterctl/cli"
	"github.com/clusterctl/clusterctl/contextfile"
	"github.com/clusterctl/clusterctl/engine"
	"github.com/docker/go-units"
)

// run executes clusterctl with args and returns its stdout, stderr and error.
func run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	root := cli.NewRoot(&stdout, &stderr)
	root.SetArgs(args)
	err := root.Execute()
	return stdout.String(), stderr.String(), err
}

// availableCommands parses the "Available Commands:" section of a help text
// into command name -> one-line description.
func availableCommands(t *testing.T, help string) map[string]string {
	t.Helper()
	_, section, ok := strings.Cut(help, "Available Commands:\n")
	if !ok {
		t.Fatalf("help has no Available Commands section:\n%s", help)
	}
	cmds := map[string]string{}
	for _, line := range strings.Split(section, "\n") {
		if strings.TrimSpace(line) == "" {
			break
		}
		name, short, _ := strings.Cut(strings.TrimSpace(line), " ")
		cmds[name] = strings.TrimSpace(short)
	}
	return cmds
}

func TestRootHelp(t *testing.T) {
	stdout, _, err := run(t, "--help")
	if err != nil {
		t.Fatalf("--help: %v", err)
	}
	cmds := availableCommands(t, stdout)
	want := map[string]string{
		"lab":   "Run several real Docker hosts on this machine, for tests and demos (needs root)",
		"hosts": "List the cluster's hosts: state, address, labels, CPUs, memory, containers",
	}
	for name, short := range want {
		if got, ok := cmds[name]; !ok {
			t.Errorf("--help does not list %q; it lists %v", name, cmds)
		} else if got != short {
			t.Errorf("--help describes %q as %q, want %q", name, got, short)
		}
	}
	if !strings.Contains(stdout, "--context") {
		t.Errorf("--help does not show the --context flag:\n%s", stdout)
	}
}

func TestLabHelp(t *testing.T) {
	stdout, _, err := run(t, "lab", "--help")
	if err != nil {
		t.Fatalf("lab --help: %v", err)
	}
	cmds := availableCommands(t, stdout)
	want := map[string]string{
		"up":        "Build a lab of N Docker hosts, clearing whatever an earlier lab left",
		"down":      "Remove the lab: processes, namespaces, links, mounts, rules and files",
		"status":    "Show each lab host: address, Docker endpoint, state",
		"exec":      "Run a command inside a host's namespaces",
		"stop":      "Power a host off: all its processes stop, its data stays",
		"start":     "Boot a stopped host again, with its address and data",
		"partition": "Cut a host off the lab network (it keeps running)",
		"heal":      "Put a partitioned host back on the lab network",
	}
	for name, short := range want {
		if got, ok := cmds[name]; !ok {
			t.Errorf("lab --help does not list %q; it lists %v", name, cmds)
		} else if got != short {
			t.Errorf("lab --help describes %q as %q, want %q", name, got, short)
		}
	}
	if _, ok := cmds["boot"]; ok {
		t.Errorf("lab --help lists the hidden boot command:\n%s", stdout)
	}

	// boot is hidden, not gone: the lab runs it inside every host.
	root := cli.NewRoot(&bytes.Buffer{}, &bytes.Buffer{})
	boot, _, err := root.Find([]string{"lab", "boot", "spec"})
	if err != nil || boot.Name() != "boot" || !boot.Hidden {
		t.Errorf("lab boot: found %v (err %v), want a hidden boot command", boot.Name(), err)
	}
}

func TestHostsUnknownOutput(t *testing.T) {
	// The format is checked before the context is read.
	missing := filepath.Join(t.TempDir(), "missing.json")
	stdout, _, err := run(t, "--context", missing, "hosts", "-o", "yaml")
	if err == nil {
		t.Fatalf("hosts -o yaml succeeded, printed %q", stdout)
	}
	if !strings.Contains(err.Error(), "unknown output format") || !strings.Contains(err.Error(), "yaml") {
		t.Errorf("error %q does not say the output format yaml is unknown", err)
	}
	if stdout != "" {
		t.Errorf("hosts -o yaml printed %q", stdout)
	}
}

func TestHostsMissingContext(t *testing.T) {
	dir := t.TempDir()
	flagPath := filepath.Join(dir, "from-flag.json")
	envPath := filepath.Join(dir, "from-env.json")
	tests := []struct {
		name string
		args []string
		want string // the path the error must name
	}{
		{"--context flag wins over the environment", []string{"--context", flagPath, "hosts"}, flagPath},
		{"environment", []string{"hosts"}, envPath},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(contextfile.EnvVar, envPath)
			_, _, err := run(t, tt.args...)
			if err == nil {
				t.Fatal("hosts succeeded without a context file")
			}
			if !strings.Contains(err.Error(), "no cluster context at "+tt.want) {
				t.Errorf("error %q is not the 'no cluster context at %s' error", err, tt.want)
			}
		})
	}
}

// hostsFixture is a context file of two fake engines and a closed port.
type hostsFixture struct {
	path  string
	hosts []contextfile.Host
	infos []enginetest.Info // nil for the unreachable host
}

func newHostsFixture(t *testing.T, unreachable bool) hostsFixture {
	t.Helper()
	infos := []enginetest.Info{
		{Name: "node-a", ServerVersion: "20.10.24", Containers: 5, ContainersRunning: 2, NCPU: 2, MemTotal: 2 << 30},
		{Name: "node-b", ServerVersion: "20.10.5", Containers: 1, ContainersRunning: 1, NCPU: 8, MemTotal: 16 << 30},
	}
	// host1 answers last, so results in answer order would show.
	hosts := []contextfile.Host{
		{Name: "host1", Addr: "10.99.0.11", Docker: enginetest.Start(t, infos[0], 200*time.Millisecond).Endpoint},
		{Name: "host2", Addr: "10.99.0.12", Docker: enginetest.Start(t, infos[1], 0).Endpoint},
	}
	if unreachable {
		hosts = append(hosts, contextfile.Host{Name: "host3", Addr: "10.99.0.13", Docker: enginetest.Closed(t)})
		infos = append(infos, enginetest.Info{})
	}
	path := filepath.Join(t.TempDir(), "ctx", "context.json")
	if err := contextfile.Save(path, &contextfile.Context{Name: "test", Hosts: hosts}); err != nil {
		t.Fatal(err)
	}
	return hostsFixture{path: path, hosts: hosts, infos: infos}
}

func TestHostsJSON(t *testing.T) {
	for _, unreachable := range []bool{false, true} {
		name := "all up"
		if unreachable {
			name = "one unreachable"
		}
		t.Run(name, func(t *testing.T) {
			fx := newHostsFixture(t, unreachable)
			stdout, _, err := run(t, "--context", fx.path, "hosts", "--direct", "-o", "json")
			if err != nil {
				t.Fatalf("hosts -o json: %v", err)
			}
			var raw map[string]json.RawMessage
			if err := json.Unmarshal([]byte(stdout), &raw); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, stdout)
			}
			if keys := reflect.ValueOf(raw).MapKeys(); len(keys) != 1 || raw["hosts"] == nil {
				t.Errorf("output has keys %v, want just \"hosts\"", keys)
			}
			var got []engine.HostInfo
			if err := json.Unmarshal(raw["hosts"], &got); err != nil {
				t.Fatalf("hosts is not a list of hosts: %v\n%s", err, stdout)
			}
			if len(got) != len(fx.hosts) {
				t.Fatalf("got %d hosts, want %d:\n%s", len(got), len(fx.hosts), stdout)
			}
			for i, h := range fx.hosts {
				g := got[i]
				if g.Name != h.Name || g.Addr != h.Addr || g.Docker != h.Docker {
					t.Errorf("host %d = %s %s %s, want %s %s %s", i, g.Name, g.Addr, g.Docker, h.Name, h.Addr, h.Docker)
				}
				if unreachable && i == 2 {
					if g.State != "unreachable" || g.Error == "" || g.Version != "" {
						t.Errorf("host %d = %+v, want unreachable with an error", i, g)
					}
					continue
				}
				in := fx.infos[i]
				want := engine.HostInfo{
					Name: h.Name, Addr: h.Addr, Docker: h.Docker, State: "up",
					Hostname: in.Name, Version: in.ServerVersion, APIVersion: "1.41",
					Containers: in.Containers, ContainersRunning: in.ContainersRunning,
					CPUs: in.NCPU, MemoryBytes: in.MemTotal,
				}
				if g != want {
					t.Errorf("host %d =\n  %+v\nwant\n  %+v", i, g, want)
				}
			}
		})
	}
}

func TestHostsTable(t *testing.T) {
	fx := newHostsFixture(t, true)
	for _, args := range [][]string{
		{"--context", fx.path, "hosts", "--direct"},
		{"--context", fx.path, "hosts", "--direct", "-o", "table"},
	} {
		stdout, _, err := run(t, args...)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
		if len(lines) != 1+len(fx.hosts) {
			t.Fatalf("%v printed %d lines, want a header and %d hosts:\n%s", args, len(lines), len(fx.hosts), stdout)
		}
		header := []string{"NAME", "ADDRESS", "STATE", "DOCKER", "RUNNING", "CPUS", "MEMORY"}
		if got := strings.Fields(lines[0]); !reflect.DeepEqual(got, header) {
			t.Errorf("header = %q, want %q", got, header)
		}
		rows := [][]string{
			{"host1", "10.99.0.11", "up", "20.10.24", "2", "2", units.BytesSize(2 << 30)},
			{"host2", "10.99.0.12", "up", "20.10.5", "1", "8", units.BytesSize(16 << 30)},
			{"host3", "10.99.0.13", "unreachable", "-", "-", "-", "-"},
		}
		for i, want := range rows {
			// Column values contain no spaces except the memory size ("2GiB").
			if got := strings.Fields(lines[i+1]); !reflect.DeepEqual(got, want) {
				t.Errorf("row %d = %q, want %q", i, got, want)
			}
		}
		// Columns line up: every row's STATE starts where the header's does.
		col := strings.Index(lines[0], "STATE")
		for i, line := range lines[1:] {
			if len(line) <= col || line[col-1] != ' ' || line[col] == ' ' {
				t.Errorf("row %d is not aligned under STATE:\n%s", i, stdout)
			}
		}
	}
}

// lab up refuses bad input with one line and before touching the machine.
func TestLabUpBadHosts(t *testing.T) {
	// As root, lab up checks dockerd and nsenter are in PATH before it
	// checks --hosts; stand-ins make that pass on any machine. They are
	// never run.
	bin := t.TempDir()
	for _, name := range []string{"dockerd", "nsenter"} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", bin)
	dir := t.TempDir()
	ctxPath := filepath.Join(dir, "context.json")
	// --images names a missing directory too, so that if the --hosts check
	// ever moved, lab up would still stop before changing anything.
	stdout, _, err := run(t, "--context", ctxPath, "lab", "up", "--hosts", "0", "--images", filepath.Join(dir, "no-images"))
	if err == nil {
		t.Fatal("lab up --hosts 0 succeeded")
	}
	msg := err.Error()
	want := "needs root"
	if os.Geteuid() == 0 {
		want = "--hosts must be between"
	}
	if !strings.Contains(msg, want) {
		t.Errorf("error %q does not mention %q", msg, want)
	}
	if strings.ContainsAny(msg, "\r\n") {
		t.Errorf("error is not one line: %q", msg)
	}
	if stdout != "" {
		t.Errorf("lab up printed %q before failing", stdout)
	}
	if _, err := os.Stat(ctxPath); err == nil {
		t.Errorf("lab up wrote the context file %s", ctxPath)
	}
}
