package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/clusterctl/clusterctl/api"
)

// outputFlag adds -o to a command that can print JSON.
func outputFlag(cmd *cobra.Command, dst *string) {
	cmd.Flags().StringVarP(dst, "output", "o", "table", "output format: table or json")
}

// checkOutput refuses an unknown format before any work is done.
func checkOutput(format string) error {
	if format != "table" && format != "json" {
		return fmt.Errorf("unknown output format %q: use -o table or -o json", format)
	}
	return nil
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes aligned columns; call flush when done.
func table(w io.Writer, header string) *tabwriter.Writer {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	return tw
}

// printCompactJSON writes v as one JSON line, for streams.
func printCompactJSON(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}

// labels formats labels as k=v,k=v in key order.
func labels(m map[string]string) string {
	if len(m) == 0 {
		return "-"
	}
	parts := make([]string, 0, len(m))
	for k, v := range m {
		parts = append(parts, k+"="+v)
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

// newInspectCmd is an `inspect NAME...` command that prints the objects
// get returns as one JSON array (what docker inspect does); get and rm
// below are api.Client methods, as method expressions.
func newInspectCmd[T any](g *globals, use, short, what string, get func(c *api.Client, ctx context.Context, name string) (*T, error)) *cobra.Command {
	return &cobra.Command{
		Use: use, Short: short, Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			out := []T{}
			for _, name := range args {
				v, err := get(c, cmd.Context(), name)
				if err != nil {
					return fmt.Errorf("%s inspect %s: %w", what, name, err)
				}
				out = append(out, *v)
			}
			return printJSON(cmd.OutOrStdout(), out)
		},
	}
}

// newRmCmd is an `rm NAME...` command that removes each object in turn,
// printing its name, and stops at the first refusal.
func newRmCmd(g *globals, use, short, what string, rm func(c *api.Client, ctx context.Context, name string) error) *cobra.Command {
	return &cobra.Command{
		Use: use, Short: short, Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			for _, name := range args {
				if err := rm(c, cmd.Context(), name); err != nil {
					return fmt.Errorf("%s rm %s: %w", what, name, err)
				}
				fmt.Fprintln(cmd.OutOrStdout(), name)
			}
			return nil
		},
	}
}
