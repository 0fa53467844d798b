package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/clusterctl/clusterctl/api"
	"github.com/spf13/cobra"
)

func newDownCmd(g *globals) *cobra.Command {
	var app string
	var volumes bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Remove an app: its containers, its networks and, with -v, its volumes",
		Long: `Remove a deployed app from every host: its containers and networks, and with
-v its volumes and their data. down waits until the managers report the app
gone, showing each container as it is removed.

-p may be left out when exactly one app is deployed.`,
		Example: `  clusterctl down -p shop
  clusterctl down -p shop -v --timeout 5m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkTimeout(timeout); err != nil {
				return fmt.Errorf("down: %w", err)
			}
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			name, err := resolveApp(cmd.Context(), c, app)
			if err != nil {
				return fmt.Errorf("down: %w", err)
			}
			return runDown(cmd, c, name, volumes, timeout)
		},
	}
	appFlag(cmd, &app)
	cmd.Flags().BoolVarP(&volumes, "volumes", "v", false, "also remove the app's volumes and their data")
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "how long to wait for the app to be gone")
	return cmd
}

// runDown asks for the removal, then reports containers as they go until
// the app itself is gone. The tasks are read first so that containers
// removed quickly are still named.
func runDown(cmd *cobra.Command, c *api.Client, app string, volumes bool, timeout time.Duration) error {
	tr := newTracker(cmd.OutOrStdout(), nil, nil)
	tr.removedOnly = true
	before, err := c.Tasks(cmd.Context(), app)
	if err != nil && !api.IsNotFound(err) {
		return fmt.Errorf("down: %w", err)
	}
	if err == nil {
		sortTasks(before.Tasks, nil)
		tr.update(before.Tasks)
	}
	if err := c.Down(cmd.Context(), app, volumes); err != nil {
		if api.IsNotFound(err) {
			return fmt.Errorf("down: no app named %q", app)
		}
		return fmt.Errorf("down: %w", err)
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
	defer cancel()
	left, err := waitGone(ctx, c, app, tr)
	switch {
	case err == nil:
		fmt.Fprintf(cmd.OutOrStdout(), "down: %s removed\n", app)
		return nil
	case cmd.Context().Err() != nil:
		return fmt.Errorf("down: interrupted; the managers keep removing %s", app)
	case ctx.Err() != nil:
		return fmt.Errorf("down: timed out after %s: %s left; the managers keep removing %s", shortDuration(timeout), plural(left, "container"), app)
	}
	return fmt.Errorf("down: %w", err)
}

// waitGone polls until the app is gone (404), reporting each container
// removed; it returns how many were left when it stopped.
func waitGone(ctx context.Context, c *api.Client, app string, tr *tracker) (int, error) {
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	left := 0
	for {
		resp, err := c.Tasks(ctx, app)
		if err != nil && !api.IsNotFound(err) {
			return left, err
		}
		if err == nil {
			sortTasks(resp.Tasks, nil)
			tr.update(resp.Tasks)
			left = 0
			for _, t := range resp.Tasks {
				if !finished(t) {
					left++
				}
			}
		}
		if _, err := c.App(ctx, app); api.IsNotFound(err) {
			tr.update(nil)
			return 0, nil
		} else if err != nil {
			return left, err
		}
		select {
		case <-ctx.Done():
			return left, ctx.Err()
		case <-ticker.C:
		}
	}
}
