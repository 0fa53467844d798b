// Package demo is `make demo` (clusterctl demo): the DockerCon 2015
// migration demo on the lab. A web front end and its database (data on a
// clustervol volume, everything on a clusternet network) are deployed on
// three hosts; while a prober keeps visiting the app, the database moves
// to another host, then a web front end does; after each move the demo
// shows that the address stayed, the counter went on from where it was,
// and how long clients waited. It ends with one line for scripts:
//
//	demo: ok moved=db from=HOST to=HOST ip_kept=true data_kept=true downtime_ms=N
//
// or "demo: failed ..." and an error. It drives the clusterctl binary as a
// user would, printing each command.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/clusterctl/clusterctl/internal/prober"
)

// The visitors' pace, and how long the demo waits for their answers.
const (
	probeEvery  = 50 * time.Millisecond
	waitAnswers = time.Minute
)

// Options say where things are.
type Options struct {
	Bin     string // the clusterctl binary
	Images  string // the sample images directory
	Compose string // samples/dockercon/compose.yml
	Out     io.Writer
	// Context is the lab's context file ("" for the default).
	Context string
}

// demo is one run.
type demo struct {
	opts  Options
	out   io.Writer
	hosts map[string]string // lab host name -> address
	probe *prober.Prober
}

// task is a task as `clusterctl ps -o json` shows it.
type task struct {
	Task  string `json:"task"`
	Host  string `json:"host"`
	State string `json:"state"`
	IP    string `json:"ip"`
}

// Run runs the demo. The lab stays up afterwards, to look around.
func Run(ctx context.Context, opts Options) error {
	d := &demo{opts: opts, out: opts.Out}
	res, err := d.run(ctx)
	if d.probe != nil {
		d.probe.Stop()
	}
	if err != nil {
		fmt.Fprintf(d.out, "\ndemo: failed %s\n", oneLine(err))
		return err
	}
	fmt.Fprintf(d.out, "\ndemo: ok moved=db from=%s to=%s ip_kept=%t data_kept=%t downtime_ms=%d\n",
		res.from, res.to, res.ipKept, res.dataKept, res.gap.Milliseconds())
	return nil
}

// result is what the database's move showed.
type result struct {
	from, to         string
	ipKept, dataKept bool
	gap              time.Duration
}

func (d *demo) run(ctx context.Context) (result, error) {
	var res result
	d.say("1. Three Docker hosts on this machine, each with its own address, dockerd and disk; three managers replicate the cluster's state with Raft.")
	if _, err := d.quiet("lab", "down"); err != nil {
		return res, err
	}
	if err := d.show("lab", "up", "--hosts", "3", "--images", d.opts.Images); err != nil {
		return res, err
	}
	if err := d.readHosts(); err != nil {
		return res, err
	}
	d.say("2. The app: web (two front ends) counts visits in db, whose data is on a clustervol volume; both talk over a clusternet network.")
	if err := d.show("up", "-d", "-f", d.opts.Compose); err != nil {
		return res, err
	}
	if err := d.show("ps"); err != nil {
		return res, err
	}
	d.say("3. Traffic: a visitor every 50 ms, through whichever host runs a web front end.")
	webs, err := d.webAddrs()
	if err != nil {
		return res, err
	}
	d.probe = prober.Start(webs, probeEvery)
	if err := d.probe.WaitAnswers(ctx, 40, waitAnswers); err != nil {
		return res, err
	}
	fmt.Fprintf(d.out, "   %s\n", d.probe.Summary())

	d.say("4. Move the database to another host, with its data and its address, while the visitors keep coming.")
	if res, err = d.moveDB(ctx); err != nil {
		return res, err
	}

	d.say("5. Now a web front end moves too: the visitors go on through the other one, then through both again.")
	if err := d.moveWeb(ctx); err != nil {
		return res, err
	}
	if err := d.show("moves"); err != nil {
		return res, err
	}
	d.say("Look around: bin/clusterctl dashboard (m moves a task, ? for keys), bin/clusterctl ps, bin/clusterctl moves, bin/clusterctl volume ls, bin/clusterctl network inspect dockercon_back. Stop the lab: sudo bin/clusterctl lab down")
	return res, nil
}

// moveDB moves db to another host and checks what the issue asks: the
// same address, no acknowledged visit lost, and how long clients waited.
func (d *demo) moveDB(ctx context.Context) (result, error) {
	var res result
	db, err := d.task("db.1")
	if err != nil {
		return res, err
	}
	to, err := d.target("db", db.Host)
	if err != nil {
		return res, err
	}
	res.from, res.to = db.Host, to
	fmt.Fprintf(d.out, "   db.1 runs on %s at %s; it goes to %s.\n", db.Host, db.IP, to)
	d.probe.Reset()
	before := d.probe.Acked()
	if err := d.show("move", "db", to); err != nil {
		return res, err
	}
	if err := d.probe.WaitAnswers(ctx, 20, waitAnswers); err != nil {
		return res, err
	}
	moved, err := d.task("db.1")
	if err != nil {
		return res, err
	}
	after := d.probe.FirstAbove(before)
	res.ipKept = moved.Host == to && moved.IP == db.IP
	res.dataKept = after > before
	res.gap = d.probe.LongestGap()
	fmt.Fprintf(d.out, "   db.1 now on %s at %s: address kept: %t\n", moved.Host, moved.IP, res.ipKept)
	fmt.Fprintf(d.out, "   the counter was at %d before the move and went on at %d: data kept: %t\n", before, after, res.dataKept)
	fmt.Fprintf(d.out, "   clients waited at most %s; %s\n", res.gap.Round(time.Millisecond), d.probe.Summary())
	if !res.ipKept || !res.dataKept {
		return res, fmt.Errorf("moved=db from=%s to=%s ip_kept=%t data_kept=%t", db.Host, to, res.ipKept, res.dataKept)
	}
	return res, nil
}

