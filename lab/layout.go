// Package lab runs a testbed of several real Docker hosts on one Linux
// machine: a bridge, one network namespace per host, and a dockerd per host in
// its own mount and UTS namespace. Every later feature is tested against it,
// and the demo runs on it, so it behaves like a small real deployment: hosts
// have their own addresses, can be powered off, booted and partitioned.
package lab

import (
	"fmt"
	"net/netip"
	"path/filepath"
)

// Names and numbers the lab uses on the machine. They are fixed so that a
// later run (or `lab down`) can find what an earlier run left behind even
// when the state file is gone.
const (
	// MaxHosts bounds a lab: each host costs a dockerd and a containerd.
	MaxHosts = 16
	// DefaultHosts is the size of a lab when none is asked for: enough for
	// a three-manager control plane.
	DefaultHosts = 3
	// DefaultSubnet is the lab network when none is asked for.
	DefaultSubnet = "10.99.0.0/24"
	// DockerPort is where every host's dockerd serves its API over TCP,
	// with TLS (Docker's usual port for it).
	DockerPort = 2376

	bridgeName  = "lab0"
	nsPrefix    = "lab-"           // network namespace and root-side veth: lab-host1
	ruleComment = "clusterctl-lab" // marks the iptables rules the lab adds
	cgroupName  = "clusterctl-lab" // cgroup2 directory holding every host's processes
	hostOffset  = 10               // hostN gets the subnet's address number 10+N
)

// Layout says where the lab keeps its files. StateDir survives reboots of
// lab hosts (Docker data roots, the state file); RunDir holds sockets, pid
// files and exec roots, like /run does.
type Layout struct {
	StateDir string
	RunDir   string
}

// DefaultLayout is where the lab lives on a machine.
func DefaultLayout() Layout {
	return Layout{StateDir: "/var/lib/clusterctl/lab", RunDir: "/run/clusterctl/lab"}
}

func (l Layout) stateFile() string { return filepath.Join(l.StateDir, "lab.json") }

// hostDataDir is a host's persistent disk: its Docker data root and config.
func (l Layout) hostDataDir(name string) string { return filepath.Join(l.StateDir, "hosts", name) }

// hostRunDir is a host's /run: its sockets, pid file and exec root.
func (l Layout) hostRunDir(name string) string { return filepath.Join(l.RunDir, name) }

// DockerSocket is the unix socket of a host's dockerd, reachable from the
// root namespace without going through the lab network.
func (l Layout) DockerSocket(name string) string {
	return filepath.Join(l.hostRunDir(name), "docker.sock")
}

// PluginDir is the directory that a host's dockerd sees as
// /run/docker/plugins: the host's agent puts its plugin sockets there.
func (l Layout) PluginDir(name string) string {
	return filepath.Join(l.hostRunDir(name), "docker", "plugins")
}

// SharedDir stands in for a SAN: every host reaches it at the same path,
// and block volumes keep their images there.
func (l Layout) SharedDir() string { return filepath.Join(l.StateDir, "shared") }

// HostName is the name of the i-th host (1-based).
func HostName(i int) string { return fmt.Sprintf("host%d", i) }

// nsName is the network namespace (and root-side veth) of a host.
func nsName(host string) string { return nsPrefix + host }

// Plan is the addressing of a lab: the bridge's address and each host's.
type Plan struct {
	Subnet  netip.Prefix
	Gateway netip.Addr
	Hosts   []HostAddr
}

// HostAddr is a host's name and its address on the lab network.
type HostAddr struct {
	Name string
	Addr netip.Addr
}

// PlanAddresses checks the request and gives every host its address: the
// bridge takes the subnet's first address and hostN takes number 10+N, so
// addresses are easy to read (host1 = 10.99.0.11).
func PlanAddresses(subnet string, hosts int) (Plan, error) {
	if hosts < 1 || hosts > MaxHosts {
		return Plan{}, fmt.Errorf("--hosts must be between 1 and %d, got %d", MaxHosts, hosts)
	}
	prefix, err := netip.ParsePrefix(subnet)
	if err != nil || !prefix.Addr().Is4() {
		return Plan{}, fmt.Errorf("--subnet %q is not an IPv4 CIDR such as %s", subnet, DefaultSubnet)
	}
	prefix = prefix.Masked()
	size := 1 << (32 - prefix.Bits())
	if need := hostOffset + hosts + 2; size < need {
		return Plan{}, fmt.Errorf("--subnet %s is too small for %d hosts: use a /%d or larger", prefix, hosts, 32-bitsFor(need))
	}
	plan := Plan{Subnet: prefix, Gateway: prefix.Addr().Next()}
	for i := 1; i <= hosts; i++ {
		addr := prefix.Addr()
		for range hostOffset + i {
			addr = addr.Next()
		}
		plan.Hosts = append(plan.Hosts, HostAddr{Name: HostName(i), Addr: addr})
	}
	return plan, nil
}

// bitsFor is the number of host bits needed to hold n addresses.
func bitsFor(n int) int {
	bits := 0
	for 1<<bits < n {
		bits++
	}
	return bits
}

// hostMAC gives a host's lab interface a MAC derived from its address, so a
// host that boots again keeps its MAC and its peers' ARP caches stay right.
func hostMAC(addr netip.Addr) string {
	b := addr.As4()
	return fmt.Sprintf("02:cc:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3])
}
