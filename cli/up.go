package cli

import (
	"errors"
	"fmt"
	"time"

	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/spec"
	"github.com/clusterctl/clusterctl/store"
	"github.com/spf13/cobra"
)

// upFlags are up's options.
type upFlags struct {
	compose composeFlags
	detach  bool
	timeout time.Duration
}

func newUpCmd(g *globals) *cobra.Command {
	var f upFlags
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Deploy a Compose app across the cluster and wait until it runs",
		Long: `Deploy a Compose app: the managers place its containers on the cluster's
hosts, or update a running app to the files (changed services are replaced one
container at a time, unchanged ones are left alone).

The plan is checked as a whole first: if any container cannot be placed, the
managers refuse it, say why, and nothing is created. Then up shows each
container's progress until all run (and are healthy, where they have a
healthcheck), then follows their logs until Ctrl-C; the app keeps running.
With -d, up returns as soon as everything runs.`,
		Example: `  clusterctl up -f compose.yml
  clusterctl up -f compose.yml -f compose.prod.yml -p shop -d
  clusterctl up -f compose.yml --profile debug --timeout 10m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runUp(cmd, g, f)
		},
	}
	f.compose.add(cmd)
	cmd.Flags().BoolVarP(&f.detach, "detach", "d", false, "return once everything runs, without following the logs")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 5*time.Minute, "how long to wait for every container to run")
	return cmd
}

// runUp deploys, waits, then detaches or follows the logs.
func runUp(cmd *cobra.Command, g *globals, f upFlags) error {
	if err := checkTimeout(f.timeout); err != nil {
		return fmt.Errorf("up: %w", err)
	}
	l, err := f.compose.load(cmd)
	if err != nil {
		return fmt.Errorf("up: %w", err)
	}
	c, err := g.apiClient()
	if err != nil {
		return err
	}
	plan, err := c.Deploy(cmd.Context(), api.Deploy{App: l.app, Compose: l.compose})
	if msg, refused := isConflict(err); refused {
		fmt.Fprintln(cmd.ErrOrStderr(), msg)
		return errors.New("up: the managers refused the plan; nothing was created")
	}
	if err != nil {
		return fmt.Errorf("up: %w", err)
	}
	for _, p := range plan.Problems {
		fmt.Fprintln(cmd.ErrOrStderr(), "warning: "+p)
	}
	tr := newTracker(cmd.OutOrStdout(), serviceOrder(l.app), healthchecks(l.app))
	tr.services = servicesByName(l.app)
	w := &waiter{cmd: cmd, client: c, app: l.app.Name, name: "up", timeout: f.timeout, tracker: tr,
		check: upCheck(tr, expectedTasks(l.app, plan))}
	tasks, err := w.run()
	if err != nil {
		return err
	}
	if f.detach {
		fmt.Fprintf(cmd.OutOrStdout(), "\n%s is up: %s running\n", l.app.Name, plural(countDesired(tasks), "task"))
		return printTasks(cmd.OutOrStdout(), tasks, false)
	}
	return attach(cmd, c, l.app.Name, tasks)
}

// healthchecks says which services must be healthy, not just running,
// before up is done. A healthcheck of NONE disables the image's.
func healthchecks(app spec.App) map[string]bool {
	m := make(map[string]bool, len(app.Services))
	for _, s := range app.Services {
		m[s.Name] = s.Healthcheck != nil && (len(s.Healthcheck.Test) == 0 || s.Healthcheck.Test[0] != "NONE")
	}
	return m
}

// servicesByName indexes an app's services, for container names.
func servicesByName(app spec.App) map[string]spec.Service {
	m := make(map[string]spec.Service, len(app.Services))
	for _, s := range app.Services {
		m[s.Name] = s
	}
	return m
}

// expectedTasks is how many tasks the deployed app runs: the plan's, or
// the spec's replicas if the plan lists none. Counting only the tasks seen
// so far would end the wait before the managers had made them all.
func expectedTasks(app spec.App, plan *api.PlanResult) int {
	n := 0
	for _, t := range plan.Tasks {
		if t.Action != api.ActionRemove {
			n++
		}
	}
	if n > 0 {
		return n
	}
	for _, s := range app.Services {
		n += s.Replicas
	}
	return n
}

// upCheck says up is done when every task that should run does, on the
// current spec, and there are as many as the plan made.
func upCheck(tr *tracker, expected int) func([]api.TaskStatus) progress {
	return func(tasks []api.TaskStatus) progress {
		var p progress
		for _, t := range tasks {
			if t.Desired != store.TaskRunning {
				continue
			}
			p.total++
			if tr.ready(t) {
				p.ready++
			}
		}
		p.total = max(p.total, expected)
		p.done = p.ready == p.total
		return p
	}
}

// countDesired counts the tasks meant to run, leaving out those on their
// way out.
func countDesired(tasks []api.TaskStatus) int {
	n := 0
	for _, t := range tasks {
		if t.Desired == store.TaskRunning {
			n++
		}
	}
	return n
}

// attach follows the logs of the app's tasks until Ctrl-C, as docker
// compose up does, then says that the app keeps running: stopping to watch
// is not stopping the app.
func attach(cmd *cobra.Command, c *api.Client, app string, tasks []api.TaskStatus) error {
	var running []api.TaskStatus
	for _, t := range tasks {
		if t.Desired == store.TaskRunning {
			running = append(running, t)
		}
	}
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "following the logs of %s (Ctrl-C to stop following)\n", plural(len(running), "task"))
	err := streamLogs(cmd.Context(), c, running, true, -1, out)
	if err != nil && cmd.Context().Err() == nil {
		return fmt.Errorf("up: %w", err)
	}
	fmt.Fprintf(out, "\n%s keeps running; stop it with: clusterctl down -p %s\n", app, app)
	return nil
}
