package cli

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/store"
	"github.com/spf13/cobra"
)

func newScaleCmd(g *globals) *cobra.Command {
	var app string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "scale SERVICE=N [SERVICE=N...]",
		Short: "Set how many containers of a service run, and wait until they do",
		Long: `Set the number of replicas of one or more services of a deployed app. The
managers place new containers (or remove the highest-numbered ones) and scale
waits until the service runs as many as asked, showing each change.

A scale that cannot be placed is refused with the reason, and nothing of
that service changes. -p may be left out when exactly one app is deployed.`,
		Example: `  clusterctl scale web=3
  clusterctl scale -p shop web=5 worker=2 --timeout 5m
  clusterctl scale -p shop worker=0`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkTimeout(timeout); err != nil {
				return fmt.Errorf("scale: %w", err)
			}
			scales, err := parseScale(args)
			if err != nil {
				return fmt.Errorf("scale: %w", err)
			}
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			name, err := resolveApp(cmd.Context(), c, app)
			if err != nil {
				return fmt.Errorf("scale: %w", err)
			}
			if err := applyScale(cmd, c, name, scales); err != nil {
				return err
			}
			return waitScale(cmd, c, name, scales, timeout)
		},
	}
	appFlag(cmd, &app)
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "how long to wait for the containers to run")
	return cmd
}

// scaleUsage is what a malformed argument is told.
const scaleUsage = "want SERVICE=REPLICAS with REPLICAS a number >= 0"

// parseScale reads SERVICE=REPLICAS arguments strictly, all of them before
// anything changes: a typo must not scale half the services.
func parseScale(args []string) ([]api.Scale, error) {
	if len(args) == 0 {
		return nil, errors.New(scaleUsage + ", e.g. clusterctl scale web=3")
	}
	seen := map[string]bool{}
	scales := make([]api.Scale, 0, len(args))
	for _, a := range args {
		svc, n, ok := strings.Cut(a, "=")
		if !ok || svc == "" || strings.ContainsAny(svc, " \t=") || !isDigits(n) {
			return nil, fmt.Errorf("%q: %s", a, scaleUsage)
		}
		r, err := strconv.Atoi(n)
		if err != nil {
			return nil, fmt.Errorf("%q: %s", a, scaleUsage)
		}
		if seen[svc] {
			return nil, fmt.Errorf("%q: service %s is given twice", a, svc)
		}
		seen[svc] = true
		scales = append(scales, api.Scale{Service: svc, Replicas: r})
	}
	return scales, nil
}

// isDigits says whether s is a plain decimal number: Atoi alone would take
// "+3" and "-0".
func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// applyScale asks the managers to scale each service in turn. A refusal
// stops there with the managers' reason, saying which services were
// already scaled, since those changes stand.
func applyScale(cmd *cobra.Command, c *api.Client, app string, scales []api.Scale) error {
	var done []string
	for _, s := range scales {
		_, err := c.Scale(cmd.Context(), app, s)
		if err == nil {
			done = append(done, fmt.Sprintf("%s=%d", s.Service, s.Replicas))
			continue
		}
		msg := err.Error()
		if m, refused := isConflict(err); refused {
			msg = oneLine(m)
		} else if api.IsNotFound(err) {
			msg = oneLine(msg)
		} else {
			err = fmt.Errorf("scale %s: %w", s.Service, err)
			msg = err.Error()
		}
		if len(done) > 0 {
			msg += " (already scaled: " + strings.Join(done, ", ") + ")"
		}
		return errors.New("scale: " + msg)
	}
	return nil
}

// waitScale follows the scaled services until each runs as many tasks as
// asked, and those it removed are gone.
func waitScale(cmd *cobra.Command, c *api.Client, app string, scales []api.Scale, timeout time.Duration) error {
	want := make(map[string]int, len(scales))
	order := make(map[string]int, len(scales))
	for i, s := range scales {
		want[s.Service] = s.Replicas
		order[s.Service] = i
	}
	tr := newTracker(cmd.OutOrStdout(), order, nil)
	w := &waiter{cmd: cmd, client: c, app: app, name: "scale", timeout: timeout, tracker: tr,
		keep:  func(t api.TaskStatus) bool { _, ok := want[t.Service]; return ok },
		check: scaleCheck(tr, want)}
	if _, err := w.run(); err != nil {
		return err
	}
	services := make([]string, 0, len(want))
	for s := range want {
		services = append(services, s)
	}
	sort.Strings(services)
	for _, s := range services {
		fmt.Fprintf(cmd.OutOrStdout(), "%s: %s runs %s\n", app, s, plural(want[s], "task"))
	}
	return nil
}

// scaleCheck says a scale is done when every scaled service has exactly
// the tasks asked, all ready, and the tasks it removed have stopped (a
// task on a lost host cannot report that, and is not waited for).
func scaleCheck(tr *tracker, want map[string]int) func([]api.TaskStatus) progress {
	return func(tasks []api.TaskStatus) progress {
		var p progress
		running := map[string]int{}
		leaving := 0
		for _, t := range tasks {
			switch {
			case t.Desired == store.TaskRunning:
				running[t.Service]++
				if tr.ready(t) {
					p.ready++
				}
			case !finished(t) && t.State != store.TaskLost:
				leaving++
			}
		}
		exact := true
		for svc, n := range want {
			p.total += n
			exact = exact && running[svc] == n
		}
		p.ready = min(p.ready, p.total)
		p.done = exact && p.ready == p.total && leaving == 0
		return p
	}
}