// moveWeb moves one web front end to a host without one.
func (d *demo) moveWeb(ctx context.Context) error {
	web, err := d.task("web.1")
	if err != nil {
		return err
	}
	to, err := d.target("web.1", web.Host)
	if err != nil {
		return err
	}
	webs, err := d.webAddrs()
	if err != nil {
		return err
	}
	moving := "http://" + d.hosts[web.Host] + ":8080/"
	d.probe.SetTargets(slices.DeleteFunc(webs, func(u string) bool { return u == moving }))
	d.probe.Reset()
	if err := d.show("move", "web.1", to); err != nil {
		return err
	}
	webs, err = d.webAddrs()
	if err != nil {
		return err
	}
	d.probe.SetTargets(webs)
	if err := d.probe.WaitAnswers(ctx, 20, waitAnswers); err != nil {
		return err
	}
	fmt.Fprintf(d.out, "   web.1 now on %s; clients waited at most %s; %s\n", to, d.probe.LongestGap().Round(time.Millisecond), d.probe.Summary())
	return nil
}

// target is the first host (other than from) the task can move to,
// asked of the managers with a dry run.
func (d *demo) target(task, from string) (string, error) {
	var why []string
	for _, h := range slices.Sorted(maps.Keys(d.hosts)) {
		if h == from {
			continue
		}
		if _, err := d.quiet("move", task, h, "--dry-run"); err != nil {
			why = append(why, h+": "+oneLine(err))
			continue
		}
		return h, nil
	}
	return "", fmt.Errorf("no host can take %s: %s", task, strings.Join(why, "; "))
}

// task reads one task of the app.
func (d *demo) task(name string) (task, error) {
	tasks, err := d.tasks()
	if err != nil {
		return task{}, err
	}
	for _, t := range tasks {
		if t.Task == name {
			return t, nil
		}
	}
	return task{}, fmt.Errorf("no task %s in the app", name)
}

func (d *demo) tasks() ([]task, error) {
	out, err := d.quiet("ps", "-p", "dockercon", "-o", "json")
	if err != nil {
		return nil, err
	}
	var ps struct{ Tasks []task }
	if err := json.Unmarshal([]byte(out), &ps); err != nil {
		return nil, fmt.Errorf("ps -o json: %w", err)
	}
	return ps.Tasks, nil
}

// webAddrs are the URLs of the web front ends that run.
func (d *demo) webAddrs() ([]string, error) {
	tasks, err := d.tasks()
	if err != nil {
		return nil, err
	}
	var urls []string
	for _, t := range tasks {
		if strings.HasPrefix(t.Task, "web.") && strings.HasPrefix(t.State, "running") {
			urls = append(urls, "http://"+d.hosts[t.Host]+":8080/")
		}
	}
	if len(urls) == 0 {
		return nil, errors.New("no web front end runs")
	}
	return urls, nil
}

// readHosts reads the lab hosts' addresses.
func (d *demo) readHosts() error {
	out, err := d.quiet("lab", "status", "-o", "json")
	if err != nil {
		return err
	}
	var st struct {
		Hosts []struct{ Name, Addr string }
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return fmt.Errorf("lab status -o json: %w", err)
	}
	d.hosts = map[string]string{}
	for _, h := range st.Hosts {
		d.hosts[h.Name] = h.Addr
	}
	return nil
}

// say prints a step of the story.
func (d *demo) say(line string) { fmt.Fprintf(d.out, "\n== %s\n", line) }

// show runs a clusterctl command, printing it and its output.
func (d *demo) show(args ...string) error {
	fmt.Fprintf(d.out, "$ clusterctl %s\n", strings.Join(args, " "))
	cmd := d.command(args...)
	w := &indent{w: d.out}
	cmd.Stdout, cmd.Stderr = w, w
	err := cmd.Run()
	w.flush()
	if err != nil {
		return fmt.Errorf("clusterctl %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// quiet runs a clusterctl command and returns its output.
func (d *demo) quiet(args ...string) (string, error) {
	cmd := d.command(args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("clusterctl %s: %s", strings.Join(args, " "), strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

func (d *demo) command(args ...string) *exec.Cmd {
	cmd := exec.Command(d.opts.Bin, args...)
	cmd.Env = os.Environ()
	if d.opts.Context != "" {
		cmd.Env = append(cmd.Env, "CLUSTERCTL_CONTEXT="+d.opts.Context)
	}
	return cmd
}

// indent writes a command's output indented under it, line by line
// (stdout and stderr share it: exec writes to it from one goroutine).
type indent struct {
	w       io.Writer
	partial []byte
}

func (i *indent) Write(p []byte) (int, error) {
	i.partial = append(i.partial, p...)
	for {
		line, rest, ok := strings.Cut(string(i.partial), "\n")
		if !ok {
			return len(p), nil
		}
		if _, err := fmt.Fprintln(i.w, "   "+line); err != nil {
			return 0, err
		}
		i.partial = []byte(rest)
	}
}

// flush writes what is left of an unfinished last line.
func (i *indent) flush() {
	if len(i.partial) > 0 {
		fmt.Fprintln(i.w, "   "+string(i.partial))
		i.partial = nil
	}
}

// oneLine is an error on one line.
func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }
