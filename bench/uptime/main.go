// Command uptime measures how long `clusterctl up -d` of samples/hello
// takes on a 3-host lab, against `docker-compose up -d` of the same file on
// one lab host, measured in the same run, as the baseline: deploying
// across a cluster should cost no more than Compose does on one host
// (target: ratio <= 1.0).
//
// It brings up its own lab (with a context file of its own in a temp dir),
// and for each round times both tools, alternating which goes first, each
// from the same state: the sample images present on every host and no
// container on any. After each up it checks with docker ps on the hosts
// that the app really runs (db and web running, db healthy) and fails
// otherwise; each down (with -v) is not timed. It prints the medians, their
// ratio and a per-phase breakdown read from the containers' own
// timestamps (created, started, healthy), and for clusterctl from the
// managers' events (when the leader learnt that db was healthy), so that
// a difference can be attributed rather than guessed; -logs keeps the
// managers' and agents' logs too. It also asks web for its page after
// each up, untimed, and reports whether web reached db. The lab is always
// torn down at the end, on failure and on Ctrl-C too. It needs root,
// docker-compose 1.29, the docker CLI, and the binary and images that
// `make build images` write (make bench does).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/bench/internal/benchcli"
	"github.com/clusterctl/clusterctl/contextfile"
	"github.com/clusterctl/clusterctl/lab"
	"github.com/clusterctl/clusterctl/store"
)

// The two projects. Different names, so that a leftover of one can never
// pass for the other in the checks.
const (
	appName  = "hello"
	baseName = "hellobase"
	hosts    = 3
)

// Compose's labels, which clusterctl puts on its containers too.
const (
	labelProject = "com.docker.compose.project"
	labelService = "com.docker.compose.service"
)

// images must be on every host before each up, so that neither tool pulls
// or loads anything while it is timed.
var images = []string{"sample/kvdb:latest", "sample/web:latest"}

// options are the flags.
type options struct {
	bin, images, compose, file, output string
	rounds                             int
	logs                               string
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "bin/clusterctl", "clusterctl binary")
	flag.StringVar(&o.images, "images", "bin/images", "image archives loaded into every lab host")
	flag.StringVar(&o.compose, "docker-compose", "/usr/bin/docker-compose", "docker-compose binary (the baseline)")
	flag.StringVar(&o.file, "f", "samples/hello/compose.yml", "Compose file both tools deploy")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds, each timing both tools once (the median is reported)")
	flag.StringVar(&o.output, "o", "text", "output: text (a Markdown table) or json")
	flag.StringVar(&o.logs, "logs", "", "copy the lab hosts' manager, agent and dockerd logs to this directory before lab down")
	flag.Parse()
	if err := o.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "uptime: "+err.Error())
		os.Exit(2)
	}
	// Ctrl-C or SIGTERM cancels the command in flight (its process is
	// killed) and run returns, so the lab still comes down: a lab left
	// behind would refuse the next `lab up` and hold the subnet.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx, o)
	if err == nil {
		err = res.print(os.Stdout, o.output)
	}
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("interrupted: %w", err)
		}
		fmt.Fprintln(os.Stderr, "uptime: "+err.Error())
		os.Exit(1)
	}
}

// validate fails early, before a lab exists, on what would fail later.
func (o *options) validate() error {
	if o.rounds < 1 {
		return fmt.Errorf("-rounds %d: need at least 1", o.rounds)
	}
	if o.output != "text" && o.output != "json" {
		return fmt.Errorf("-o %q: text or json", o.output)
	}
	if os.Geteuid() != 0 {
		return errors.New("the lab needs root: run it with sudo")
	}
	for _, p := range []*string{&o.bin, &o.file, &o.images} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return err
		}
		if _, err := os.Stat(abs); err != nil {
			return fmt.Errorf("%w (run 'make build images' first)", err)
		}
		*p = abs
	}
	if _, err := exec.LookPath(o.compose); err != nil {
		return fmt.Errorf("docker-compose, the baseline, is needed: %w", err)
	}
	if _, err := exec.LookPath("docker"); err != nil {
		return fmt.Errorf("the docker CLI checks both apps: %w", err)
	}
	return nil
}

