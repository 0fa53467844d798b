package cli

import (
	"fmt"
	"io"
	"strings"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/clusterctl/clusterctl/api"
)

// newVolumeCmd groups the cluster volume commands.
func newVolumeCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "volume",
		Short: "Manage cluster volumes: data that belongs to the cluster and follows its container",
		Long: `Cluster volumes (driver clustervol) belong to the cluster, not to one host:
one host at a time holds a volume's lease and may mount it. The copy backend
keeps the data on the lease holder's disk; the block backend keeps a
filesystem image on storage every host reaches.

Docker creates them too: docker volume create -d clustervol NAME, or
driver: clustervol in a Compose file.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newVolumeLsCmd(g), newVolumeInspectCmd(g), newVolumeCreateCmd(g), newVolumeRmCmd(g),
		newVolumeAttachCmd(g), newVolumeDetachCmd(g))
	for _, spec := range volumeOpCmds {
		cmd.AddCommand(newVolumeOpCmd(g, spec))
	}
	return cmd
}

func newVolumeLsCmd(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "ls",
		Short:   "List the cluster volumes: backend, size, lease holder and generation, users",
		Example: "  clusterctl volume ls -o json | jq -r '.volumes[] | select(.owner==\"host1\") | .name'",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.outputClient(output)
			if err != nil {
				return err
			}
			resp, err := c.Volumes(cmd.Context())
			if err != nil {
				return fmt.Errorf("volume ls: %w", err)
			}
			if output == "json" {
				return printJSON(cmd.OutOrStdout(), resp)
			}
			return printVolumes(cmd.OutOrStdout(), resp.Volumes)
		},
	}
	outputFlag(cmd, &output)
	return cmd
}

// printVolumes prints volumes as a table.
func printVolumes(w io.Writer, vols []api.Volume) error {
	tw := table(w, "NAME\tBACKEND\tSIZE\tOWNER\tGENERATION\tUSED BY")
	for _, v := range vols {
		owner := dash(v.Owner)
		if v.MovingTo != "" {
			owner += " -> " + v.MovingTo
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", v.Name, v.Backend, volumeSize(v), owner, v.Generation, dash(strings.Join(v.UsedBy, ",")))
	}
	return tw.Flush()
}

// volumeSize is a block volume's size, a copy volume's as its last move
// measured it ("-" before any move: it grows with its data).
func volumeSize(v api.Volume) string {
	if v.SizeBytes == 0 {
		return "-"
	}
	return units.BytesSize(float64(v.SizeBytes))
}

func newVolumeInspectCmd(g *globals) *cobra.Command {
	return newInspectCmd(g, "inspect VOLUME...", "Show cluster volumes as JSON", "volume", (*api.Client).Volume)
}

func newVolumeCreateCmd(g *globals) *cobra.Command {
	var opts map[string]string
	var output string
	cmd := &cobra.Command{
		Use:   "create VOLUME",
		Short: "Create a cluster volume (attached nowhere until a container mounts it)",
		Example: `  clusterctl volume create db-data
  clusterctl volume create pg --opt backend=block --opt size=10GiB`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.outputClient(output)
			if err != nil {
				return err
			}
			v, err := c.CreateVolume(cmd.Context(), api.VolumeCreate{Name: args[0], Options: opts})
			if err != nil {
				return fmt.Errorf("volume create: %w", err)
			}
			if output == "json" {
				return printJSON(cmd.OutOrStdout(), v)
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), v.Name)
			return err
		},
	}
	cmd.Flags().StringToStringVar(&opts, "opt", nil, "driver option key=value: backend=copy|block, size=SIZE (block)")
	outputFlag(cmd, &output)
	return cmd
}

func newVolumeRmCmd(g *globals) *cobra.Command {
	return newRmCmd(g, "rm VOLUME...", "Remove cluster volumes and their data (refused while a container uses one)",
		"volume", (*api.Client).RemoveVolume)
}
