package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/clusterctl/clusterctl/api"
)

// newNetworkCmd groups the cluster network commands.
func newNetworkCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "network",
		Short: "Manage cluster networks: one overlay across hosts, addresses that stay with their task",
		Long: `Cluster networks (driver clusternet, IPAM driver clusteripam) span every
host: each is a VXLAN segment with its own subnet, and each address is
leased to a task, not to a container, so a task keeps its address (and MAC)
when it moves to another host.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newNetworkLsCmd(g), newNetworkInspectCmd(g), newNetworkCreateCmd(g), newNetworkRmCmd(g))
	return cmd
}

func newNetworkLsCmd(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "ls",
		Short:   "List the cluster networks: subnet, gateway, VNI, leased addresses",
		Example: "  clusterctl network ls -o json | jq -r '.networks[].leases[] | \"\\(.addr) \\(.task) \\(.host)\"'",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.outputClient(output)
			if err != nil {
				return err
			}
			resp, err := c.Networks(cmd.Context())
			if err != nil {
				return fmt.Errorf("network ls: %w", err)
			}
			if output == "json" {
				return printJSON(cmd.OutOrStdout(), resp)
			}
			return printNetworks(cmd.OutOrStdout(), resp.Networks)
		},
	}
	outputFlag(cmd, &output)
	return cmd
}

// printNetworks prints networks as a table.
func printNetworks(w io.Writer, nets []api.Network) error {
	tw := table(w, "NAME\tSUBNET\tGATEWAY\tVNI\tLEASES")
	for _, n := range nets {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\n", n.Name, n.Subnet, n.Gateway, n.VNI, len(n.Leases))
	}
	return tw.Flush()
}

func newNetworkInspectCmd(g *globals) *cobra.Command {
	return newInspectCmd(g, "inspect NETWORK...", "Show cluster networks as JSON, with each lease's task and the host of its endpoint",
		"network", (*api.Client).Network)
}

func newNetworkCreateCmd(g *globals) *cobra.Command {
	var subnet, output string
	cmd := &cobra.Command{
		Use:   "create NETWORK",
		Short: "Create a cluster network (a free /24 of 10.200.0.0/16 unless --subnet)",
		Example: `  clusterctl network create backend
  clusterctl network create db --subnet 10.201.0.0/24`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.outputClient(output)
			if err != nil {
				return err
			}
			n, err := c.CreateNetwork(cmd.Context(), api.NetworkCreate{Name: args[0], Subnet: subnet})
			if err != nil {
				return fmt.Errorf("network create: %w", err)
			}
			if output == "json" {
				return printJSON(cmd.OutOrStdout(), n)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s %s vni %d\n", n.Name, n.Subnet, n.VNI)
			return err
		},
	}
	cmd.Flags().StringVar(&subnet, "subnet", "", "IPv4 subnet, e.g. 10.201.0.0/24 (must not overlap another network or the hosts' own)")
	outputFlag(cmd, &output)
	return cmd
}

func newNetworkRmCmd(g *globals) *cobra.Command {
	return newRmCmd(g, "rm NETWORK...", "Remove cluster networks (refused while a task holds one of its addresses)",
		"network", (*api.Client).RemoveNetwork)
}
