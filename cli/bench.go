package cli

import (
	"fmt"
	"io"
	"time"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/clusterctl/clusterctl/bench/schedbench"
)

// newBenchCmd groups the benchmarks that run inside this process, so their
// figures can be reproduced from the one binary without a lab.
func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the control plane in this process: placement and commit rates, memory",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newBenchSchedulerCmd())
	return cmd
}

func newBenchSchedulerCmd() *cobra.Command {
	var output, memoryLimit string
	o := schedbench.Defaults
	cmd := &cobra.Command{
		Use:   "scheduler",
		Short: "Place and commit many tasks on simulated hosts through a 3-node raft cluster",
		Long: `Start three managers in this process (raft on in-memory transports, each with
its own replica of the store), register simulated hosts through raft, then
place tasks with the scheduler and commit them in batches, one raft entry per
batch. A placement counts once its entry is committed and applied; every
replica must hold every task at the end.

The rate is given per window (up to 10k, 100k, 1M... tasks) so it can be seen
to stay flat as tasks accumulate, against a baseline measured in the same run:
placement alone, nothing committed. Peak memory is the process's VmHWM.`,
		Example: `  clusterctl bench scheduler
  clusterctl bench scheduler --hosts 5000 --tasks 1000000 -o json
  clusterctl bench scheduler --hosts 50 --tasks 10000 --batch 100`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if memoryLimit != "" {
				limit, err := units.RAMInBytes(memoryLimit)
				if err != nil || limit <= 0 {
					return fmt.Errorf("--memory-limit %q: want a size such as 1800MiB", memoryLimit)
				}
				o.MemoryLimit = limit
			}
			if err := o.Validate(); err != nil {
				return err
			}
			if output == "table" {
				stderr := cmd.ErrOrStderr()
				o.OnCheckpoint = func(cp schedbench.Checkpoint) {
					fmt.Fprintf(stderr, "%d tasks committed after %.1fs\n", cp.Tasks, cp.Seconds)
				}
			}
			res, err := schedbench.Run(cmd.Context(), o)
			if err != nil {
				return fmt.Errorf("bench scheduler: %w", err)
			}
			if output == "json" {
				return printJSON(cmd.OutOrStdout(), res)
			}
			return printSchedBench(cmd.OutOrStdout(), res)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Hosts, "hosts", o.Hosts, "simulated hosts")
	f.IntVar(&o.Tasks, "tasks", o.Tasks, "tasks to place and commit")
	f.IntVar(&o.Batch, "batch", o.Batch, "placements per raft entry")
	f.IntVar(&o.Services, "services", o.Services, "services the tasks belong to")
	f.Uint64Var(&o.Seed, "seed", o.Seed, "seed of the scheduler's host shuffle")
	f.StringVar(&memoryLimit, "memory-limit", "", "the Go runtime's soft memory limit for the run, e.g. 1800MiB (default: GOMEMLIMIT, or none)")
	f.BoolVar(&o.NoBaseline, "no-baseline", false, "skip the placement-only baseline")
	f.IntVar(&o.SnapshotEvery, "snapshot-every", o.SnapshotEvery, "snapshot the replicas and compact the raft log every N entries (0: never)")
	outputFlag(cmd, &output)
	return cmd
}

// printSchedBench prints a run as a short table: the rate of each window,
// the whole run, and the baseline with its ratio.
func printSchedBench(w io.Writer, r schedbench.Result) error {
	fmt.Fprintf(w, "%d hosts, %d tasks in raft entries of %d, %d services, 3 replicas\n", r.Hosts, r.Tasks, r.Batch, r.Services)
	if r.MemoryLimitMiB > 0 {
		fmt.Fprintf(w, "Go soft memory limit: %.0f MiB\n", r.MemoryLimitMiB)
	}
	fmt.Fprintln(w)
	tw := table(w, "TASKS\tPLACEMENTS/S\tCPU/PLACEMENT\tELAPSED\tRSS")
	from := 0
	for _, cp := range r.Checkpoints {
		fmt.Fprintf(tw, "%d-%d\t%.0f\t%.0fµs\t%s\t%.0f MiB\n", from, cp.Tasks, cp.PlacementsPerSec, cp.CPUMicrosPerPlacement, seconds(cp.Seconds), cp.RSSMiB)
		from = cp.Tasks
	}
	fmt.Fprintf(tw, "all, until every replica applied\t%.0f\t%.0fµs\t%s\t%.0f MiB peak\n", r.PlacementsPerSec, r.CPUMicrosPerPlacement, seconds(r.Seconds), r.PeakRSSMiB)
	if b := r.Baseline; b != nil {
		fmt.Fprintf(tw, "baseline: placement only\t%.0f\t\t\t\n", b.PlacementsPerSec)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if b := r.Baseline; b != nil {
		fmt.Fprintf(w, "\ncommitted rate / placement-only rate: %.3f (placement is %.1fx faster alone)\n", b.Ratio, 1/b.Ratio)
	}
	_, err := fmt.Fprintf(w, "hosts examined per placement: %.1f\n", r.HostsExamined)
	return err
}

// seconds formats a duration in seconds for the table.
func seconds(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(10 * time.Millisecond).String()
}
