package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/store"
)

// movePoll is how often a waiting command reads its moves.
const movePoll = 100 * time.Millisecond

func newMoveCmd(g *globals) *cobra.Command {
	var output, project string
	var dryRun, live bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "move [-p PROJECT] SERVICE[.N] HOST",
		Short: "Move a running task to HOST, keeping its IP address and its data",
		Long: `Move one task of a service to another host. Its cluster volumes follow
it (a copy volume is copied while the task still runs, then synced a last
time once it stopped; a block volume is detached and attached), its
addresses on cluster networks stay the same (same IP and MAC), and it is
started on HOST with the same configuration, then verified (healthy, or
its published ports answer) before the source's container goes.

Any failure before the target is verified rolls back: the task runs on its
source again, with its IP and its data. A move is recorded step by step in
the store, so a manager failover does not stop it. Progress goes to
stderr, the report to stdout.`,
		Example: `  clusterctl move db host2
  clusterctl move -p shop web.2 host3 -o json
  clusterctl move db host2 --dry-run`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.outputClient(output)
			if err != nil {
				return err
			}
			service, slot, err := parseTaskRef(args[0])
			if err != nil {
				return err
			}
			req := api.MoveRequest{App: project, Service: service, Slot: slot, To: args[1], DryRun: dryRun, Live: live, TimeoutMS: timeout.Milliseconds()}
			m, plan, err := c.StartMove(cmd.Context(), req)
			if err != nil {
				return fmt.Errorf("move: %w", err)
			}
			if plan != nil {
				return printMovePlan(cmd.OutOrStdout(), output, args[0], plan)
			}
			final, err := waitMoves(cmd.Context(), c, cmd.ErrOrStderr(), []api.Move{*m})
			if err != nil {
				return err
			}
			return reportMoves(cmd.OutOrStdout(), output, final, false)
		},
	}
	cmd.Flags().StringVarP(&project, "project-name", "p", "", "the app (Compose project) of SERVICE; needed when several apps have it")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "check that the move can be done, and change nothing")
	cmd.Flags().BoolVar(&live, "live", false, "checkpoint and restore the process (CRIU), memory included; refused unless both hosts support it")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "roll back if the target is not verified within this time (default 5m)")
	outputFlag(cmd, &output)
	return cmd
}

// parseTaskRef reads SERVICE or SERVICE.N (N from 1).
func parseTaskRef(s string) (string, int, error) {
	name, n, found := strings.Cut(s, ".")
	if !found {
		return s, 0, nil
	}
	slot, err := strconv.Atoi(n)
	if err != nil || slot < 1 || name == "" {
		return "", 0, fmt.Errorf("task %q: want SERVICE or SERVICE.N, N a number from 1", s)
	}
	return name, slot, nil
}