// bench is one run: its lab and the commands it runs.
type bench struct {
	o       options
	context string             // the lab's context file, private to this run
	hosts   []contextfile.Host // the lab's hosts, host1 first
	events  *recorder          // the managers' events, for clusterctl's timeline
}

// run refuses a lab that is already up (it is someone else's: tearing it
// down at the end would destroy their work), brings up its own and always
// tears it down.
func run(ctx context.Context, o options) (res *result, err error) {
	if up := runningLab(ctx); len(up) > 0 {
		return nil, fmt.Errorf("a lab is already up (%s); uptime brings up its own 3-host lab and "+
			"tears it down at the end, so it will not touch this one: run 'clusterctl lab down' first if it is yours",
			strings.Join(up, ", "))
	}
	dir, err := os.MkdirTemp("", "uptime-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	b := &bench{o: o, context: filepath.Join(dir, "context.json")}
	progress("lab up --hosts %d", hosts)
	if _, err := b.clusterctl(ctx, "lab", "up", "--hosts", fmt.Sprint(hosts), "--images", o.images); err != nil {
		if strings.Contains(err.Error(), "a lab is already up") {
			// Another lab came up since the check: not ours to remove.
			return nil, err
		}
		return nil, errors.Join(err, b.labDown())
	}
	defer func() {
		if o.logs != "" {
			err = errors.Join(err, b.saveLogs(o.logs))
		}
		err = errors.Join(err, b.labDown())
	}()
	c, err := contextfile.Load(b.context)
	if err != nil {
		return nil, err
	}
	if len(c.Hosts) != hosts {
		return nil, fmt.Errorf("the lab has %d hosts, want %d", len(c.Hosts), hosts)
	}
	b.hosts = c.Hosts
	// The stream ends before the lab goes down (defers run last first).
	ectx, stopEvents := context.WithCancel(ctx)
	defer stopEvents()
	client, err := c.Client()
	if err != nil {
		return nil, err
	}
	b.events = record(ectx, client)
	return b.measure(ctx)
}

// runningLab names the hosts of a lab on this machine that are not down
// (up, partitioned or stopped): a lab someone is using. It reads the lab's
// state as `clusterctl lab status` does.
func runningLab(ctx context.Context) []string {
	st, err := lab.New(io.Discard, "").Status(ctx)
	if err != nil {
		return nil // no lab recorded
	}
	var up []string
	for _, h := range st.Hosts {
		if h.State != "down" {
			up = append(up, h.Name+" "+h.State)
		}
	}
	return up
}

// labDown removes the lab. It ignores the run's context: after Ctrl-C the
// lab must still come down.
func (b *bench) labDown() error {
	progress("lab down")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := b.clusterctl(ctx, "lab", "down")
	return err
}

// saveLogs copies every host's server.log, agent.log and dockerd.log to
// dir/hostN/, since lab down removes them: they are where a slow phase is
// explained (when the agent reported db healthy, when the leader started
// web). The progress lines give each up's start time to match them to.
func (b *bench) saveLogs(dir string) error {
	var errs []error
	for _, h := range b.hosts {
		to := filepath.Join(dir, h.Name)
		if err := os.MkdirAll(to, 0o755); err != nil {
			return err
		}
		for _, name := range []string{"server.log", "agent.log", "dockerd.log"} {
			data, err := os.ReadFile(filepath.Join(lab.DefaultLayout().StateDir, "hosts", h.Name, name))
			if err == nil {
				err = os.WriteFile(filepath.Join(to, name), data, 0o644)
			}
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	progress("logs of the lab hosts saved in %s", dir)
	return errors.Join(errs...)
}

// tool is one of the two ways to deploy the file: its up is timed, its
// down is not.
type tool struct {
	name    string
	project string
	up      func(context.Context) error
	down    func(context.Context) error
	// hosts are where its containers are looked for.
	hosts []contextfile.Host
}

// measure runs the rounds. The order of the two tools alternates from one
// round to the next, so that neither always runs on a host that has just
// been through the other's down (page cache, dockerd's own state).
func (b *bench) measure(ctx context.Context) (*result, error) {
	base := tool{
		name: "docker-compose", project: baseName, hosts: b.hosts[:1],
		up:   func(ctx context.Context) error { _, err := b.dockerCompose(ctx, "up", "-d"); return err },
		down: func(ctx context.Context) error { _, err := b.dockerCompose(ctx, "down", "-v"); return err },
	}
	cc := tool{
		name: "clusterctl", project: appName, hosts: b.hosts,
		up: func(ctx context.Context) error {
			_, err := b.clusterctl(ctx, "up", "-d", "-f", b.o.file, "-p", appName)
			return err
		},
		down: func(ctx context.Context) error { _, err := b.clusterctl(ctx, "down", "-v", "-p", appName); return err },
	}
	res := &result{
		Rounds: b.o.rounds, Hosts: hosts, File: b.o.file,
		Baseline:   measurement{Tool: base.name, Command: fmt.Sprintf("DOCKER_HOST=%s docker-compose -f %s -p %s up -d", composeHost(b.hosts[0]), b.o.file, baseName)},
		Clusterctl: measurement{Tool: cc.name, Command: fmt.Sprintf("clusterctl up -d -f %s -p %s", b.o.file, appName)},
		Target:     1.0,
	}
	for r := range b.o.rounds {
		order := []struct {
			t tool
			m *measurement
		}{{base, &res.Baseline}, {cc, &res.Clusterctl}}
		if r%2 == 1 {
			slices.Reverse(order)
		}
		for _, x := range order {
			s, err := b.timeUp(ctx, x.t)
			if err != nil {
				return nil, fmt.Errorf("round %d: %s: %w", r+1, x.t.name, err)
			}
			progress("round %d: %s up -d %.2fs (%s)", r+1, x.t.name, s.Seconds, s.phases())
			x.m.Runs = append(x.m.Runs, s)
		}
	}
	res.Baseline.summarize()
	res.Clusterctl.summarize()
	res.Ratio = res.Clusterctl.Median / res.Baseline.Median
	res.TargetMet = res.Ratio <= res.Target
	return res, nil
}

// timeUp checks the starting state, times one up, checks that the app
// runs, reads its timeline and asks web for its page, then takes the app
// down again.
func (b *bench) timeUp(ctx context.Context, t tool) (sample, error) {
	if err := b.waitClean(ctx); err != nil {
		return sample{}, err
	}
	start := time.Now()
	err := t.up(ctx)
	end := time.Now()
	if err != nil {
		return sample{}, err
	}
	app, err := b.running(ctx, t)
	if err != nil {
		return sample{}, fmt.Errorf("after up: %w", err)
	}
	s := app.timeline(start, end)
	s.StartedAt = start
	s.WebServes = b.webServes(ctx, app["web"].host)
	if err := t.down(ctx); err != nil {
		return sample{}, err
	}
	if t.project == appName {
		if err := b.events.split(&s, app, start, end); err != nil {
			return sample{}, err
		}
	}
	return s, nil
}

// webServes says whether web, asked for its page, counted a hit in db.
// It is not what is measured, nor a condition of success: both tools
// report the app up once its containers run, and what is compared is
// their up. It is recorded because a clusterctl app whose db and web land
// on different hosts runs but cannot work until cross-host networks exist
// (web finds no db), and the figures should not hide that.
func (b *bench) webServes(ctx context.Context, host string) bool {
	var addr string
	for _, h := range b.hosts {
		if h.Name == host {
			addr = h.Addr
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(addr, "8080")+"/", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var page struct{ Hits int64 }
	return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&page) == nil && page.Hits > 0
}

// waitClean waits until no container is left on any host and the images
// are on every host: the state both tools start from. A down returns once
// its tool considers the app gone; if Docker still holds a container a
// moment later, the next up waits for it rather than racing it, and the
// wait is reported.
func (b *bench) waitClean(ctx context.Context) error {
	start := time.Now()
	deadline := start.Add(30 * time.Second)
	var first error
	for {
		err := b.clean(ctx)
		if err == nil {
			if first != nil {
				progress("waited %.1fs after the last down for the hosts to be clean (%v)", time.Since(start).Seconds(), first)
			}
			return nil
		}
		if first == nil {
			first = err
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("before up: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// clean says why the hosts are not in the starting state, or nil.
func (b *bench) clean(ctx context.Context) error {
	for _, h := range b.hosts {
		out, err := b.docker(ctx, h, "ps", "-a", "--format", "{{.Names}}")
		if err != nil {
			return err
		}
		if names := strings.Fields(out); len(names) > 0 {
			return fmt.Errorf("%s still has containers: %s", h.Name, strings.Join(names, " "))
		}
		for _, kind := range []string{"volume", "network"} {
			out, err := b.docker(ctx, h, kind, "ls", "-q", "--filter", "label="+labelProject)
			if err != nil {
				return err
			}
			if ids := strings.Fields(out); len(ids) > 0 {
				return fmt.Errorf("%s still has a Compose %s: %s", h.Name, kind, strings.Join(ids, " "))
			}
		}
		if _, err := b.docker(ctx, h, append([]string{"image", "inspect", "--format", "{{.Id}}"}, images...)...); err != nil {
			return fmt.Errorf("%s lacks the sample images: %w", h.Name, err)
		}
	}
	return nil
}

// container is what docker inspect says of one container of the app.
type container struct {
	Name    string
	Created time.Time
	Config  struct{ Labels map[string]string }
	State   struct {
		Status    string
		StartedAt time.Time
		Health    *struct {
			Status string
			Log    []struct {
				End      time.Time
				ExitCode int
			}
		}
	}
	host string
}

// deployed is the app's containers by service.
type deployed map[string]container

// running checks, as docker ps on the hosts shows it, that the tool's
// project runs exactly one db and one web, both running and db healthy,
// and returns their details.
func (b *bench) running(ctx context.Context, t tool) (deployed, error) {
	app := deployed{}
	for _, h := range t.hosts {
		out, err := b.docker(ctx, h, "ps", "-a", "-q", "--filter", "label="+labelProject+"="+t.project)
		if err != nil {
			return nil, err
		}
		ids := strings.Fields(out)
		if len(ids) == 0 {
			continue
		}
		out, err = b.docker(ctx, h, append([]string{"inspect"}, ids...)...)
		if err != nil {
			return nil, err
		}
		var cs []container
		if err := json.Unmarshal([]byte(out), &cs); err != nil {
			return nil, fmt.Errorf("docker inspect on %s: %w", h.Name, err)
		}
		for _, c := range cs {
			c.host = h.Name
			svc := c.Config.Labels[labelService]
			if prev, dup := app[svc]; dup {
				return nil, fmt.Errorf("%s: two containers of %s: %s on %s and %s on %s", t.project, svc, prev.Name, prev.host, c.Name, c.host)
			}
			app[svc] = c
		}
	}
	for _, svc := range []string{"db", "web"} {
		c, ok := app[svc]
		switch {
		case !ok:
			return nil, fmt.Errorf("%s: no %s container on %s", t.project, svc, hostNames(t.hosts))
		case c.State.Status != "running":
			return nil, fmt.Errorf("%s: %s (%s on %s) is %s, not running", t.project, svc, c.Name, c.host, c.State.Status)
		}
	}
	if h := app["db"].State.Health; h == nil || h.Status != "healthy" {
		status := "without a healthcheck"
		if h != nil {
			status = h.Status
		}
		return nil, fmt.Errorf("%s: db is running but %s, not healthy", t.project, status)
	}
	if len(app) != 2 {
		return nil, fmt.Errorf("%s: %d containers, want db and web", t.project, len(app))
	}
	return app, nil
}

// healthyAt is when the first successful probe of c ended: when Docker
// marked it healthy.
func (c container) healthyAt() time.Time {
	for _, l := range c.State.Health.Log {
		if l.ExitCode == 0 {
			return l.End
		}
	}
	return time.Time{}
}

// timeline turns the containers' timestamps into the phases of one up.
// The lab's dockerds run on this machine, so their clock is ours.
func (app deployed) timeline(start, end time.Time) sample {
	db, web := app["db"], app["web"]
	healthy := db.healthyAt()
	return sample{
		Seconds:      end.Sub(start).Seconds(),
		DBHost:       db.host,
		WebHost:      web.host,
		ToDBCreated:  db.Created.Sub(start).Seconds(),
		ToDBStarted:  db.State.StartedAt.Sub(db.Created).Seconds(),
		ToDBHealthy:  healthy.Sub(db.State.StartedAt).Seconds(),
		ToWebCreated: web.Created.Sub(healthy).Seconds(),
		ToWebStarted: web.State.StartedAt.Sub(web.Created).Seconds(),
		ToUpReturned: end.Sub(web.State.StartedAt).Seconds(),
	}
}

// clusterctl runs the binary against the run's own context file.
func (b *bench) clusterctl(ctx context.Context, args ...string) (string, error) {
	return command(ctx, []string{contextfile.EnvVar + "=" + b.context}, b.o.bin, args...)
}

// dockerCompose runs docker-compose on the first host's engine, through
// its local socket, as a user of plain Compose would on that machine.
// (Not its TLS port: Debian's docker-compose 1.29 fails to verify any
// dockerd's certificate with the requests library it ships with, an
// "unable to get local issuer certificate" that Python's ssl, requests
// alone and the docker CLI do not have with the same files.)
func (b *bench) dockerCompose(ctx context.Context, args ...string) (string, error) {
	env := []string{"DOCKER_HOST=" + composeHost(b.hosts[0])}
	return command(ctx, env, b.o.compose, append([]string{"-f", b.o.file, "-p", baseName}, args...)...)
}

// composeHost is the local socket of a lab host's dockerd.
func composeHost(h contextfile.Host) string {
	return "unix://" + lab.DefaultLayout().DockerSocket(h.Name)
}

// docker runs the docker CLI against one host's engine.
func (b *bench) docker(ctx context.Context, h contextfile.Host, args ...string) (string, error) {
	return command(ctx, dockerEnv(h), "docker", args...)
}

// dockerEnv points Docker's tools at a host's engine, with its client
// certificate when it requires TLS.
func dockerEnv(h contextfile.Host) []string {
	env := []string{"DOCKER_HOST=" + h.Docker}
	if h.DockerCertPath != "" {
		env = append(env, "DOCKER_TLS_VERIFY=1", "DOCKER_CERT_PATH="+h.DockerCertPath)
	}
	return env
}

// command runs a program and returns its standard output, or an error
// carrying both outputs. A command that hangs is killed after ten
// minutes, well beyond up's own five-minute timeout.
func command(ctx context.Context, env []string, bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %w: %s%s", filepath.Base(bin), strings.Join(args, " "), err, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.String(), nil
}

func hostNames(hs []contextfile.Host) string {
	var names []string
	for _, h := range hs {
		names = append(names, h.Name)
	}
	return strings.Join(names, ", ")
}

// progress goes to stderr, so that -o json leaves stdout to the result.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "uptime: "+format+"\n", args...)
}

// result is what the run found; -o json prints it as is.
type result struct {
	Rounds     int         `json:"rounds"`
	Hosts      int         `json:"lab_hosts"`
	File       string      `json:"file"`
	Baseline   measurement `json:"baseline"`
	Clusterctl measurement `json:"clusterctl"`
	// Ratio is the clusterctl median over the baseline median.
	Ratio     float64 `json:"ratio"`
	Target    float64 `json:"target_ratio_max"`
	TargetMet bool    `json:"target_met"`
}

// measurement is one tool's runs and their medians.
type measurement struct {
	Tool    string   `json:"tool"`
	Command string   `json:"command"`
	Runs    []sample `json:"runs"`
	// Median is the median wall time of up -d; each phase is the median
	// of that phase.
	Median float64 `json:"median_seconds"`
	Phases sample  `json:"median_phases"`
}

// sample is one timed up and its phases, in seconds, read from the
// containers' timestamps: the command's start, db created, db started, db
// healthy (Docker's first successful probe), web created, web started, the
// command's return. Creating web after db is healthy is each tool's
// reaction to the healthcheck; created to started is Docker's own work.
type sample struct {
	StartedAt time.Time `json:"started_at,omitzero"`
	Seconds   float64   `json:"seconds"`
	DBHost    string    `json:"db_host,omitempty"`
	WebHost   string    `json:"web_host,omitempty"`
	// WebServes: web's page counted a hit in db right after up (not timed).
	WebServes    bool    `json:"web_reached_db"`
	ToDBCreated  float64 `json:"start_to_db_created"`
	ToDBStarted  float64 `json:"db_created_to_started"`
	ToDBHealthy  float64 `json:"db_started_to_healthy"`
	ToWebCreated float64 `json:"db_healthy_to_web_created"`
	ToWebStarted float64 `json:"web_created_to_started"`
	ToUpReturned float64 `json:"web_started_to_returned"`
	// clusterctl only, from the managers' events: db healthy -> web
	// created, split at when the leader appended the heartbeat that
	// reported db healthy, and when it recorded db's task healthy.
	ToHeartbeat   float64 `json:"db_healthy_to_heartbeat,omitempty"`
	ToTaskHealthy float64 `json:"heartbeat_to_task_healthy,omitempty"`
	ToWebCreate   float64 `json:"task_healthy_to_web_created,omitempty"`
}

// phases name the phases of a sample, in order, for the tables and the
// medians.
var phases = []struct {
	name string
	of   func(*sample) *float64
}{
	{"command start -> db created", func(s *sample) *float64 { return &s.ToDBCreated }},
	{"db created -> db started", func(s *sample) *float64 { return &s.ToDBStarted }},
	{"db started -> db healthy", func(s *sample) *float64 { return &s.ToDBHealthy }},
	{"db healthy -> web created", func(s *sample) *float64 { return &s.ToWebCreated }},
	{"web created -> web started", func(s *sample) *float64 { return &s.ToWebStarted }},
	{"web started -> command returned", func(s *sample) *float64 { return &s.ToUpReturned }},
}

// managerPhases split clusterctl's "db healthy -> web created".
var managerPhases = []struct {
	name string
	of   func(*sample) *float64
}{
	{"db healthy -> the leader has the heartbeat reporting it", func(s *sample) *float64 { return &s.ToHeartbeat }},
	{"heartbeat -> db's task recorded healthy", func(s *sample) *float64 { return &s.ToTaskHealthy }},
	{"task recorded healthy -> web created", func(s *sample) *float64 { return &s.ToWebCreate }},
}

// phases is the progress line of a sample.
func (r sample) phases() string {
	var parts []string
	for _, p := range phases {
		_, to, _ := strings.Cut(p.name, "-> ")
		parts = append(parts, fmt.Sprintf("%s %.2f", to, *p.of(&r)))
	}
	s := fmt.Sprintf("at %s: +%s", r.StartedAt.Format("15:04:05.000"), strings.Join(parts, ", +"))
	if r.ToHeartbeat != 0 {
		s += fmt.Sprintf(" (web created: heartbeat %.2f, task healthy +%.2f, created +%.2f)", r.ToHeartbeat, r.ToTaskHealthy, r.ToWebCreate)
	}
	if r.DBHost != "" {
		s += fmt.Sprintf("; db on %s, web on %s, web reached db: %v", r.DBHost, r.WebHost, r.WebServes)
	}
	return s
}

// summarize takes the medians of the runs: of the wall time, and of each
// phase on its own (so the phases need not add up to the median exactly).
func (m *measurement) summarize() {
	med := func(f func(*sample) float64) float64 {
		d := make([]time.Duration, len(m.Runs))
		for i := range m.Runs {
			d[i] = time.Duration(f(&m.Runs[i]) * float64(time.Second))
		}
		return benchcli.Percentile(d, 50).Seconds()
	}
	m.Median = med(func(s *sample) float64 { return s.Seconds })
	m.Phases = sample{Seconds: m.Median}
	for _, p := range append(phases, managerPhases...) {
		*p.of(&m.Phases) = med(func(s *sample) float64 { return *p.of(s) })
	}
}

// print writes the result as Markdown tables for docs/BENCHMARKS.md, or
// as JSON.
func (res *result) print(w io.Writer, output string) error {
	if output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	b, c := res.Baseline, res.Clusterctl
	fmt.Fprintf(w, "| measurement | median of %d | baseline (docker-compose, 1 host) | ratio |\n|---|---|---|---|\n", res.Rounds)
	fmt.Fprintf(w, "| up -d samples/hello (%d-host lab) | %.2fs | %.2fs | %.2fx |\n", res.Hosts, c.Median, b.Median, res.Ratio)
	fmt.Fprintf(w, "\n| phase (median, s) | docker-compose | clusterctl |\n|---|---|---|\n")
	for _, p := range phases {
		fmt.Fprintf(w, "| %s | %.2f | %.2f |\n", p.name, *p.of(&b.Phases), *p.of(&c.Phases))
	}
	fmt.Fprintf(w, "\n| clusterctl: db healthy -> web created (median, s) | |\n|---|---|\n")
	for _, p := range managerPhases {
		fmt.Fprintf(w, "| %s | %.2f |\n", p.name, *p.of(&c.Phases))
	}
	fmt.Fprintf(w, "\nruns (s): docker-compose %s; clusterctl %s\n", seconds(b.Runs), seconds(c.Runs))
	fmt.Fprintf(w, "web reached db right after up (not timed): docker-compose %s, clusterctl %s\n", served(b.Runs), served(c.Runs))
	verdict := "met"
	if !res.TargetMet {
		verdict = "MISSED"
	}
	fmt.Fprintf(w, "target: clusterctl no slower than docker-compose (ratio <= %.1f): %s (%.2fx)\n", res.Target, verdict, res.Ratio)
	return nil
}

// served counts the runs after which web's page worked, and says where
// db and web were when it did not.
func served(rs []sample) string {
	n := 0
	var where []string
	for _, r := range rs {
		if r.WebServes {
			n++
		} else {
			where = append(where, fmt.Sprintf("db on %s, web on %s", r.DBHost, r.WebHost))
		}
	}
	s := fmt.Sprintf("%d/%d", n, len(rs))
	if len(where) > 0 {
		s += " (not when " + strings.Join(where, "; ") + ")"
	}
	return s
}

func seconds(rs []sample) string {
	var s []string
	for _, r := range rs {
		s = append(s, fmt.Sprintf("%.2f", r.Seconds))
	}
	return strings.Join(s, " ")
}

// recorder keeps the managers' events from the lab's start: they say when
// the leader learnt what, which Docker's timestamps cannot.
type recorder struct {
	mu     sync.Mutex
	events []store.Event
	err    error
}

// record streams the events until ctx ends.
func record(ctx context.Context, client *api.Client) *recorder {
	r := &recorder{}
	go func() {
		err := client.Events(ctx, 0, func(ev store.Event) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.events = append(r.events, ev)
			return nil
		})
		if ctx.Err() == nil {
			r.mu.Lock()
			r.err = err
			r.mu.Unlock()
		}
	}()
	return r
}

// split fills s's manager phases for one clusterctl up: the first
// heartbeat after start that reported hello's db healthy, and the first
// write of db's task as healthy. The stream lags the leader by
// milliseconds; it is given a moment to catch up.
func (r *recorder) split(s *sample, app deployed, start, end time.Time) error {
	var heartbeat, taskHealthy time.Time
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		r.mu.Lock()
		events, err := slices.Clone(r.events), r.err
		r.mu.Unlock()
		if err != nil {
			return fmt.Errorf("events: %w", err)
		}
		heartbeat, taskHealthy = firstHealthy(events, start, end)
		if !heartbeat.IsZero() && !taskHealthy.IsZero() {
			break
		}
	}
	if heartbeat.IsZero() || taskHealthy.IsZero() {
		return fmt.Errorf("the managers' events do not show db becoming healthy between %s and %s", start.Format(time.TimeOnly), end.Format(time.TimeOnly))
	}
	healthy := app["db"].healthyAt()
	s.ToHeartbeat = heartbeat.Sub(healthy).Seconds()
	s.ToTaskHealthy = taskHealthy.Sub(heartbeat).Seconds()
	s.ToWebCreate = app["web"].Created.Sub(taskHealthy).Seconds()
	return nil
}

// firstHealthy finds, among events in [start, end], the first heartbeat
// that carried hello's db as healthy and the first put of db's task as
// healthy.
func firstHealthy(events []store.Event, start, end time.Time) (heartbeat, task time.Time) {
	for _, ev := range events {
		if ev.Time.Before(start) || ev.Time.After(end) {
			continue
		}
		switch ev.Type {
		case store.EventHostHeartbeat:
			var h store.Host
			if heartbeat.IsZero() && json.Unmarshal(ev.Object, &h) == nil && slices.ContainsFunc(h.Containers, func(c store.Container) bool {
				return c.Labels[labelProject] == appName && c.Labels[labelService] == "db" && c.Health == "healthy"
			}) {
				heartbeat = ev.Time
			}
		case store.EventTaskPut:
			var t store.Task
			if task.IsZero() && json.Unmarshal(ev.Object, &t) == nil && t.App == appName && t.Service == "db" && t.Health == "healthy" {
				task = ev.Time
			}
		}
	}
	return heartbeat, task
}
