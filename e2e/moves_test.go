//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/internal/sampleapp"
	"github.com/clusterctl/clusterctl/migrate"
)

// moveApp is the sample app with db's data on a clustervol volume of the
// given backend.
func moveApp(name, backend string, port int) string {
	return sampleapp.App{Name: name, Port: port, Volume: volumeOpts(backend)}.Compose()
}

// volumeOpts are the driver options of a volume of that backend.
func volumeOpts(backend string) string {
	if backend == "block" {
		return "backend: block, size: 64MiB"
	}
	return "backend: " + backend
}

// moveFixture is one app of the moves test: how to reach its web and
// what it last counted.
type moveFixture struct {
	t    *testing.T
	c    *cli
	app  string
	port int
	hits int // the last count web acknowledged
}

// web is web's URL on the host it runs on now.
func (f *moveFixture) web() string {
	tasks, err := f.c.ps(f.app)
	if err != nil {
		return ""
	}
	for _, h := range f.c.status().Hosts {
		if h.Name == tasks["web.1"].Host {
			return fmt.Sprintf("http://%s:%d/", h.Addr, f.port)
		}
	}
	return ""
}

// hit counts once more through web and checks that the count goes on
// from the last acknowledged one: no acknowledged increment was lost.
func (f *moveFixture) hit(timeout time.Duration) webHit {
	f.t.Helper()
	var h webHit
	eventually(f.t, timeout, f.app+": web counts in db", func() error {
		var err error
		h, err = getHit(f.web())
		return err
	})
	if h.Hits <= f.hits {
		f.t.Fatalf("%s: web counted %d after %d was acknowledged: data lost", f.app, h.Hits, f.hits)
	}
	f.hits = h.Hits
	return h
}

// task is a task of the app as ps shows it.
func (f *moveFixture) task(name string) psTask {
	f.t.Helper()
	tasks, err := f.c.ps(f.app)
	if err != nil {
		f.t.Fatal(err)
	}
	return tasks[name]
}

// moveResult is `clusterctl move -o json`'s report.
type moveResult struct {
	State      string `json:"state"`
	Step       string `json:"step"`
	From       string `json:"from"`
	To         string `json:"to"`
	Error      string `json:"error"`
	DowntimeMS int64  `json:"downtime_ms"`
	BytesSent  int64  `json:"bytes_sent"`
}

// move runs clusterctl move and reads its report (also when it failed).
func (f *moveFixture) move(task, to string) (moveResult, error) {
	out, err := f.c.run("move", "-p", f.app, task, to, "-o", "json")
	var r moveResult
	if jerr := json.Unmarshal([]byte(out), &r); jerr != nil && err == nil {
		err = fmt.Errorf("move -o json said %q: %w", out, jerr)
	}
	return r, err
}

// runningCopies lists the hosts where a container of the app's task runs.
func runningCopies(t *testing.T, c *cli, app, name string) []string {
	t.Helper()
	var hosts []string
	for _, h := range c.status().Hosts {
		if h.State != "up" {
			continue
		}
		list, err := dockerAt(t, h.Docker, h.DockerCertPath).ContainerList(context.Background(), container.ListOptions{
			Filters: filters.NewArgs(filters.Arg("name", "^/"+app+"-"+strings.ReplaceAll(name, ".", "-")+"$"))})
		if err != nil {
			t.Fatalf("list containers on %s: %v", h.Name, err)
		}
		if len(list) > 0 {
			hosts = append(hosts, h.Name)
		}
	}
	return hosts
}

// onlyOn checks the task runs on exactly one host, the one given, with
// its address.
func (f *moveFixture) onlyOn(name, host, ip string) {
	f.t.Helper()
	eventually(f.t, 30*time.Second, fmt.Sprintf("%s/%s only on %s", f.app, name, host), func() error {
		got := f.task(name)
		if got.Host != host || !strings.HasPrefix(got.State, "running") || got.IP != ip {
			return fmt.Errorf("ps: %+v, want running on %s at %s", got, host, ip)
		}
		if hosts := runningCopies(f.t, f.c, f.app, name); !slices.Equal(hosts, []string{host}) {
			return fmt.Errorf("running on %v, want only %s", hosts, host)
		}
		return nil
	})
}

// other is a host of the lab that is none of the given ones.
func other(c *cli, not ...string) string {
	for _, h := range c.status().Hosts {
		if !slices.Contains(not, h.Name) {
			return h.Name
		}
	}
	return ""
}

