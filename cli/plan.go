package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/clusterctl/clusterctl/api"
	"github.com/spf13/cobra"
)

func newPlanCmd(g *globals) *cobra.Command {
	var cf composeFlags
	var output string
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Show what up would do, and why, without changing anything",
		Long: `Show what up would do with these Compose files: for each task, the host the
scheduler picks and why, whether it is created, kept, updated or removed;
then the problems up would hit (an image missing on a host...) and the tasks
that cannot be placed at all.

plan fails (non-zero exit) when the files are invalid or some task cannot be
placed: up would refuse that plan too.`,
		Example: `  clusterctl plan -f compose.yml
  clusterctl plan -f compose.yml -p shop -o json | jq '.failures'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			l, err := cf.load(cmd)
			if err != nil {
				return fmt.Errorf("plan: %w", err)
			}
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			res, err := c.Deploy(cmd.Context(), api.Deploy{App: l.app, Compose: l.compose, DryRun: true})
			if msg, refused := isConflict(err); refused {
				fmt.Fprintln(cmd.ErrOrStderr(), msg)
				return errors.New("plan: the managers refused the plan")
			}
			if err != nil {
				return fmt.Errorf("plan: %w", err)
			}
			if output == "json" {
				err = printJSON(cmd.OutOrStdout(), res)
			} else {
				err = printPlan(cmd.OutOrStdout(), res)
			}
			if err != nil {
				return err
			}
			if n := len(res.Failures); n > 0 {
				return fmt.Errorf("plan: %s cannot be placed", plural(n, "task"))
			}
			return nil
		},
	}
	cf.add(cmd)
	outputFlag(cmd, &output)
	return cmd
}

// printPlan writes a plan for people: the tasks, then what would go wrong.
func printPlan(w io.Writer, res *api.PlanResult) error {
	tw := table(w, "TASK\tSERVICE\tHOST\tACTION\tWHY")
	for _, t := range res.Tasks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.Task, t.Service, dash(t.Host), t.Action, dash(t.Why))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	printList(w, "problems:", res.Problems)
	printList(w, "cannot be placed:", res.Failures)
	return nil
}

// printList writes a titled list, or nothing when it is empty.
func printList(w io.Writer, title string, items []string) {
	if len(items) == 0 {
		return
	}
	fmt.Fprintln(w, "\n"+title)
	for _, s := range items {
		fmt.Fprintln(w, "  "+s)
	}
}
