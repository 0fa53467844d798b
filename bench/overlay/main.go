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
// the baseline, inside the hosts' (the network namespace of each lab
// host's dockerd), entered the same way.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
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
	runs := flag.Int("runs", 7, "pairs of measurements (overlay and hosts back to back; the median is reported)")
	flag.Parse()
	b := &bench{cli: benchcli.New(*bin, "overlay"), runs: *runs}
	b.cli.Finish("overlay", b.run(*images))
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
	release, err := holdCPUsAwake()
	if err != nil {
		return err
	}
	pairs, err := b.compare(clientPID, serverPID)
	release()
	if err != nil {
		return err
	}
	reach, err := b.moves(clientPID)
	if err != nil {
		return err
	}
	b.print(pairs, reach)
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

// holdCPUsAwake asks the kernel's PM QoS for a CPU wake-up latency of 0
// for as long as the returned function is not called, so that idle CPUs
// poll instead of halting. In this VM a halted vCPU takes tens of
// microseconds to wake, which made a 10 µs round trip read anywhere from
// 10 to 80 µs depending on whether a CPU happened to be idle: that is the
// VM's cost, not the network's, and it drowned the difference between the
// two paths. Both paths are measured under the same setting.
func holdCPUsAwake() (func(), error) {
	f, err := os.OpenFile("/dev/cpu_dma_latency", os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("hold CPUs awake for the round trips: %w", err)
	}
	if _, err := f.Write([]byte{0, 0, 0, 0}); err != nil {
		f.Close()
		return nil, fmt.Errorf("hold CPUs awake for the round trips: %w", err)
	}
	return func() { f.Close() }, nil
}

// sample is one path's figures in one run.
type sample struct {
	bytesPerSec  float64
	rtt50, rtt99 time.Duration
}

// pair is one run of both paths, measured back to back.
type pair struct{ over, under sample }

func (p pair) throughputRatio() float64 { return p.over.bytesPerSec / p.under.bytesPerSec }
func (p pair) rttRatio() float64        { return float64(p.over.rtt50) / float64(p.under.rtt50) }

// compare measures the overlay (container to container) and the underlay
// (host to host) in pairs, back to back, the order alternating from one
// pair to the next so that a drift of the VM's speed does not favour
// either. Both ends of both paths are this program entered into the
// namespaces the same way (nsenter), so the paths differ only in the
// network. Each path first streams once untimed: this VM makes the first
// touch of memory it reclaimed slow (see BENCHMARKS.md).
func (b *bench) compare(clientPID, serverPID int) ([]pair, error) {
	over := path{b: b, server: serverPID, client: clientPID, addr: serverIP + ":" + port}
	under := path{b: b, server: b.hosts["host2"].PID, client: b.hosts["host1"].PID, addr: b.hosts["host2"].Addr + ":" + port}
	for _, p := range []path{over, under} {
		if _, err := p.measure(); err != nil {
			return nil, fmt.Errorf("warm-up: %w", err)
		}
	}
	pairs := make([]pair, b.runs)
	for i := range pairs {
		first, second := &over, &under
		if i%2 == 1 {
			first, second = second, first
		}
		for _, p := range []*path{first, second} {
			s, err := p.measure()
			if err != nil {
				return nil, err
			}
			if p == &over {
				pairs[i].over = s
			} else {
				pairs[i].under = s
			}
		}
	}
	return pairs, nil
}

// path is a client and a server, by the pid whose network namespace each
// runs in.
type path struct {
	b              *bench
	server, client int
	addr           string
}

