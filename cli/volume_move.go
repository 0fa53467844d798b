package cli

import (
	"fmt"
	"io"
	"time"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/clusterctl/clusterctl/api"
)

// volumeOpCmd is a volume command that hands a volume towards a host and
// reports as it goes.
type volumeOpCmd struct {
	op, use, short, long, example string
	keepFlag                      bool
}

// The long volume operations: the move, and the steps it is made of.
var volumeOpCmds = []volumeOpCmd{
	{op: "move", use: "move VOLUME HOST", keepFlag: true,
		short: "Move a volume no running container uses to HOST, with its data",
		long: `Move a cluster volume to another host with its data. A copy volume is
copied to HOST while nothing is locked (rounds on what changed until little
is left), then marked as moving so that nothing mounts it, synced a last
time and verified by HOST, which then holds its lease; its old copy is
removed once HOST confirmed its own (kept with --keep). A block volume is
unmounted and handed over: its image stays on the shared storage.

A failure before HOST holds the lease leaves the volume where it was,
intact and attached; HOST keeps what it received, so trying again sends
only the rest. To move a running container with its volume use
clusterctl move.`,
		example: `  clusterctl volume move db-data host2
  clusterctl volume move db-data host3 --keep -o json`},
	{op: "precopy", use: "precopy VOLUME HOST",
		short: "Copy a copy volume to HOST ahead of a move, while it stays in use where it is",
		long: `Bring HOST's staging copy of a copy volume up to date, in rounds on what
changed until one sends little: the first step of a move, which the volume's
containers may keep writing through. Nothing changes hands.`,
		example: "  clusterctl volume precopy db-data host2"},
	{op: "sync", use: "sync VOLUME HOST",
		short: "Final sync and handover: HOST takes the volume's lease, with its data",
		long: `The last step of a move: the volume is marked as moving (nothing may
mount it), then a copy volume gets a last round once no running container
uses it and HOST verifies every file and switches its copy in; a block volume
is unmounted. HOST then holds the lease, under a new generation. The old
owner keeps its copy of a copy volume until the volume is removed.`,
		example: "  clusterctl volume precopy db-data host2 && clusterctl volume sync db-data host2"},
}

// newVolumeOpCmd builds one long volume operation's command.
func newVolumeOpCmd(g *globals, spec volumeOpCmd) *cobra.Command {
	var output string
	var keep bool
	cmd := &cobra.Command{
		Use: spec.use, Short: spec.short, Long: spec.long, Example: spec.example,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.outputClient(output)
			if err != nil {
				return err
			}
			p := &progressLine{w: cmd.ErrOrStderr()}
			rep, err := c.VolumeOp(cmd.Context(), spec.op, args[0], api.VolumeTarget{Host: args[1], Keep: keep}, p.show)
			if err != nil {
				return fmt.Errorf("volume %s: %w", spec.op, err)
			}
			if output == "json" {
				return printJSON(cmd.OutOrStdout(), rep)
			}
			return printVolumeReport(cmd.OutOrStdout(), rep)
		},
	}
	if spec.keepFlag {
		cmd.Flags().BoolVar(&keep, "keep", false, "keep the old owner's copy of a copy volume")
	}
	outputFlag(cmd, &output)
	return cmd
}

// progressLine prints a volume operation's progress: every new step or
// round at once, the bytes at most once a second.
type progressLine struct {
	w    io.Writer
	last api.VolumeProgress
	at   time.Time
}

func (p *progressLine) show(pr api.VolumeProgress) {
	if pr.Phase == "listing" {
		return // no figures yet
	}
	same := pr.Step == p.last.Step && pr.Round == p.last.Round && pr.Phase == p.last.Phase && pr.Host == p.last.Host
	if same && time.Since(p.at) < time.Second {
		return
	}
	p.last, p.at = pr, time.Now()
	line := fmt.Sprintf("%s: %s on %s", pr.Volume, pr.Step, pr.Host)
	if pr.Round > 0 {
		line += fmt.Sprintf(" round %d to %s, %s: %s of %s, sent %s (%s/s)", pr.Round, pr.Target, pr.Phase,
			units.BytesSize(float64(pr.Bytes)), units.BytesSize(float64(pr.BytesTotal)),
			units.BytesSize(float64(pr.BytesSent)), units.BytesSize(pr.BytesPerSec))
	}
	fmt.Fprintln(p.w, line)
}

// printVolumeReport prints what a volume operation did, in one line.
func printVolumeReport(w io.Writer, r *api.VolumeReport) error {
	line := fmt.Sprintf("volume %s: %s", r.Volume, r.Op)
	if r.From != "" || r.To != "" {
		line += fmt.Sprintf(" %s -> %s", dash(r.From), dash(r.To))
	}
	line += fmt.Sprintf(" (%s, generation %d) in %s", r.Backend, r.Generation, time.Duration(r.TotalMS)*time.Millisecond)
	if r.Rounds > 0 {
		line += fmt.Sprintf(": %d rounds, %s sent of %s", r.Rounds, units.BytesSize(float64(r.BytesSent)), units.BytesSize(float64(r.Bytes)))
	}
	if r.FinalSyncMS > 0 {
		line += fmt.Sprintf(", final sync %s", time.Duration(r.FinalSyncMS)*time.Millisecond)
	}
	if r.SourceKept {
		line += ", old copy kept on " + r.From
	}
	_, err := fmt.Fprintln(w, line)
	return err
}

func newVolumeAttachCmd(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "attach VOLUME HOST",
		Short: "Attach a volume attached nowhere to HOST now (HOST takes its lease)",
		Long: `Give HOST the lease of a volume that no host holds and attach it there
now (a block volume's image is mounted), as a container's mount would. A
volume another host holds is refused: it changes hands by a move.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.outputClient(output)
			if err != nil {
				return err
			}
			v, err := c.AttachVolumeOn(cmd.Context(), args[0], args[1])
			if err != nil {
				return fmt.Errorf("volume attach: %w", err)
			}
			return printVolumeState(cmd.OutOrStdout(), output, v)
		},
	}
	outputFlag(cmd, &output)
	return cmd
}

func newVolumeDetachCmd(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "detach VOLUME",
		Short: "Unmount a block volume on its host and release its lease",
		Long: `Unmount a block volume on the host holding it, release its loop device
and its lease: any host may attach it next. Refused while a running
container uses it, and for copy volumes, whose data lives on their owner
(clusterctl volume move takes them elsewhere).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.outputClient(output)
			if err != nil {
				return err
			}
			v, err := c.DetachVolume(cmd.Context(), args[0])
			if err != nil {
				return fmt.Errorf("volume detach: %w", err)
			}
			return printVolumeState(cmd.OutOrStdout(), output, v)
		},
	}
	outputFlag(cmd, &output)
	return cmd
}

// printVolumeState prints a volume after a change.
func printVolumeState(w io.Writer, output string, v *api.Volume) error {
	if output == "json" {
		return printJSON(w, v)
	}
	_, err := fmt.Fprintf(w, "volume %s: owner %s, generation %d\n", v.Name, dash(v.Owner), v.Generation)
	return err
}
