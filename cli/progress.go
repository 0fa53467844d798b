package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/spec"
	"github.com/clusterctl/clusterctl/store"
	"github.com/spf13/cobra"
)

// tracker prints a line each time a task's progress changes, as docker
// compose up does, and nothing when it did not: a poll every 250ms must not
// repeat itself, and lines come in the same order on every poll.
type tracker struct {
	out   io.Writer
	order map[string]int // service dependency order, for sortTasks
	// health says which services have a healthcheck; nil means a task has
	// one when it reports a health (scale and down have no spec to ask).
	health map[string]bool
	// services are the app's specs by name, when known: for container
	// names, and to know which services run once and exit (restart: no).
	services map[string]spec.Service
	// removedOnly prints removals only: down has nothing else to say.
	removedOnly bool
	shown       map[string]shownTask // by task ID: the last line for each task
}

// shownTask is what the tracker last printed for a task.
type shownTask struct {
	container string
	line      string
}

func newTracker(out io.Writer, order map[string]int, health map[string]bool) *tracker {
	return &tracker{out: out, order: order, health: health, shown: map[string]shownTask{}}
}

// taskKey identifies a task across polls; a fake or early server may leave
// the ID out, and the name is then the best there is.
func taskKey(t api.TaskStatus) string {
	if t.ID != "" {
		return t.ID
	}
	return t.App + "/" + t.Task
}

// update prints what changed since the last call. A task that was already
// history when first seen is not reported; one that vanished since is
// reported removed.
func (tr *tracker) update(tasks []api.TaskStatus) {
	seen := make(map[string]bool, len(tasks))
	for _, t := range tasks {
		key := taskKey(t)
		seen[key] = true
		prev, known := tr.shown[key]
		if !known && finished(t) {
			continue
		}
		line := tr.line(t)
		if known && prev.line == line {
			continue
		}
		tr.shown[key] = shownTask{container: tr.container(t), line: line}
		if !tr.removedOnly || finished(t) {
			fmt.Fprintln(tr.out, line)
		}
	}
	var gone []string
	for key, s := range tr.shown {
		if !seen[key] && s.line != removedLine(s.container) {
			gone = append(gone, key)
		}
	}
	sort.Slice(gone, func(i, j int) bool { return tr.shown[gone[i]].container < tr.shown[gone[j]].container })
	for _, key := range gone {
		s := tr.shown[key]
		s.line = removedLine(s.container)
		tr.shown[key] = s
		fmt.Fprintln(tr.out, s.line)
	}
}

// container names a task's container, from its service's spec if known.
func (tr *tracker) container(t api.TaskStatus) string {
	if s, ok := tr.services[t.Service]; ok {
		return containerName(t, &s)
	}
	return containerName(t, nil)
}

// removedLine reports a container gone.
func removedLine(container string) string {
	return " ✔ Container " + container + "  Removed"
}

// line is a task's progress as Compose prints it:
// " ✔ Container hello-db-1  Healthy  host1".
func (tr *tracker) line(t api.TaskStatus) string {
	mark, status, detail := tr.describe(t)
	s := " " + mark + " Container " + tr.container(t) + "  " + status
	if detail != "" {
		s += "  " + detail
	}
	return s
}

// describe gives a task's mark (✔ done, ✘ failed, blank in progress), its
// status word and the detail after it: the host, and why it waits.
func (tr *tracker) describe(t api.TaskStatus) (mark, status, detail string) {
	host := t.Host
	switch {
	case finished(t):
		return "✔", "Removed", ""
	case t.Desired == store.TaskShutdown:
		return " ", "Stopping", host
	case stuck(t):
		return "✘", "Error", withMessage(host, t.Message)
	case !t.UpToDate:
		return " ", "Updating", withMessage(host, t.Message)
	}
	switch t.State {
	case store.TaskPending:
		return " ", "Waiting", withMessage("", t.Message)
	case store.TaskCreated:
		return "✔", "Created", withMessage(host, t.Message)
	case store.TaskRunning:
		if !tr.hasHealthcheck(t) {
			return "✔", "Started", host
		}
		switch t.Health {
		case "healthy":
			return "✔", "Healthy", host
		case "unhealthy":
			return "✘", "Unhealthy", withMessage(host, t.Message)
		}
		return "✔", "Started", host
	case store.TaskExited:
		if tr.oneShot(t) { // done, but the API does not say how well
			return " ", "Exited", withMessage(host, t.Message)
		}
		return "✘", "Exited", withMessage(host, t.Message)
	case store.TaskLost:
		return "✘", "Lost", withMessage(host, t.Message)
	}
	if t.State == "" {
		return " ", "Waiting", withMessage("", t.Message)
	}
	return " ", strings.ToUpper(t.State[:1]) + t.State[1:], withMessage(host, t.Message)
}