// measure starts a server, runs the throughput and round-trip clients
// against it and lets it exit.
func (p path) measure() (sample, error) {
	server := p.b.inNetns(p.server, "serve", "-listen", p.addr)
	out, err := server.StdoutPipe()
	if err != nil {
		return sample{}, err
	}
	server.Stderr = os.Stderr
	if err := server.Start(); err != nil {
		return sample{}, err
	}
	defer func() { _ = server.Wait() }() // it exits after the two clients
	line := make([]byte, 10)
	if n, err := out.Read(line); err != nil || !strings.HasPrefix(string(line[:n]), "listening") {
		return sample{}, fmt.Errorf("server at %s did not start: %q %v", p.addr, line[:n], err)
	}
	var s sample
	for _, mode := range []string{"stream", "rr"} {
		raw, err := p.b.inNetns(p.client, "client", "-to", p.addr, "-mode", mode).Output()
		if err != nil {
			return s, fmt.Errorf("client %s to %s: %w", mode, p.addr, err)
		}
		var got result
		if err := json.Unmarshal(raw, &got); err != nil {
			return s, fmt.Errorf("client %s said %q: %w", mode, raw, err)
		}
		if mode == "stream" {
			s.bytesPerSec = got.BytesPerSec
		} else {
			s.rtt50, s.rtt99 = time.Duration(got.RTTp50NS), time.Duration(got.RTTp99NS)
		}
	}
	return s, nil
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

// print reports each figure's median over the pairs, and judges the
// targets on the median of the pairs' ratios: each ratio compares two
// measurements taken seconds apart, so it is steadier than a ratio of
// medians taken over the whole run.
func (b *bench) print(pairs []pair, reach []time.Duration) {
	fmt.Printf("overlay: containers on host1 and host2 over clusternet (VXLAN) against the hosts' own addresses, %d pairs back to back, same run\n\n", len(pairs))
	fmt.Println("| measurement | overlay | hosts (baseline) | ratio, median of pairs | ratios, lowest to highest |")
	fmt.Println("|---|---|---|---|---|")
	thr := ratios(pairs, pair.throughputRatio)
	rtt := ratios(pairs, pair.rttRatio)
	over := func(p pair) sample { return p.over }
	under := func(p pair) sample { return p.under }
	fmt.Printf("| TCP throughput, 1 stream, 3 s | %.0f MiB/s | %.0f MiB/s | %.2fx | %s |\n",
		median(pairs, over, bps)/(1<<20), median(pairs, under, bps)/(1<<20), thr[len(thr)/2], list(thr))
	fmt.Printf("| round trip p50 (1 byte, 20000 times) | %s | %s | %.2fx | %s |\n",
		us(median(pairs, over, p50)), us(median(pairs, under, p50)), rtt[len(rtt)/2], list(rtt))
	fmt.Printf("| round trip p99 | %s | %s | | |\n", us(median(pairs, over, p99)), us(median(pairs, under, p99)))
	med := benchcli.Percentile(reach, 50)
	fmt.Printf("\nendpoint re-created on another host with the same address: reachable again %s after its container runs (median of %d; all: %v)\n\n", us(med), len(reach), reach)
	benchcli.PrintTarget("overlay throughput at least 70% of the hosts'", thr[len(thr)/2] >= throughputTarget, fmt.Sprintf("%.2fx", thr[len(thr)/2]))
	benchcli.PrintTarget("overlay round trip under 2x the hosts'", rtt[len(rtt)/2] < rttTarget, fmt.Sprintf("%.2fx", rtt[len(rtt)/2]))
	benchcli.PrintTarget("moved endpoint reachable again under 1 s", med < reachTarget, us(med))
}

func us[T time.Duration | float64](d T) string {
	return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
}

// The figures of a sample.
func bps(s sample) float64 { return s.bytesPerSec }
func p50(s sample) float64 { return float64(s.rtt50) }
func p99(s sample) float64 { return float64(s.rtt99) }

// median is the median over pairs of one figure of one side.
func median(pairs []pair, side func(pair) sample, figure func(sample) float64) float64 {
	v := make([]float64, len(pairs))
	for i, p := range pairs {
		v[i] = figure(side(p))
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// ratios is every pair's ratio, sorted.
func ratios(pairs []pair, ratio func(pair) float64) []float64 {
	v := make([]float64, len(pairs))
	for i, p := range pairs {
		v[i] = ratio(p)
	}
	slices.Sort(v)
	return v
}

func list(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(s, " ")
}
