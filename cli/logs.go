package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/clusterctl/clusterctl/api"
	"github.com/spf13/cobra"
)

func newLogsCmd(g *globals) *cobra.Command {
	var app string
	var follow bool
	var tail int
	cmd := &cobra.Command{
		Use:   "logs SERVICE|SERVICE.N",
		Short: "Print the output of a service's containers, wherever they run",
		Long: `Print the output (stdout and stderr) of every container of a service, or of
one task with SERVICE.N, from whichever host it runs on. Each line is
prefixed with its task ("web.1 | "), and lines of different containers never
mix. With -f, keep following until Ctrl-C.`,
		Example: `  clusterctl logs web
  clusterctl logs -p shop -f --tail 20 web.2`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("logs: want one SERVICE or SERVICE.N, got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if tail < -1 {
				return fmt.Errorf("logs: --tail must be a number of lines, or -1 for all; got %d", tail)
			}
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			name, err := resolveApp(cmd.Context(), c, app)
			if err != nil {
				return fmt.Errorf("logs: %w", err)
			}
			resp, err := c.Tasks(cmd.Context(), name)
			if err != nil {
				return fmt.Errorf("logs: %w", err)
			}
			tasks, err := logTasks(name, resp.Tasks, args[0])
			if err != nil {
				return fmt.Errorf("logs: %w", err)
			}
			err = streamLogs(cmd.Context(), c, tasks, follow, tail, cmd.OutOrStdout())
			if err != nil && cmd.Context().Err() == nil {
				return fmt.Errorf("logs: %w", err)
			}
			return nil // Ctrl-C is how following ends
		},
	}
	appFlag(cmd, &app)
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new output until Ctrl-C")
	cmd.Flags().IntVar(&tail, "tail", -1, "start with this many lines from the end of each container's output (-1: all)")
	return cmd
}

// logTasks picks the tasks whose logs to print: a service's, or the one
// task named SERVICE.N. Removed tasks have no container left to ask.
func logTasks(app string, all []api.TaskStatus, target string) ([]api.TaskStatus, error) {
	sortTasks(all, nil)
	services := map[string]bool{}
	for _, t := range all {
		services[t.Service] = true
	}
	service, task := target, ""
	if !services[target] {
		i := strings.LastIndexByte(target, '.')
		if i < 0 || !services[target[:i]] {
			return nil, fmt.Errorf("app %s has no service %q", app, target)
		}
		service, task = target[:i], target
	}
	var tasks []api.TaskStatus
	for _, t := range all {
		if t.Service == service && (task == "" || t.Task == task) && !finished(t) {
			tasks = append(tasks, t)
		}
	}
	if len(tasks) == 0 {
		if task != "" {
			return nil, fmt.Errorf("app %s has no task %q", app, task)
		}
		return nil, fmt.Errorf("service %s of app %s has no containers", service, app)
	}
	return tasks, nil
}

// streamLogs copies the logs of every task to out at once, each line
// prefixed with its task, and returns when all are done. Failures are
// joined into one line.
func streamLogs(ctx context.Context, c *api.Client, tasks []api.TaskStatus, follow bool, tail int, out io.Writer) error {
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make([]error, len(tasks))
	for i, t := range tasks {
		w := newPrefixWriter(out, &mu, t.Task+" | ")
		wg.Go(func() {
			errs[i] = c.Logs(ctx, t.ID, follow, tail, w)
			if err := w.Flush(); err != nil && errs[i] == nil {
				errs[i] = err
			}
		})
	}
	wg.Wait()
	var msgs []string
	for i, err := range errs {
		if err != nil {
			msgs = append(msgs, tasks[i].Task+": "+oneLine(err.Error()))
		}
	}
	if len(msgs) > 0 {
		return fmt.Errorf("%s", strings.Join(msgs, "; "))
	}
	return nil
}

// maxLine bounds how much of a line a prefixWriter holds back waiting for
// its end: output without newlines is printed in pieces, not kept forever.
const maxLine = 64 << 10

// prefixWriter prefixes each line of one task's output with the task's
// name. It writes whole lines only, under a mutex shared by the writers of
// all the tasks, so that lines of different tasks never mix mid-line. Each
// prefixWriter is written by one goroutine.
type prefixWriter struct {
	mu     *sync.Mutex
	out    io.Writer
	prefix string
	buf    []byte // the start of a line not yet ended
}

func newPrefixWriter(out io.Writer, mu *sync.Mutex, prefix string) *prefixWriter {
	return &prefixWriter{mu: mu, out: out, prefix: prefix}
}

// Write prints every complete line in p (and before it) and keeps the rest.
func (w *prefixWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	var lines []byte
	start := 0
	for {
		i := bytes.IndexByte(w.buf[start:], '\n')
		if i < 0 {
			if len(w.buf)-start < maxLine {
				break
			}
			// Too long to hold: print what there is as a line.
			lines = append(append(append(lines, w.prefix...), w.buf[start:]...), '\n')
			start = len(w.buf)
			break
		}
		lines = append(append(lines, w.prefix...), w.buf[start:start+i+1]...)
		start += i + 1
	}
	w.buf = append(w.buf[:0], w.buf[start:]...)
	if len(lines) == 0 {
		return len(p), nil
	}
	if err := w.emit(lines); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush prints a last line that did not end with a newline.
func (w *prefixWriter) Flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	line := append(append([]byte(w.prefix), w.buf...), '\n')
	w.buf = w.buf[:0]
	return w.emit(line)
}

// emit writes whole lines while holding the shared mutex.
func (w *prefixWriter) emit(lines []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, err := w.out.Write(lines)
	return err
}