func newDrainCmd(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "drain HOST",
		Short: "Move every task off HOST, stateful ones with their data; HOST takes no new tasks",
		Long: `Mark HOST as draining (the scheduler places nothing new there) and move
each of its tasks to the host the scheduler picks, respecting constraints,
with their volumes and addresses as clusterctl move does. It waits for the
moves and reports each. A task that cannot leave (no host fits, data that
cannot follow) is named with why and stays. clusterctl activate HOST ends
the drain.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.outputClient(output)
			if err != nil {
				return err
			}
			res, err := c.Drain(cmd.Context(), args[0])
			if err != nil {
				return fmt.Errorf("drain: %w", err)
			}
			for _, r := range res.Refused {
				fmt.Fprintf(cmd.ErrOrStderr(), "drain %s: stays: %s\n", args[0], r)
			}
			final, err := waitMoves(cmd.Context(), c, cmd.ErrOrStderr(), res.Moves)
			if err != nil {
				return err
			}
			if err := reportMoves(cmd.OutOrStdout(), output, final, true); err != nil {
				return err
			}
			if len(res.Refused) > 0 {
				return fmt.Errorf("drain %s: %d task(s) could not leave", args[0], len(res.Refused))
			}
			return nil
		},
	}
	outputFlag(cmd, &output)
	return cmd
}

func newActivateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "activate HOST",
		Short: "Let a drained HOST take tasks again",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			if err := c.Activate(cmd.Context(), args[0]); err != nil {
				return fmt.Errorf("activate: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "host %s: active\n", args[0])
			return nil
		},
	}
}

func newMovesCmd(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "moves",
		Short: "List past and running moves",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.outputClient(output)
			if err != nil {
				return err
			}
			res, err := c.Moves(cmd.Context())
			if err != nil {
				return fmt.Errorf("moves: %w", err)
			}
			if output == "json" {
				return printJSON(cmd.OutOrStdout(), res)
			}
			tw := table(cmd.OutOrStdout(), "TASK\tFROM\tTO\tSTATE\tSTEP\tDOWNTIME\tTOTAL\tSENT\tREASON\tERROR")
			for _, m := range res.Moves {
				fmt.Fprintf(tw, "%s/%s.%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.App, m.Service, m.Slot, m.From, m.To, m.State, m.Step,
					ms(m.DowntimeMS), ms(m.TotalMS), units.BytesSize(float64(m.BytesSent)), m.Reason, dash(m.Error))
			}
			return tw.Flush()
		},
	}
	outputFlag(cmd, &output)
	return cmd
}

// waitMoves polls moves until each has ended, printing every step change
// and the bytes sent at most once a second.
func waitMoves(ctx context.Context, c *api.Client, w io.Writer, moves []api.Move) ([]api.Move, error) {
	type seen struct {
		step, state string
		at          time.Time
	}
	last := map[string]seen{}
	out := make([]api.Move, len(moves))
	copy(out, moves)
	for {
		done := true
		for i, m := range out {
			if !m.Active() {
				continue
			}
			cur, err := c.Move(ctx, m.ID)
			if err != nil {
				return nil, fmt.Errorf("follow move of %s.%d: %w", m.Service, m.Slot, err)
			}
			out[i] = *cur
			l := last[m.ID]
			if cur.Step != l.step || cur.State != l.state || (cur.Step == "precopy" || cur.Step == "sync") && time.Since(l.at) > time.Second {
				fmt.Fprintln(w, progressOf(*cur))
				last[m.ID] = seen{cur.Step, cur.State, time.Now()}
			}
			done = done && !cur.Active()
		}
		if done {
			return out, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(movePoll):
		}
	}
}

// progressOf is one line of a move's progress.
func progressOf(m api.Move) string {
	line := fmt.Sprintf("%s.%d %s -> %s: %s", m.Service, m.Slot, m.From, m.To, m.Step)
	if m.State != store.MoveRunning {
		line += " (" + m.State + ")"
	}
	if m.BytesSent > 0 {
		line += fmt.Sprintf(", sent %s of %s (%s/s)", units.BytesSize(float64(m.BytesSent)), units.BytesSize(float64(m.Bytes)), units.BytesSize(m.Rate))
	}
	return line
}

// reportMoves prints the ended moves and fails unless all are done.
func reportMoves(w io.Writer, output string, moves []api.Move, many bool) error {
	if output == "json" {
		var err error
		if many {
			err = printJSON(w, api.MovesResponse{Moves: moves})
		} else {
			err = printJSON(w, moves[0])
		}
		if err != nil {
			return err
		}
	}
	var failed []string
	for _, m := range moves {
		if output != "json" {
			fmt.Fprintln(w, moveReport(m))
		}
		if m.State != store.MoveDone {
			failed = append(failed, fmt.Sprintf("%s.%d %s: %s", m.Service, m.Slot, m.State, m.Error))
		}
	}
	if len(failed) > 0 {
		return errors.New("move failed: " + strings.Join(failed, "; "))
	}
	return nil
}

// moveReport is a move's outcome in one line.
func moveReport(m api.Move) string {
	switch m.State {
	case store.MoveDone:
		return fmt.Sprintf("moved %s.%d %s -> %s: downtime %s, total %s, %s sent", m.Service, m.Slot, m.From, m.To,
			ms(m.DowntimeMS), ms(m.TotalMS), units.BytesSize(float64(m.BytesSent)))
	case store.MoveRolledBack:
		return fmt.Sprintf("move of %s.%d to %s rolled back: it runs on %s again: %s", m.Service, m.Slot, m.To, m.From, m.Error)
	}
	return fmt.Sprintf("move of %s.%d %s -> %s %s: %s", m.Service, m.Slot, m.From, m.To, m.State, m.Error)
}

// printMovePlan prints a dry run.
func printMovePlan(w io.Writer, output, task string, p *api.MovePlan) error {
	if output == "json" {
		return printJSON(w, p)
	}
	vols := "no volumes"
	if len(p.Volumes) > 0 {
		vols = "volumes " + strings.Join(p.Volumes, ", ")
	}
	_, err := fmt.Fprintf(w, "%s can move %s -> %s (%s): nothing changed (dry run)\n", task, p.From, p.To, vols)
	return err
}

func ms(v int64) string { return (time.Duration(v) * time.Millisecond).String() }
