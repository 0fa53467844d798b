// Command overlay measures the clusternet overlay on a 3-host lab: TCP
// throughput and round-trip time between two containers on different
// hosts over the overlay, against the same between the hosts' own
// addresses in the same run, and the time for an endpoint re-created on
// another host with the same address to be reachable again. It prints
// Markdown tables for docs/BENCHMARKS.md. It needs root, nsenter and the
// binary and images that `make build images` writes (make bench does).
//
// The measuring ends run this same program (`overlay serve`, `overlay
// client`) inside the containers' network namespaces (nsenter) and, for
// the baseline, inside the hosts' (clusterctl lab exec).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/clusterctl/clusterctl/bench/internal/benchcli"
	"github.com/clusterctl/clusterctl/engine"
)

// The benchmark's network and addresses.
const (
	netName  = "benchnet"
	subnet   = "10.200.50.0/24"
	serverIP = "10.200.50.12"
	clientIP = "10.200.50.11"
	port     = "9200"
)

// Targets of issue 6.
const (
	throughputTarget = 0.70
	rttTarget        = 2.0
	reachTarget      = time.Second
)

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "serve" || os.Args[1] == "client") {
		if err := toolMain(os.Args[1], os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "overlay "+os.Args[1]+": "+err.Error())
			os.Exit(1)
		}
		return
	}
	bin := flag.String("bin", "bin/clusterctl", "clusterctl binary")
	images := flag.String("images", "bin/images", "sample images directory")
	runs := flag.Int("runs", 3, "repetitions of each measurement (the median is reported)")
	flag.Parse()
	b := &bench{cli: benchcli.New(*bin, "overlay"), runs: *runs}
	err := b.run(*images)
	if _, derr := b.cli.Run("lab", "down"); err == nil {
		err = derr
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "overlay: "+err.Error())
		os.Exit(1)
	}
}

type bench struct {
	cli   benchcli.CLI
	runs  int
	self  string
	hosts map[string]benchcli.LabHost
}

// result is what `overlay client` reports.
type result struct {
	BytesPerSec float64 `json:"bytes_per_sec,omitempty"`
	RTTp50NS    int64   `json:"rtt_p50_ns,omitempty"`
	RTTp99NS    int64   `json:"rtt_p99_ns,omitempty"`
	ReachNS     int64   `json:"reach_ns,omitempty"`
}

func (b *bench) run(images string) error {
	var err error
	if b.self, err = os.Executable(); err != nil {
		return err
	}
	if _, err := b.cli.Run("lab", "down"); err != nil {
		return err
	}
	if _, err := b.cli.Run("lab", "up", "--hosts", "3", "--images", images); err != nil {
		return err
	}
	if b.hosts, err = b.cli.LabHosts(); err != nil {
		return err
	}
	if _, err := b.cli.Run("network", "create", netName, "--subnet", subnet); err != nil {
		return err
	}
	for _, h := range []string{"host1", "host2", "host3"} {
		if _, err := b.docker(h, "network", "create", "-d", "clusternet", "--ipam-driver", "clusteripam", "--subnet", subnet, netName); err != nil {
			return err
		}
	}
	clientPID, err := b.runContainer("host1", "c1", clientIP)
	if err != nil {
		return err
	}
	serverPID, err := b.runContainer("host2", "c2", serverIP)
	if err != nil {
		return err
	}
	over, under, err := b.compare(clientPID, serverPID)
	if err != nil {
		return err
	}
	reach, err := b.moves(clientPID)
	if err != nil {
		return err
	}
	b.print(over, under, reach)
	return nil
}

// docker runs the docker CLI against a lab host's engine.
func (b *bench) docker(host string, args ...string) (string, error) {
	out, err := exec.Command("docker", append([]string{"-H", "unix://" + b.hosts[host].DockerSocket}, args...)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("docker on %s %s: %w: %s", host, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// runContainer starts kvdb on the overlay at ip and returns its pid.
func (b *bench) runContainer(host, name, ip string) (int, error) {
	d, err := engine.Connect("unix://" + b.hosts[host].DockerSocket)
	if err != nil {
		return 0, err
	}
	defer d.Close()
	return startContainer(d, name, ip)
}

func startContainer(d *client.Client, name, ip string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ep := &network.EndpointSettings{IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: ip}}
	c, err := d.ContainerCreate(ctx, &container.Config{Image: "sample/kvdb:latest"}, &container.HostConfig{NetworkMode: netName},
		&network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{netName: ep}}, nil, name)
	if err != nil {
		return 0, fmt.Errorf("create %s: %w", name, err)
	}
	if err := d.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		return 0, fmt.Errorf("start %s: %w", name, err)
	}
	info, err := d.ContainerInspect(ctx, c.ID)
	if err != nil {
		return 0, err
	}
	return info.State.Pid, nil
}

// inNetns runs this program's tool inside a process's network namespace.
func (b *bench) inNetns(pid int, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"-t", strconv.Itoa(pid), "-n", b.self}, args...)...)
}

// inHost runs this program's tool inside a lab host.
func (b *bench) inHost(host string, args ...string) *exec.Cmd {
	return b.cli.Command(append([]string{"lab", "exec", host, "--", b.self}, args...)...)
}

// sample is one path's medians: throughput and round trip.
type sample struct {
	bytesPerSec  float64
	rtt50, rtt99 time.Duration
}

