package cli

import (
	"fmt"
	"time"

	"github.com/clusterctl/clusterctl/contextfile"
	"github.com/clusterctl/clusterctl/engine"
	"github.com/docker/go-units"
	"github.com/spf13/cobra"
)

// hostTimeout bounds how long one host may take to describe itself.
const hostTimeout = 3 * time.Second

func newHostsCmd(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "hosts",
		Short: "List the cluster's Docker hosts: address, Docker version, containers, CPUs, memory",
		Example: `  clusterctl hosts
  clusterctl hosts -o json | jq '.hosts[].containers_running'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			c, err := contextfile.Load(g.contextPath())
			if err != nil {
				return err
			}
			var endpoints []engine.Endpoint
			for _, h := range c.Hosts {
				endpoints = append(endpoints, engine.Endpoint{Name: h.Name, Addr: h.Addr, Docker: h.Docker})
			}
			infos := engine.DescribeAll(cmd.Context(), endpoints, hostTimeout)
			if output == "json" {
				return printJSON(cmd.OutOrStdout(), map[string]any{"hosts": infos})
			}
			tw := table(cmd.OutOrStdout(), "NAME\tADDRESS\tSTATE\tDOCKER\tRUNNING\tCPUS\tMEMORY")
			for _, h := range infos {
				if h.State != "up" {
					fmt.Fprintf(tw, "%s\t%s\t%s\t-\t-\t-\t-\n", h.Name, h.Addr, h.State)
					continue
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\n", h.Name, h.Addr, h.State, h.Version, h.ContainersRunning, h.CPUs, units.BytesSize(float64(h.MemoryBytes)))
			}
			return tw.Flush()
		},
	}
	outputFlag(cmd, &output)
	return cmd
}
