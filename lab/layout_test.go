package lab

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPlanAddresses(t *testing.T) {
	plan, err := PlanAddresses(DefaultSubnet, 3)
	if err != nil {
		t.Fatal(err)
	}
	if plan.Gateway.String() != "10.99.0.1" {
		t.Errorf("gateway %s, want 10.99.0.1", plan.Gateway)
	}
	want := []string{"host1=10.99.0.11", "host2=10.99.0.12", "host3=10.99.0.13"}
	for i, h := range plan.Hosts {
		if got := h.Name + "=" + h.Addr.String(); got != want[i] {
			t.Errorf("host %d: %s, want %s", i, got, want[i])
		}
	}
	// A subnet given with host bits set is the same network.
	plan, err = PlanAddresses("10.50.7.99/28", MaxHosts-13)
	if err != nil {
		t.Fatal(err)
	}
	if plan.Subnet.String() != "10.50.7.96/28" || plan.Hosts[2].Addr.String() != "10.50.7.109" {
		t.Errorf("plan on a /28: %+v", plan)
	}
}

func TestPlanAddressesRefuses(t *testing.T) {
	for _, tc := range []struct {
		subnet string
		hosts  int
		want   string
	}{
		{DefaultSubnet, 0, "--hosts must be between 1 and 16, got 0"},
		{DefaultSubnet, 17, "--hosts must be between 1 and 16, got 17"},
		{"10.99.0.0", 3, "not an IPv4 CIDR"},
		{"fd00::/64", 3, "not an IPv4 CIDR"},
		{"10.99.0.0/29", 3, "too small for 3 hosts: use a /28 or larger"},
		{"10.99.0.0/28", 16, "too small for 16 hosts: use a /27 or larger"},
	} {
		_, err := PlanAddresses(tc.subnet, tc.hosts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("PlanAddresses(%q, %d) = %v, want %q", tc.subnet, tc.hosts, err, tc.want)
		}
	}
}

func TestHostMACIsStableAndLocal(t *testing.T) {
	plan, _ := PlanAddresses(DefaultSubnet, 2)
	a, b := hostMAC(plan.Hosts[0].Addr), hostMAC(plan.Hosts[1].Addr)
	if a != "02:cc:0a:63:00:0b" || a == b {
		t.Errorf("MACs %s, %s", a, b)
	}
}

func TestStateRoundTrip(t *testing.T) {
	l := Layout{StateDir: filepath.Join(t.TempDir(), "lab"), RunDir: t.TempDir()}
	if _, err := loadState(l); err != errNoLab {
		t.Fatalf("no state: %v, want errNoLab", err)
	}
	st := &State{Subnet: DefaultSubnet, Hosts: []HostState{{Name: "host1", Addr: "10.99.0.11"}, {Name: "host2", Addr: "10.99.0.12", Stopped: true}}}
	if err := st.save(l); err != nil {
		t.Fatal(err)
	}
	got, err := loadState(l)
	if err != nil {
		t.Fatal(err)
	}
	h, err := got.host("host2")
	if err != nil || !h.Stopped || h.Addr != "10.99.0.12" {
		t.Fatalf("host2 after round trip: %+v, %v", h, err)
	}
	if _, err := got.host("host9"); err == nil || !strings.Contains(err.Error(), "hosts are host1..host2") {
		t.Fatalf("unknown host: %v", err)
	}
}

func TestBootFilesGiveEachHostItsOwnEverything(t *testing.T) {
	l := Layout{StateDir: t.TempDir(), RunDir: t.TempDir()}
	h := HostState{Name: "host2", Addr: "10.99.0.12"}
	specPath, err := writeBootFiles(l, "/sys/fs/cgroup/unified", h, "overlay2")
	if err != nil {
		t.Fatal(err)
	}
	var spec bootSpec
	b, _ := os.ReadFile(specPath)
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	cmd := strings.Join(spec.Command, " ")
	for _, want := range []string{
		"--data-root " + filepath.Join(l.StateDir, "hosts/host2/docker"),
		"--exec-root " + filepath.Join(l.RunDir, "host2/exec"),
		"-H unix://" + filepath.Join(l.RunDir, "host2/docker.sock"),
		"-H tcp://10.99.0.12:2376",
		"--tlsverify --tlscacert " + filepath.Join(l.StateDir, "hosts/host2/docker-tls/ca.pem"),
	} {
		if !strings.Contains(cmd, want) {
			t.Errorf("dockerd command lacks %q: %s", want, cmd)
		}
	}
	if spec.Hostname != "host2" || spec.CgroupProcs != "/sys/fs/cgroup/unified/clusterctl-lab/host2/daemons/cgroup.procs" {
		t.Errorf("spec %+v", spec)
	}
	targets := map[string]string{}
	for _, b := range spec.Binds {
		targets[b.Target] = b.Source
	}
	if targets["/run/docker"] != filepath.Join(l.RunDir, "host2/docker") || targets["/run/containerd"] == "" || targets["/etc/docker"] == "" {
		t.Errorf("binds %+v", spec.Binds)
	}
	if l.PluginDir("host2") != filepath.Join(targets["/run/docker"], "plugins") {
		t.Errorf("PluginDir %s is not what dockerd sees as /run/docker/plugins", l.PluginDir("host2"))
	}
	var cfg map[string]any
	b, _ = os.ReadFile(filepath.Join(l.StateDir, "hosts/host2/daemon.json"))
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg["cgroup-parent"] != "/clusterctl-lab/host2" || cfg["storage-driver"] != "overlay2" {
		t.Errorf("daemon.json %v", cfg)
	}
}

func TestFindArchives(t *testing.T) {
	dir := t.TempDir()
	if _, err := findArchives(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "make images") {
		t.Errorf("missing dir: %v", err)
	}
	if _, err := findArchives(dir); err == nil || !strings.Contains(err.Error(), "no image archives") {
		t.Errorf("empty dir: %v", err)
	}
	tar := filepath.Join(dir, "a.tar")
	os.WriteFile(tar, nil, 0o644)
	os.WriteFile(filepath.Join(dir, "notes.txt"), nil, 0o644)
	if got, err := findArchives(dir); err != nil || len(got) != 1 || got[0] != tar {
		t.Errorf("dir with one archive: %v, %v", got, err)
	}
	if got, err := findArchives(tar); err != nil || got[0] != tar {
		t.Errorf("archive path: %v, %v", got, err)
	}
}

func TestLastLogLine(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log")
	os.WriteFile(p, []byte("starting\nfailed to start daemon: bad storage driver\n\n"), 0o644)
	if got := lastLogLine(p); got != "failed to start daemon: bad storage driver" {
		t.Errorf("lastLogLine = %q", got)
	}
}