// withMessage appends a task's message in parentheses to its host.
func withMessage(host, msg string) string {
	if msg == "" {
		return host
	}
	if host == "" {
		return "(" + msg + ")"
	}
	return host + "  (" + msg + ")"
}

// hasHealthcheck says whether a task must be healthy, not just running,
// before the wait is over.
func (tr *tracker) hasHealthcheck(t api.TaskStatus) bool {
	if tr.health == nil {
		return t.Health != ""
	}
	return tr.health[t.Service]
}

// oneShot says whether a task's service is never restarted (restart: no,
// Compose's default), like a migration job: once exited it is done, as
// docker compose up treats it, and waiting for it to run again would only
// end in a timeout.
func (tr *tracker) oneShot(t api.TaskStatus) bool {
	s, ok := tr.services[t.Service]
	return ok && s.Restart.Condition == spec.RestartNever
}

// ready says whether a task runs the current spec as desired: running,
// and healthy when its service has a healthcheck; or, for a one-shot
// service, run and exited.
func (tr *tracker) ready(t api.TaskStatus) bool {
	if t.Desired != store.TaskRunning || !t.UpToDate {
		return false
	}
	if t.State == store.TaskExited {
		return tr.oneShot(t)
	}
	return t.State == store.TaskRunning && (!tr.hasHealthcheck(t) || t.Health == "healthy")
}

// fatalMessages begin the messages of tasks that waiting will not help:
// no host can take them, or Docker refused them. "waiting for db" and the
// like are progress, not failures.
var fatalMessages = []string{"no host fits", "cannot ", "failed", "error"}

// stuck says whether a task that should run says it cannot get there. A
// task that still runs an older spec is not: its message is about that
// spec (the failure the new one fixes), and the rolling update comes.
func stuck(t api.TaskStatus) bool {
	if t.Desired != store.TaskRunning || t.State == store.TaskRunning || !t.UpToDate {
		return false
	}
	msg := strings.ToLower(t.Message)
	for _, p := range fatalMessages {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// progress is how far a wait has come.
type progress struct {
	ready, total int
	done         bool
}

// waiter follows an app's tasks after a change (up, scale) until they are
// where they should be, printing each change on the way.
type waiter struct {
	cmd     *cobra.Command
	client  *api.Client
	app     string
	name    string // the command, for messages
	timeout time.Duration
	tracker *tracker
	keep    func(api.TaskStatus) bool // the tasks that matter; nil: all the app's
	check   func([]api.TaskStatus) progress
}

// run polls until check says done, a task cannot proceed, --timeout or
// Ctrl-C, and returns the last tasks seen. A timeout prints how far it
// came and what runs where, since that is what the user needs next.
func (w *waiter) run() ([]api.TaskStatus, error) {
	ctx, cancel := context.WithTimeout(w.cmd.Context(), w.timeout)
	defer cancel()
	last, p, err := w.poll(ctx)
	switch {
	case err == nil:
		return last, nil
	case w.cmd.Context().Err() != nil:
		return last, fmt.Errorf("%s: interrupted; the managers carry on: see clusterctl ps -p %s", w.name, w.app)
	case ctx.Err() != nil:
		msg := fmt.Sprintf("%s: timed out after %s: %d of %d tasks running", w.name, shortDuration(w.timeout), p.ready, p.total)
		fmt.Fprintln(w.cmd.ErrOrStderr(), msg)
		if perr := printTasks(w.cmd.OutOrStdout(), last, false); perr != nil {
			return last, perr
		}
		return last, &reported{msg: msg}
	}
	return last, fmt.Errorf("%s: %w", w.name, err)
}

// poll is run's loop.
func (w *waiter) poll(ctx context.Context) ([]api.TaskStatus, progress, error) {
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	var last []api.TaskStatus
	var p progress
	for {
		resp, err := w.client.Tasks(ctx, w.app)
		if err != nil {
			return last, p, err
		}
		last = last[:0]
		for _, t := range resp.Tasks {
			if w.keep == nil || w.keep(t) {
				last = append(last, t)
			}
		}
		sortTasks(last, w.tracker.order)
		w.tracker.update(last)
		for _, t := range last {
			if stuck(t) {
				return last, p, fmt.Errorf("%s cannot start: %s", t.Task, t.Message)
			}
		}
		if p = w.check(last); p.done {
			return last, p, nil
		}
		select {
		case <-ctx.Done():
			return last, p, ctx.Err()
		case <-ticker.C:
		}
	}
}
