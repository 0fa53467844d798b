package cli

import (
	"github.com/spf13/cobra"

	"github.com/clusterctl/clusterctl/tui"
)

func newDashboardCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "dashboard",
		Short: "An interactive view of the cluster: hosts, tasks by host, volumes, networks, moves, events",
		Long: `Show the cluster in the terminal, kept up to date from the managers' event
stream: tasks by host (with their addresses and state), hosts, volumes,
networks, moves in progress with their steps and bytes, and a log of events.
Select a task and press m to move it (the hosts that cannot take it say
why), d to drain a host, p to filter by project, ? for every key, q to quit.
It connects like the other commands (context file or --servers) and follows
a new leader after a failover.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			return tui.Run(cmd.Context(), tui.APISource{Client: c})
		},
	}
}