// waitHeld waits until the newest move holds before step, failing at once
// if the move command ended first (say, refused).
func waitHeld(t *testing.T, client *api.Client, step string, done <-chan moveResult) {
	t.Helper()
	eventually(t, 30*time.Second, "the move holds before "+step, func() error {
		select {
		case r := <-done:
			t.Fatalf("the move ended before it reached %s: %+v", step, r)
		default:
		}
		res, err := client.Moves(context.Background())
		if err != nil || len(res.Moves) == 0 || res.Moves[0].Step != step || !res.Moves[0].Active() {
			return fmt.Errorf("moves: %v", err)
		}
		return nil
	})
}

// allUp waits until the cluster sees every host up again.
func allUp(t *testing.T, client *api.Client) {
	t.Helper()
	eventually(t, 60*time.Second, "every host up", func() error {
		res, err := client.Hosts(context.Background(), false)
		if err != nil {
			return err
		}
		for _, h := range res.Hosts {
			if h.State != "up" {
				return fmt.Errorf("%s is %s", h.Name, h.State)
			}
		}
		return nil
	})
}

// TestMoves moves running tasks between the lab's hosts through their real
// dockerd, volume and network plugins: stateful tasks on both volume
// backends and a stateless one keep their IP and their data and web keeps
// counting; a block volume's task leaves a host that is down the same way;
// faults at the steps (target agent killed, target partitioned,
// leader's host stopped, source stopped after the final sync) leave the
// task on exactly one host with its IP and every acknowledged count; a
// drain empties a host of three tasks; bad requests change nothing.
func TestMoves(t *testing.T) {
	c := labCLI(t)
	c.must("lab", "up", "--hosts", "3", "--images", images)
	client := c.client()
	hold := func(step string) {
		t.Helper()
		if _, err := client.SetVar(context.Background(), migrate.HoldVar, step); err != nil {
			t.Fatalf("hold moves before %s: %v", step, err)
		}
	}
	c.must("up", "-d", "-f", writeCompose(t, moveApp("shop", "copy", 8080)))
	c.must("up", "-d", "-f", writeCompose(t, moveApp("blk", "block", 8081)))
	shop := &moveFixture{t: t, c: c, app: "shop", port: 8080}
	blk := &moveFixture{t: t, c: c, app: "blk", port: 8081}
	shop.hit(60 * time.Second)
	blk.hit(60 * time.Second)

	t.Run("stateful, copy backend: same IP, same data, web keeps counting", func(t *testing.T) {
		f := *shop
		f.t, f.c = t, c.with(t)
		db := f.task("db.1")
		to := other(c, "host1", db.Host)
		before := treeHash(t, dataDir(db.Host, "shop_data"))
		r, err := f.move("db", to)
		if err != nil || r.State != "done" {
			t.Fatalf("move db to %s: %+v, %v", to, r, err)
		}
		f.onlyOn("db.1", to, db.IP)
		if after := treeHash(t, dataDir(to, "shop_data")); after != before {
			t.Errorf("data on %s hashes %s, was %s on %s", to, after, before, db.Host)
		}
		if _, err := os.Stat(dataDir(db.Host, "shop_data")); !os.IsNotExist(err) {
			t.Errorf("the old copy on %s is still there: %v", db.Host, err)
		}
		h := f.hit(10 * time.Second)
		t.Logf("db moved %s -> %s at %s, downtime %d ms; web counted %d through %s", db.Host, to, db.IP, r.DowntimeMS, h.Hits, h.DB)
		shop.hits = f.hits
	})

	t.Run("stateful, block backend", func(t *testing.T) {
		f := *blk
		f.t, f.c = t, c.with(t)
		db := f.task("db.1")
		to := other(c, "host1", db.Host)
		r, err := f.move("db.1", to)
		if err != nil || r.State != "done" {
			t.Fatalf("move db to %s: %+v, %v", to, r, err)
		}
		f.onlyOn("db.1", to, db.IP)
		f.hit(10 * time.Second)
		t.Logf("block db moved %s -> %s, downtime %d ms", db.Host, to, r.DowntimeMS)
		blk.hits = f.hits
	})

	t.Run("stateless", func(t *testing.T) {
		f := *shop
		f.t, f.c = t, c.with(t)
		web := f.task("web.1")
		to := other(c, web.Host)
		if r, err := f.move("web", to); err != nil || r.State != "done" {
			t.Fatalf("move web to %s: %+v, %v", to, r, err)
		}
		f.onlyOn("web.1", to, web.IP)
		f.hit(10 * time.Second)
		shop.hits = f.hits
	})

	t.Run("bad input", func(t *testing.T) {
		c := c.with(t)
		db := shop.task("db.1")
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"move", "-p", "shop", "nosuch", "host2"}, `no service "nosuch"`},
			{[]string{"move", "-p", "shop", "db", "host9"}, `no host "host9"`},
			{[]string{"move", "-p", "nosuch", "db", "host2"}, `no app "nosuch"`},
			{[]string{"move", "-p", "shop", "db.x", "host2"}, "want SERVICE or SERVICE.N"},
			{[]string{"move", "-p", "shop", "db", "host1"}, "constraint"},
			{[]string{"move", "-p", "shop", "db", db.Host}, "already runs on " + db.Host},
			{[]string{"move", "db", "host3"}, "several apps have a service"},
			{[]string{"move", "-p", "shop", "db", other(c, "host1", db.Host), "--live"}, "criu"},
		} {
			out, err := c.run(tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Count(strings.TrimSpace(err.Error()), "\n") > 0 {
				t.Errorf("clusterctl %s: %q, %v; want one line with %q", strings.Join(tc.args, " "), out, err, tc.want)
			}
		}
		c.must("up", "-d", "-f", writeCompose(t, sampleapp.App{Name: "loc", Port: 8082, Volume: "local"}.Compose()))
		out, err := c.run("move", "-p", "loc", "db", other(c, "host1", (&moveFixture{t: t, c: c, app: "loc"}).task("db.1").Host))
		if err == nil || !strings.Contains(err.Error(), "local driver") || !strings.Contains(err.Error(), "clustervol") {
			t.Errorf("move of a task with a local volume: %q, %v; want a refusal that says why and how", out, err)
		}
		c.must("down", "-p", "loc", "-v")

		// A second move of a task that is moving is refused.
		hold(migrate.StepSync)
		done := make(chan error, 1)
		to := other(c, "host1", db.Host)
		go func() { _, err := c.run("move", "-p", "shop", "db", to); done <- err }()
		eventually(t, 30*time.Second, "the move holds before sync", func() error {
			res, err := client.Moves(context.Background())
			if err != nil || len(res.Moves) == 0 || res.Moves[0].Step != migrate.StepSync || !res.Moves[0].Active() {
				return fmt.Errorf("moves: %+v %v", res, err)
			}
			return nil
		})
		if out, err := c.run("move", "-p", "shop", "db", "host1"); err == nil || !strings.Contains(err.Error(), "already moving") {
			t.Errorf("second move: %q, %v; want it refused as already moving", out, err)
		}
		hold("none")
		if err := <-done; err != nil {
			t.Fatalf("held move: %v", err)
		}
		(&moveFixture{t: t, c: c, app: "shop"}).onlyOn("db.1", to, db.IP)
		shop.hit(10 * time.Second)
	})

	// faultAt holds moves before step, starts a move of shop's db to the
	// other host db may use, injects fault once the move holds there, lets
	// the moves go on and returns how the move ended.
	faultAt := func(t *testing.T, f *moveFixture, step string, fault func(from, to string)) (db psTask, to string, r moveResult) {
		db = f.task("db.1")
		to = other(c, "host1", db.Host)
		hold(step)
		done := make(chan moveResult, 1)
		go func() {
			r, err := f.move("db", to)
			if err != nil && r.State == "" {
				r.Error = err.Error()
			}
			done <- r
		}()
		waitHeld(t, client, step, done)
		fault(db.Host, to)
		// The leader may have just gone: try until a new one answers.
		eventually(t, 30*time.Second, "moves released", func() error {
			_, err := client.SetVar(context.Background(), migrate.HoldVar, "none")
			return err
		})
		select {
		case r = <-done:
		case <-time.After(2 * time.Minute):
			t.Fatal("the move did not end in 2 minutes")
		}
		return db, to, r
	}

	// rollbackAfter checks that a fault before step rolls the move back to
	// a task on its source, with its IP and data.
	rollbackAfter := func(t *testing.T, step string, fault func(target string), heal func(target string)) {
		f := *shop
		f.t, f.c = t, c.with(t)
		db, to, r := faultAt(t, &f, step, func(_, to string) { fault(to) })
		heal(to)
		allUp(t, client)
		// The fault shows at that step or at a later one before the
		// target runs the task (a pre-copy with nothing new to send needs
		// no answer from the target): either way the move rolls back.
		if r.State != "rolled-back" {
			t.Errorf("move: %+v, want it rolled back", r)
		}
		f.onlyOn("db.1", db.Host, db.IP)
		f.hit(30 * time.Second)
		shop.hits = f.hits
		t.Logf("rolled back: %s", r.Error)
	}

	t.Run("target agent killed before the final sync: rolled back", func(t *testing.T) {
		rollbackAfter(t, migrate.StepSync,
			func(to string) { c.must("lab", "kill", to, "agent") },
			func(to string) { c.must("lab", "revive", to, "agent") })
	})

	t.Run("target partitioned during the pre-copy: rolled back", func(t *testing.T) {
		rollbackAfter(t, migrate.StepPreCopy,
			func(to string) { c.must("lab", "partition", to) },
			func(to string) { c.must("lab", "heal", to) })
	})

	// forwardAfter checks that a move still completes on its target after
	// a fault before step.
	forwardAfter := func(t *testing.T, step string, fault func(from, to string)) {
		f := *shop
		f.t, f.c = t, c.with(t)
		db, to, r := faultAt(t, &f, step, fault)
		if r.State != "done" {
			t.Fatalf("move: %+v, want done", r)
		}
		f.onlyOn("db.1", to, db.IP)
		f.hit(60 * time.Second)
		shop.hits = f.hits
	}

	t.Run("leader lost mid-move: the next leader finishes it", func(t *testing.T) {
		leader := leaderOf(t, client)
		// host1 never runs db: stop the whole host. A leader on db's
		// source or target loses its server only, so that the move's
		// hosts stay up.
		fault, heal := []string{"stop", leader}, []string{"start", leader}
		if leader != "host1" {
			fault, heal = []string{"kill", leader, "server"}, []string{"revive", leader, "server"}
		}
		forwardAfter(t, migrate.StepStop, func(_, _ string) { c.must(append([]string{"lab"}, fault...)...) })
		c.must(append([]string{"lab"}, heal...)...)
		allUp(t, client)
		if now := leaderOf(t, client); now == leader {
			t.Logf("leadership went back to %s", now)
		}
	})

	t.Run("source host stopped after the final sync: the move completes", func(t *testing.T) {
		var from string
		forwardAfter(t, migrate.StepRelease, func(src, _ string) {
			from = src
			c.must("lab", "stop", src)
		})
		c.must("lab", "start", from)
		allUp(t, client)
		to := shop.task("db.1").Host
		eventually(t, 60*time.Second, "no db container left running on "+from, func() error {
			if hosts := runningCopies(t, c, "shop", "db.1"); !slices.Equal(hosts, []string{to}) {
				return fmt.Errorf("db.1 runs on %v", hosts)
			}
			return nil
		})
	})

	t.Run("drain a host of three tasks", func(t *testing.T) {
		c := c.with(t)
		// Gather shop's db and web and blk's db on one host.
		target := shop.task("db.1").Host
		for _, m := range []struct {
			f    *moveFixture
			task string
		}{{blk, "db.1"}, {shop, "web.1"}} {
			if m.f.task(m.task).Host != target {
				if r, err := m.f.move(m.task, target); err != nil || r.State != "done" {
					t.Fatalf("move %s/%s to %s: %+v, %v", m.f.app, m.task, target, r, err)
				}
			}
		}
		before := map[string]psTask{"shop/db.1": shop.task("db.1"), "shop/web.1": shop.task("web.1"), "blk/db.1": blk.task("db.1")}
		out := c.must("drain", target)
		t.Logf("drain %s:\n%s", target, out)
		for name, was := range before {
			app, task, _ := strings.Cut(name, "/")
			f := &moveFixture{t: t, c: c, app: app}
			now := f.task(task)
			if now.Host == target || now.IP != was.IP || !strings.HasPrefix(now.State, "running") {
				t.Errorf("%s after the drain: %+v, want running elsewhere at %s", name, now, was.IP)
			}
		}
		shop.hit(30 * time.Second)
		blk.hit(30 * time.Second)
		if hosts := c.must("hosts"); !strings.Contains(hosts, "draining") {
			t.Errorf("hosts does not show %s draining:\n%s", target, hosts)
		}
		if out, err := shop.move("web", target); err == nil || !strings.Contains(err.Error(), "draining") {
			t.Errorf("move to a draining host: %+v, %v; want it refused", out, err)
		}
		c.must("activate", target)
		if r, err := shop.move("web", target); err != nil || r.State != "done" {
			t.Errorf("move to %s after activate: %+v, %v", target, r, err)
		}
		shop.hit(30 * time.Second)
	})

	t.Run("block db's host stopped: db comes back elsewhere with its IP and data", func(t *testing.T) {
		c := c.with(t)
		f := *blk
		f.t, f.c = t, c
		db := f.task("db.1")
		c.must("lab", "stop", db.Host)
		f.onlyOn("db.1", other(c, "host1", db.Host), db.IP)
		f.hit(60 * time.Second)
		blk.hits = f.hits
		c.must("lab", "start", db.Host)
		allUp(t, client)
		f.onlyOn("db.1", other(c, "host1", db.Host), db.IP)
	})

	moves := c.must("moves")
	t.Logf("moves:\n%s", moves)
}
