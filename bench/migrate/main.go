// Command migrate measures what clients see of a move: a prober
// (internal/prober) sends a request every 10 ms through web (on host1) to db while db, with 256 MiB
// of data on a clustervol volume, moves between host2 and host3 with
// `clusterctl move`; the longest gap between two answered requests is the
// figure. The baseline, in the same run, is the naive move of the same
// (containers run by hand on a cluster network, the data in a host
// directory): stop db, tar its data across to the other host, run it there
// with the same address. Both backends (copy, block) are measured. It
// prints Markdown tables for docs/BENCHMARKS.md and needs root and the
// binary and images that `make build images` writes (make bench does).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/clusterctl/clusterctl/bench/internal/benchcli"
	"github.com/clusterctl/clusterctl/bench/internal/benchtar"
	"github.com/clusterctl/clusterctl/internal/prober"
	"github.com/clusterctl/clusterctl/internal/sampleapp"
)

// Lab paths, as the lab lays them out (lab/layout.go).
const labHosts = "/var/lib/clusterctl/lab/hosts"

// Targets of issue 7.
const (
	gapTarget   = time.Second
	ratioTarget = 10.0
)

// The prober's pace and patience.
const (
	probeEvery   = 10 * time.Millisecond
	probeTimeout = 2 * time.Second
)

func main() {
	benchtar.ServeIfAsked("migrate")
	bin := flag.String("bin", "bin/clusterctl", "clusterctl binary")
	images := flag.String("images", "bin/images", "sample images directory")
	runs := flag.Int("runs", 3, "moves of each kind (the median is reported)")
	sizeMiB := flag.Int("size", 256, "db's data in MiB")
	flag.Parse()
	b := &bench{cli: benchcli.New(*bin, "migrate"), runs: *runs, size: int64(*sizeMiB) << 20}
	b.cli.Finish("migrate", b.run(*images))
}

type bench struct {
	cli   benchcli.CLI
	runs  int
	size  int64
	hosts map[string]benchcli.LabHost
}

// outcome is one move as clients and the mover saw it.
type outcome struct {
	gap      time.Duration // longest time without an answer
	failed   int           // requests that got no answer
	downtime time.Duration // as the move reported it (stopped to verified)
	total    time.Duration
}

func (b *bench) run(images string) error {
	if _, err := b.cli.Run("lab", "down"); err != nil {
		return err
	}
	if _, err := b.cli.Run("lab", "up", "--hosts", "3", "--images", images); err != nil {
		return err
	}
	var err error
	if b.hosts, err = b.cli.LabHosts(); err != nil {
		return err
	}
	results := map[string][]outcome{}
	for i, backend := range []string{"copy", "block"} {
		if results[backend], err = b.ours(backend, 8080+i); err != nil {
			return fmt.Errorf("%s backend: %w", backend, err)
		}
	}
	if results["naive"], err = b.naive(); err != nil {
		return fmt.Errorf("naive move: %w", err)
	}
	b.print(results)
	return nil
}

// compose is the app: db on the backend, web on host1 publishing port.
func (b *bench) compose(app, backend string, port int) string {
	opts := "backend: copy"
	if backend == "block" {
		opts = fmt.Sprintf("backend: block, size: %dMiB", 2*b.size>>20+64)
	}
	return sampleapp.App{Name: app, Port: port, Volume: opts, WebOnHost1: true}.Compose()
}

// ours deploys the app on a backend, fills db's volume and moves db back
// and forth between host2 and host3 with clusterctl move under the prober.
func (b *bench) ours(backend string, port int) ([]outcome, error) {
	app := "mv" + backend
	file := filepath.Join(os.TempDir(), app+".yml")
	if err := os.WriteFile(file, []byte(b.compose(app, backend, port)), 0o644); err != nil {
		return nil, err
	}
	defer os.Remove(file)
	if _, err := b.cli.Run("up", "-d", "-f", file); err != nil {
		return nil, err
	}
	url := fmt.Sprintf("http://%s:%d/", b.hosts["host1"].Addr, port)
	if err := waitAnswer(url); err != nil {
		return nil, err
	}
	host, err := b.taskHost(app, "db.1")
	if err != nil {
		return nil, err
	}
	dir := filepath.Join("/proc", strconv.Itoa(b.hosts[host].PID), "root", labHosts, host, "agent/volumes", app+"_data", "data", "bulk")
	if err := benchtar.Fill(dir, b.size); err != nil {
		return nil, err
	}
	var out []outcome
	for range b.runs {
		to := map[string]string{"host2": "host3", "host3": "host2"}[host]
		p := prober.Start([]string{url}, probeEvery)
		raw, err := b.cli.RunStdout("move", "-p", app, "db", to, "-o", "json")
		o := measured(p)
		if err != nil {
			return nil, err
		}
		var rep struct {
			DowntimeMS int64 `json:"downtime_ms"`
			TotalMS    int64 `json:"total_ms"`
		}
		if err := json.Unmarshal([]byte(raw), &rep); err != nil {
			return nil, fmt.Errorf("move -o json said %q: %w", raw, err)
		}
		o.downtime, o.total = ms(rep.DowntimeMS), ms(rep.TotalMS)
		out = append(out, o)
		host = to
	}
	return out, nil
}

// taskHost is where ps says a task runs.
func (b *bench) taskHost(app, task string) (string, error) {
	raw, err := b.cli.RunStdout("ps", "-p", app, "-o", "json")
	if err != nil {
		return "", err
	}
	var ps struct {
		Tasks []struct{ Task, Host string }
	}
	if err := json.Unmarshal([]byte(raw), &ps); err != nil {
		return "", err
	}
	for _, t := range ps.Tasks {
		if t.Task == task {
			return t.Host, nil
		}
	}
	return "", fmt.Errorf("no task %s in app %s", task, app)
}

// The naive move's network and addresses.
const (
	naiveNet    = "naivenet"
	naiveSubnet = "10.200.60.0/24"
	naiveDBIP   = "10.200.60.10"
	naivePort   = 8090
)

// naive runs db and web by hand (db's data in a host directory) and moves
// db the way one would without clusterctl: stop it, tar its data to the
// other host, run it there with the same address, under the same prober.
func (b *bench) naive() ([]outcome, error) {
	if _, err := b.cli.Run("network", "create", naiveNet, "--subnet", naiveSubnet); err != nil {
		return nil, err
	}
	for _, h := range []string{"host1", "host2", "host3"} {
		if _, err := b.docker(h, "network", "create", "-d", "clusternet", "--ipam-driver", "clusteripam", "--subnet", naiveSubnet, naiveNet); err != nil {
			return nil, err
		}
	}
	host := "host2"
	if err := benchtar.Fill(filepath.Join(naiveDir(host), "bulk"), b.size); err != nil {
		return nil, err
	}
	if err := b.runDB(host); err != nil {
		return nil, err
	}
	if _, err := b.docker("host1", "run", "-d", "--name", "naive-web", "-p", fmt.Sprintf("%d:8080", naivePort),
		"-e", "DB_URL=http://"+naiveDBIP+":7000", "sample/web:latest"); err != nil {
		return nil, err
	}
	if _, err := b.docker("host1", "network", "connect", naiveNet, "naive-web"); err != nil {
		return nil, err
	}
	url := fmt.Sprintf("http://%s:%d/", b.hosts["host1"].Addr, naivePort)
	if err := waitAnswer(url); err != nil {
		return nil, err
	}
	var out []outcome
	for range b.runs {
		to := map[string]string{"host2": "host3", "host3": "host2"}[host]
		p := prober.Start([]string{url}, probeEvery)
		start := time.Now()
		err := b.naiveMove(host, to)
		if err == nil {
			err = waitAnswer(url)
		}
		total := time.Since(start)
		o := measured(p)
		if err != nil {
			return nil, err
		}
		o.total = total
		out = append(out, o)
		host = to
	}
	return out, nil
}

// naiveMove stops db on from, streams its data to to, removes the old
// container and its data, and runs db on to with the same address.
func (b *bench) naiveMove(from, to string) error {
	if _, err := b.docker(from, "stop", "naive-db"); err != nil {
		return err
	}
	if err := os.RemoveAll(naiveDir(to)); err != nil {
		return err
	}
	if _, _, err := benchtar.Stream(b.cli, from, b.hosts[to], naiveDir(from), naiveDir(to)); err != nil {
		return err
	}
	if _, err := b.docker(from, "rm", "naive-db"); err != nil {
		return err
	}
	if err := b.runDB(to); err != nil {
		return err
	}
	return os.RemoveAll(naiveDir(from))
}

// naiveDir is where the naive db keeps its data on a host's disk.
func naiveDir(host string) string { return filepath.Join(labHosts, host, "naive-data") }

// runDB runs the naive db on host with its data directory and address.
func (b *bench) runDB(host string) error {
	_, err := b.docker(host, "run", "-d", "--name", "naive-db", "--network", naiveNet, "--ip", naiveDBIP,
		"-v", naiveDir(host)+":/data", "sample/kvdb:latest")
	return err
}

// docker runs the docker CLI against a lab host's engine.
func (b *bench) docker(host string, args ...string) (string, error) {
	out, err := exec.Command("docker", append([]string{"-H", "unix://" + b.hosts[host].DockerSocket}, args...)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("docker on %s %s: %w: %s", host, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// waitAnswer waits until url answers 200.
func waitAnswer(url string) error {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if answered(url) {
			return nil
		}
		time.Sleep(probeEvery)
	}
	return fmt.Errorf("%s did not answer within a minute", url)
}

// client checks that the app answers: no connection reuse, so that each
// request goes through web to db afresh.
var client = &http.Client{Timeout: probeTimeout, Transport: &http.Transport{DisableKeepAlives: true}}

// answered says whether one GET of url got a 200.
func answered(url string) bool {
	resp, err := client.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// measured is what the prober saw of one move.
func measured(p *prober.Prober) outcome {
	p.Stop()
	return outcome{gap: p.LongestGap(), failed: p.Failed()}
}

func (b *bench) print(r map[string][]outcome) {
	naive := medianOf(r["naive"], func(o outcome) time.Duration { return o.gap })
	fmt.Printf("migrate: a request every %s through web (host1) to db (%d MiB of data) while db moves between host2 and host3, median of %d, same run\n\n",
		probeEvery, b.size>>20, b.runs)
	fmt.Println("| move | longest gap (median) | all gaps | failed requests | reported downtime | whole move | naive / this |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for _, kind := range []string{"copy", "block", "naive"} {
		os := r[kind]
		gap := medianOf(os, func(o outcome) time.Duration { return o.gap })
		fmt.Printf("| %s | %s | %s | %s | %s | %s | %.1fx |\n", label(kind), gap.Round(time.Millisecond), gaps(os),
			failures(os), medianOf(os, func(o outcome) time.Duration { return o.downtime }).Round(time.Millisecond),
			medianOf(os, func(o outcome) time.Duration { return o.total }).Round(time.Millisecond), naive.Seconds()/gap.Seconds())
	}
	fmt.Println()
	for _, kind := range []string{"copy", "block"} {
		gap := medianOf(r[kind], func(o outcome) time.Duration { return o.gap })
		benchcli.PrintTarget(kind+" backend: longest gap under 1 s", gap < gapTarget, gap.Round(time.Millisecond).String())
		benchcli.PrintTarget(kind+" backend: at least 10x shorter than the naive move", naive.Seconds()/gap.Seconds() >= ratioTarget,
			fmt.Sprintf("%.1fx", naive.Seconds()/gap.Seconds()))
	}
}

func label(kind string) string {
	switch kind {
	case "naive":
		return "naive (stop, tar across, run on the target)"
	}
	return "clusterctl move, " + kind + " backend"
}

func gaps(os []outcome) string {
	s := make([]string, len(os))
	for i, o := range os {
		s[i] = o.gap.Round(time.Millisecond).String()
	}
	return strings.Join(s, " ")
}

func failures(os []outcome) string {
	s := make([]string, len(os))
	for i, o := range os {
		s[i] = strconv.Itoa(o.failed)
	}
	return strings.Join(s, " ")
}

func medianOf(os []outcome, f func(outcome) time.Duration) time.Duration {
	d := make([]time.Duration, len(os))
	for i, o := range os {
		d[i] = f(o)
	}
	return benchcli.Percentile(d, 50)
}

func ms(n int64) time.Duration { return time.Duration(n) * time.Millisecond }
