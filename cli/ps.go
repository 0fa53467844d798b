package cli

import (
	"fmt"

	"github.com/clusterctl/clusterctl/api"
	"github.com/spf13/cobra"
)

func newPsCmd(g *globals) *cobra.Command {
	var output, app string
	var all bool
	cmd := &cobra.Command{
		Use:   "ps",
		Short: "List the apps' tasks: where each runs, its state, IP and ports",
		Long: `List the tasks (containers) of one app, or of every app: the host each runs on,
its state and health, its IP address, published ports, container name, and
why it is not running when it is not.

Without -p, ps lists every app's tasks; it never guesses an app from a
Compose file in the current directory. Removed tasks are hidden unless -a.`,
		Example: `  clusterctl ps
  clusterctl ps -p shop -a
  clusterctl ps -o json | jq -r '.tasks[] | select(.state!="running") | .task'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.outputClient(output)
			if err != nil {
				return err
			}
			resp, err := c.Tasks(cmd.Context(), app)
			if err != nil {
				return fmt.Errorf("ps: %w", err)
			}
			tasks := psTasks(resp.Tasks, all)
			if output == "json" {
				return printJSON(cmd.OutOrStdout(), psJSON{Tasks: tasks})
			}
			return printTasks(cmd.OutOrStdout(), tasks, app == "")
		},
	}
	appFlag(cmd, &app)
	cmd.Flags().BoolVarP(&all, "all", "a", false, "also show removed tasks")
	outputFlag(cmd, &output)
	return cmd
}

// psJSON is ps -o json: {"tasks": [...]}, never null, so that scripts can
// index it without checking.
type psJSON struct {
	Tasks []api.TaskStatus `json:"tasks"`
}

// psTasks sorts the tasks, drops history unless all, and gives every task
// a ports list ([] rather than null in JSON).
func psTasks(in []api.TaskStatus, all bool) []api.TaskStatus {
	tasks := make([]api.TaskStatus, 0, len(in))
	for _, t := range in {
		if !all && finished(t) {
			continue
		}
		if t.Ports == nil {
			t.Ports = []string{}
		}
		tasks = append(tasks, t)
	}
	sortTasks(tasks, nil)
	return tasks
}
