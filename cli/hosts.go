package cli

import (
	"fmt"
	"io"
	"time"

	"github.com/clusterctl/clusterctl/engine"
	"github.com/docker/go-units"
	"github.com/spf13/cobra"
)

// hostTimeout bounds how long one host may take to describe itself.
const hostTimeout = 3 * time.Second

func newHostsCmd(g *globals) *cobra.Command {
	var output string
	var direct, stale bool
	cmd := &cobra.Command{
		Use:   "hosts",
		Short: "List the cluster's hosts: state, address, labels, CPUs, memory, containers",
		Long: `List the cluster's hosts as the managers' store has them: up or down (a host
whose agent missed its heartbeats), labels, resources and running containers.
With --direct, ask each host's Docker engine listed in the context file instead.`,
		Example: `  clusterctl hosts
  clusterctl hosts -o json | jq -r '.hosts[] | select(.state=="down") | .name'
  clusterctl hosts --direct`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if direct {
				return hostsDirect(cmd, g, output)
			}
			return hostsFromStore(cmd, g, output, stale)
		},
	}
	cmd.Flags().BoolVar(&direct, "direct", false, "ask each host's Docker engine (from the context file), not the managers")
	cmd.Flags().BoolVar(&stale, "stale", false, "read from any manager, possibly slightly behind the leader")
	outputFlag(cmd, &output)
	return cmd
}

func hostsFromStore(cmd *cobra.Command, g *globals, output string, stale bool) error {
	c, err := g.apiClient()
	if err != nil {
		return err
	}
	resp, err := c.Hosts(cmd.Context(), stale)
	if err != nil {
		return err
	}
	if output == "json" {
		return printJSON(cmd.OutOrStdout(), resp)
	}
	tw := table(cmd.OutOrStdout(), "NAME\tSTATE\tADDRESS\tDOCKER\tRUNNING\tCPUS\tMEMORY\tLABELS")
	for _, h := range resp.Hosts {
		running := 0
		for _, c := range h.Containers {
			if c.State == "running" {
				running++
			}
		}
		state := string(h.State)
		if h.Draining {
			state += ", draining"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", h.Name, state, h.Addr, h.DockerVersion, running, h.CPUs, units.BytesSize(float64(h.MemoryBytes)), labels(h.Labels))
	}
	return tw.Flush()
}

// hostsDirect asks every engine in the context file, bypassing the
// managers: a diagnostic that works when the control plane does not.
func hostsDirect(cmd *cobra.Command, g *globals, output string) error {
	c, err := loadContext(g)
	if err != nil {
		return err
	}
	var endpoints []engine.Endpoint
	for _, h := range c.Hosts {
		endpoints = append(endpoints, engine.Endpoint{Name: h.Name, Addr: h.Addr, Docker: h.Docker, CertDir: h.DockerCertPath})
	}
	infos := engine.DescribeAll(cmd.Context(), endpoints, hostTimeout)
	if output == "json" {
		return printJSON(cmd.OutOrStdout(), map[string]any{"hosts": infos})
	}
	return printEngines(cmd.OutOrStdout(), infos)
}

func printEngines(w io.Writer, infos []engine.HostInfo) error {
	tw := table(w, "NAME\tADDRESS\tSTATE\tDOCKER\tRUNNING\tCPUS\tMEMORY")
	for _, h := range infos {
		if h.State != "up" {
			fmt.Fprintf(tw, "%s\t%s\t%s\t-\t-\t-\t-\n", h.Name, h.Addr, h.State)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\n", h.Name, h.Addr, h.State, h.Version, h.ContainersRunning, h.CPUs, units.BytesSize(float64(h.MemoryBytes)))
	}
	return tw.Flush()
}
