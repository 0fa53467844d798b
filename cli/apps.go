package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/compose"
	"github.com/clusterctl/clusterctl/lab"
	"github.com/clusterctl/clusterctl/spec"
	"github.com/clusterctl/clusterctl/store"
	"github.com/spf13/cobra"
)

// pollInterval is how often up, scale and down read the tasks while they
// wait: often enough that progress looks live, rarely enough that a long
// wait costs the managers little.
const pollInterval = 250 * time.Millisecond

// composeFlags say which Compose files make the app, spelled as docker
// compose spells them so that muscle memory works.
type composeFlags struct {
	files    []string
	project  string
	profiles []string
}

// add registers -f, -p and --profile on cmd.
func (f *composeFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringArrayVarP(&f.files, "file", "f", nil, "Compose file (repeatable: merged in order)")
	cmd.Flags().StringVarP(&f.project, "project-name", "p", "", "app name (default: the file's name: or its directory's name)")
	cmd.Flags().StringArrayVar(&f.profiles, "profile", nil, "enable a Compose profile (repeatable)")
}

// loaded is an app read from Compose files, ready to submit.
type loaded struct {
	app     spec.App
	compose string // the merged file, kept by the managers for inspection
}

// load reads the Compose files as docker compose would, prints every
// warning (keys clusterctl does not honour must never be dropped silently)
// and turns the project into the spec the managers deploy.
func (f *composeFlags) load(cmd *cobra.Command) (*loaded, error) {
	app, err := compose.Load(cmd.Context(), compose.Options{Files: f.files, Project: f.project, Profiles: f.profiles})
	if err != nil {
		return nil, err
	}
	for _, w := range app.Warnings {
		fmt.Fprintln(cmd.ErrOrStderr(), "warning: "+w)
	}
	s, err := spec.FromCompose(app)
	if err != nil {
		return nil, err
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	y, err := app.Project.MarshalYAML()
	if err != nil {
		return nil, fmt.Errorf("merge compose files: %w", err)
	}
	return &loaded{app: s, compose: string(y)}, nil
}

// appFlag adds -p to a command that acts on a deployed app.
func appFlag(cmd *cobra.Command, dst *string) {
	cmd.Flags().StringVarP(dst, "project-name", "p", "", "app name (default: the only app, if there is exactly one)")
}

// resolveApp names the app a command acts on: -p, or the only app there
// is. It never guesses among several: scaling or removing the wrong app is
// worse than asking.
func resolveApp(ctx context.Context, c *api.Client, name string) (string, error) {
	if name != "" {
		return name, nil
	}
	resp, err := c.Apps(ctx)
	if err != nil {
		return "", err
	}
	switch len(resp.Apps) {
	case 0:
		return "", errors.New("no apps deployed")
	case 1:
		return resp.Apps[0].Name, nil
	}
	names := make([]string, len(resp.Apps))
	for i, a := range resp.Apps {
		names[i] = a.Name
	}
	sort.Strings(names)
	return "", fmt.Errorf("%d apps (%s): pass -p NAME", len(names), strings.Join(names, ", "))
}

// isConflict says whether err is the managers refusing a plan (409):
// nothing was changed.
func isConflict(err error) (string, bool) {
	var se *api.StatusError
	if errors.As(err, &se) && se.Code == http.StatusConflict {
		return se.Message, true
	}
	return "", false
}

// oneLine joins a multi-line server message with "; ", for an error that
// must reach the user as one line.
func oneLine(msg string) string {
	var parts []string
	for _, l := range strings.Split(msg, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, "; ")
}

// checkTimeout refuses a wait that could never succeed, before any work.
func checkTimeout(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("--timeout must be positive, got %s", d)
	}
	return nil
}

// shortDuration prints 5m rather than Go's 5m0s: it is how people wrote it.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// plural spells "1 task" and "2 tasks".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

// reported is an error the command has already shown the user, with
// details on stdout: Main exits non-zero without printing it again, and
// tests still read its message.
type reported struct{ msg string }

func (e *reported) Error() string { return e.msg }

// Unwrap lets Main find an exit code and stay silent.
func (e *reported) Unwrap() error { return &lab.ExitError{Code: 1} }

// taskSlot is the slot in a task's name ("web.3" is 3): the API carries
// the name, and the slot is what container names are made of.
func taskSlot(t api.TaskStatus) int {
	i := strings.LastIndexByte(t.Task, '.')
	if i < 0 {
		return 0
	}
	n, err := strconv.Atoi(t.Task[i+1:])
	if err != nil {
		return 0
	}
	return n
}

// containerName is the task's container as docker ps on its host shows
// it. svc is the task's service spec when the caller has it (up does), so
// that a container_name is honoured; otherwise Compose's project-service-N.
func containerName(t api.TaskStatus, svc *spec.Service) string {
	if svc == nil {
		svc = &spec.Service{Name: t.Service}
	}
	return spec.ContainerName(t.App, *svc, taskSlot(t))
}

// finished says whether a task is history: removed on purpose and gone.
// ps hides such tasks unless -a, and progress never reports them.
func finished(t api.TaskStatus) bool {
	return t.Desired == store.TaskShutdown && t.State == store.TaskShutdown
}

// sortTasks orders tasks by app, then service in the given order (the
// app's dependency order; services it does not list go after, by name),
// then slot: the same order on every poll, so output does not jump.
func sortTasks(tasks []api.TaskStatus, order map[string]int) {
	rank := func(s string) int {
		if i, ok := order[s]; ok {
			return i
		}
		return len(order)
	}
	sort.SliceStable(tasks, func(i, j int) bool {
		a, b := tasks[i], tasks[j]
		if a.App != b.App {
			return a.App < b.App
		}
		if ra, rb := rank(a.Service), rank(b.Service); ra != rb {
			return ra < rb
		}
		if a.Service != b.Service {
			return a.Service < b.Service
		}
		if sa, sb := taskSlot(a), taskSlot(b); sa != sb {
			return sa < sb
		}
		return a.ID < b.ID
	})
}

// serviceOrder maps each service of app to its place in dependency order.
func serviceOrder(app spec.App) map[string]int {
	order := make(map[string]int, len(app.Services))
	for i, s := range app.Services {
		order[s.Name] = i
	}
	return order
}

// taskState is the STATE column: the observed state, its health, and
// whether it is on its way out.
func taskState(t api.TaskStatus) string {
	var notes []string
	if t.Health != "" {
		notes = append(notes, t.Health)
	}
	if t.Desired == store.TaskShutdown && t.State != store.TaskShutdown {
		notes = append(notes, "stopping")
	}
	if len(notes) == 0 {
		return t.State
	}
	return t.State + " (" + strings.Join(notes, ", ") + ")"
}

// dash stands in for an empty column, so that columns stay countable.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// printTasks writes tasks as a table: what runs where.
func printTasks(w io.Writer, tasks []api.TaskStatus, showApp bool) error {
	header := "TASK\tHOST\tSTATE\tIP\tPORTS\tCONTAINER\tMESSAGE"
	if showApp {
		header = "APP\t" + header
	}
	tw := table(w, header)
	for _, t := range tasks {
		if showApp {
			fmt.Fprintf(tw, "%s\t", t.App)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.Task, dash(t.Host), taskState(t), dash(t.IP),
			dash(strings.Join(t.Ports, ",")), containerName(t, nil), dash(t.Message))
	}
	return tw.Flush()
}