// compare measures the overlay (container to container) and the underlay
// (host to host) in turns.
func (b *bench) compare(clientPID, serverPID int) (over, under sample, err error) {
	var overs, unders []result
	for range b.runs {
		r, err := b.measure(b.inNetns(serverPID, "serve", "-listen", serverIP+":"+port), func(args ...string) *exec.Cmd {
			return b.inNetns(clientPID, args...)
		}, serverIP+":"+port)
		if err != nil {
			return over, under, fmt.Errorf("overlay: %w", err)
		}
		overs = append(overs, r)
		addr := b.hosts["host2"].Addr + ":" + port
		r, err = b.measure(b.inHost("host2", "serve", "-listen", addr), func(args ...string) *exec.Cmd {
			return b.inHost("host1", args...)
		}, addr)
		if err != nil {
			return over, under, fmt.Errorf("underlay: %w", err)
		}
		unders = append(unders, r)
	}
	return medianOf(overs), medianOf(unders), nil
}

// measure starts a server, runs the throughput and round-trip clients
// against it and stops it.
func (b *bench) measure(server *exec.Cmd, client func(args ...string) *exec.Cmd, addr string) (result, error) {
	out, err := server.StdoutPipe()
	if err != nil {
		return result{}, err
	}
	server.Stderr = os.Stderr
	if err := server.Start(); err != nil {
		return result{}, err
	}
	defer func() { _ = server.Wait() }() // it exits after the two clients
	line := make([]byte, 10)
	if n, err := out.Read(line); err != nil || !strings.HasPrefix(string(line[:n]), "listening") {
		return result{}, fmt.Errorf("server did not start: %q %v", line[:n], err)
	}
	var r result
	for _, mode := range []string{"stream", "rr"} {
		raw, err := client("client", "-to", addr, "-mode", mode).Output()
		if err != nil {
			return r, fmt.Errorf("client %s: %w", mode, err)
		}
		var got result
		if err := json.Unmarshal(raw, &got); err != nil {
			return r, fmt.Errorf("client %s said %q: %w", mode, raw, err)
		}
		r.BytesPerSec = max(r.BytesPerSec, got.BytesPerSec)
		if got.RTTp50NS > 0 {
			r.RTTp50NS, r.RTTp99NS = got.RTTp50NS, got.RTTp99NS
		}
	}
	return r, nil
}

// moves re-creates the server's endpoint on another host with the same
// address, alternating host3 and host2, and times how soon the client
// reaches it once the new container runs.
func (b *bench) moves(clientPID int) ([]time.Duration, error) {
	var out []time.Duration
	from, to := "host2", "host3"
	name := "c2"
	for i := range b.runs {
		if _, err := b.docker(from, "rm", "-f", name); err != nil {
			return nil, err
		}
		next := fmt.Sprintf("c%d", 3+i)
		probe := b.inNetns(clientPID, "client", "-to", serverIP+":7000", "-mode", "reach")
		probeOut, err := probe.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := probe.Start(); err != nil {
			return nil, err
		}
		started := time.Now()
		if _, err := b.runContainer(to, next, serverIP); err != nil {
			_ = probe.Process.Kill()
			return nil, err
		}
		running := time.Since(started)
		var r result
		err = json.NewDecoder(probeOut).Decode(&r)
		_ = probe.Wait()
		if err != nil {
			return nil, fmt.Errorf("reach probe: %w", err)
		}
		// The probe started dialling before the container was made: what
		// counts is the time after it ran.
		out = append(out, max(0, time.Duration(r.ReachNS)-running))
		from, to, name = to, from, next
	}
	return out, nil
}

func (b *bench) print(over, under sample, reach []time.Duration) {
	fmt.Printf("overlay: containers on host1 and host2 over clusternet (VXLAN) against the hosts' own addresses, median of %d, same run\n\n", b.runs)
	fmt.Println("| measurement | overlay | hosts (baseline) | ratio |")
	fmt.Println("|---|---|---|---|")
	fmt.Printf("| TCP throughput, 1 stream, 3 s | %.0f MiB/s | %.0f MiB/s | %.2fx |\n", over.bytesPerSec/(1<<20), under.bytesPerSec/(1<<20), over.bytesPerSec/under.bytesPerSec)
	fmt.Printf("| round trip p50 (1 byte, 2000 times) | %s | %s | %.2fx |\n", us(over.rtt50), us(under.rtt50), float64(over.rtt50)/float64(under.rtt50))
	fmt.Printf("| round trip p99 | %s | %s | %.2fx |\n", us(over.rtt99), us(under.rtt99), float64(over.rtt99)/float64(under.rtt99))
	med := benchcli.Percentile(reach, 50)
	fmt.Printf("\nendpoint re-created on another host with the same address: reachable again %s after its container runs (median of %d; all: %v)\n\n", us(med), len(reach), reach)
	benchcli.PrintTarget("overlay throughput at least 70% of the hosts'", over.bytesPerSec/under.bytesPerSec >= throughputTarget, fmt.Sprintf("%.2fx", over.bytesPerSec/under.bytesPerSec))
	benchcli.PrintTarget("overlay round trip under 2x the hosts'", float64(over.rtt50)/float64(under.rtt50) < rttTarget, fmt.Sprintf("%.2fx", float64(over.rtt50)/float64(under.rtt50)))
	benchcli.PrintTarget("moved endpoint reachable again under 1 s", med < reachTarget, us(med))
}

func us(d time.Duration) string { return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond)) }

// medianOf takes each figure's median over runs.
func medianOf(rs []result) sample {
	var bps []time.Duration // as a sortable number
	var r50, r99 []time.Duration
	for _, r := range rs {
		bps = append(bps, time.Duration(r.BytesPerSec))
		r50, r99 = append(r50, time.Duration(r.RTTp50NS)), append(r99, time.Duration(r.RTTp99NS))
	}
	return sample{bytesPerSec: float64(benchcli.Percentile(bps, 50)), rtt50: benchcli.Percentile(r50, 50), rtt99: benchcli.Percentile(r99, 50)}
}
