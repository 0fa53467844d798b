// Package live is the seam for live moves: checkpointing a container's
// processes on one host and restoring them on another (CRIU, through
// Docker's experimental checkpoint API), so that memory moves too, not
// only the volume data.
//
// What a host needs: CRIU installed and passing `criu check` on its kernel,
// and dockerd started with --experimental (Docker's checkpoint API is
// experimental). Each agent probes its host when it registers and the
// store keeps the answer; a live move is refused unless both hosts are
// ready, with each host's reason. Debian's criu 3.17 fails `criu check`
// on the 6.x kernels of our machines, so no host here is ready: the
// refusal is what this code does on them.
//
// On hosts that are ready, a live move (package migrate) makes a copy
// volume for the checkpoint on the source, checkpoints the container into
// it instead of stopping it, syncs it to the target with the task's own
// volumes, and restores the container from it instead of starting it.
package live

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/docker/docker/api/types/checkpoint"
	"github.com/docker/docker/client"

	"github.com/clusterctl/clusterctl/store"
)

// checkTimeout bounds `criu check`, which normally answers in well under
// a second.
const checkTimeout = 20 * time.Second

// Probe says why this host cannot checkpoint and restore containers, ""
// if it can. experimental is what the host's dockerd says of itself.
func Probe(ctx context.Context, experimental bool) string {
	var why []string
	if !experimental {
		why = append(why, "dockerd runs without --experimental (Docker's checkpoint API needs it)")
	}
	if msg := criuCheck(ctx); msg != "" {
		why = append(why, msg)
	}
	return strings.Join(why, "; ")
}

// criuCheck runs `criu check` and says why it failed, "" if it passed.
func criuCheck(ctx context.Context) string {
	path, err := exec.LookPath("criu")
	if err != nil {
		return "criu is not installed"
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "check").CombinedOutput()
	if err == nil {
		return ""
	}
	return "criu check failed: " + firstError(out, err)
}

// firstError picks the line of criu's output that says what failed.
func firstError(out []byte, err error) string {
	sc := bufio.NewScanner(bytes.NewReader(out))
	first := ""
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if first == "" && line != "" {
			first = line
		}
		if strings.Contains(line, "Error") {
			return line
		}
	}
	if first != "" {
		return first
	}
	return err.Error()
}

// Check refuses a live move unless both hosts said they are ready.
func Check(v *store.View, from, to string) error {
	var why []string
	for _, name := range []string{from, to} {
		h, ok := v.Host(name)
		switch {
		case !ok:
			why = append(why, name+": not in the cluster")
		case !h.LiveReady:
			reason := h.LiveRefusal
			if reason == "" {
				reason = "its agent did not report checkpoint support"
			}
			why = append(why, name+": "+reason)
		}
	}
	if len(why) > 0 {
		return errors.New(strings.Join(why, "; ") + " (live moves need CRIU passing `criu check` and dockerd --experimental on both hosts; a move without --live keeps the data and the IP, and restarts the process)")
	}
	return nil
}

// Docker checkpoints through a host's Docker engine.
type Docker struct{ Engine *client.Client }

// Checkpoint stops the container into checkpoint id, written in dir (on
// the container's host): a live move writes it into a volume of its own,
// which the volume machinery carries to the target.
func (d Docker) Checkpoint(ctx context.Context, containerID, id, dir string) error {
	opts := checkpoint.CreateOptions{CheckpointID: id, CheckpointDir: dir, Exit: true}
	if err := d.Engine.CheckpointCreate(ctx, containerID, opts); err != nil {
		return fmt.Errorf("checkpoint %.12s into %s: %w", containerID, dir, err)
	}
	return nil
}
