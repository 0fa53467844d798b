// Package cli implements clusterctl's commands: parsing flags, calling the
// packages that do the work, and printing results for people (tables) or
// programs (-o json).
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/clusterctl/clusterctl/contextfile"
	"github.com/clusterctl/clusterctl/lab"
	"github.com/spf13/cobra"
)

// globals are the flags every command shares.
type globals struct {
	contextFlag string
	serversFlag []string
}

// loadContext reads this invocation's context file.
func loadContext(g *globals) (*contextfile.Context, error) {
	return contextfile.Load(g.contextPath())
}

// contextPath is the context file this invocation uses.
func (g *globals) contextPath() string { return contextfile.Path(g.contextFlag) }

// NewRoot builds the command tree.
func NewRoot(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "clusterctl",
		Short: "Run Compose apps across many Docker hosts, and move containers with their IP and data",
		Long: `clusterctl is a cluster orchestrator for Docker hosts, without Kubernetes.

It places the containers of a Compose file across Docker hosts and moves a
running container to another host with its IP address and its data.`,
		Example: `  clusterctl lab up --hosts 3     # three real Docker hosts on this machine
  clusterctl status               # the managers and their leader
  clusterctl hosts                # every host, its state and resources
  clusterctl lab down             # remove the lab`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().StringVar(&g.contextFlag, "context", "", "context file that says where the cluster is (default $"+contextfile.EnvVar+" or ~/.config/clusterctl/context.json)")
	root.PersistentFlags().StringSliceVar(&g.serversFlag, "servers", nil, "managers' API addresses host:port,... (default: from the context file)")
	root.AddCommand(newLabCmd(g), newHostsCmd(g), newStatusCmd(g), newEventsCmd(g), newServerCmd(), newAgentCmd(g),
		newUpCmd(g), newPlanCmd(g), newPsCmd(g), newScaleCmd(g), newDownCmd(g), newLogsCmd(g), newVolumeCmd(g), newNetworkCmd(g),
		newMoveCmd(g), newMovesCmd(g), newDrainCmd(g), newActivateCmd(g), newDashboardCmd(g), newDemoCmd(g), newLoginCmd(g), newTokenCmd(g))
	root.AddCommand(newBenchCmd())
	return root
}

// Main runs clusterctl with args and returns the process exit code. Every
// error reaches the user as one line.
func Main(args []string) int {
	root := NewRoot(os.Stdout, os.Stderr)
	root.SetArgs(args)
	// Ctrl-C cancels the command's context, so that a half-built lab is
	// torn down rather than left behind.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var exit *lab.ExitError
	if errors.As(err, &exit) {
		return exit.Code
	}
	fmt.Fprintln(os.Stderr, "clusterctl: "+err.Error())
	return 1
}
