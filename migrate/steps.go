package migrate

import (
	"context"
	"fmt"
	"time"

	"github.com/clusterctl/clusterctl/agentapi"
	"github.com/clusterctl/clusterctl/store"
	"github.com/clusterctl/clusterctl/volumes"
)

// Pauses of a mover: between attempts of a step that must not roll back
// (cleanup, rollback itself), and between progress writes to the store.
const (
	retryPause    = time.Second
	progressEvery = 250 * time.Millisecond
	// rollbackAttempt bounds one attempt at a rollback (a volume synced
	// back included).
	rollbackAttempt = 2 * time.Minute
	// finishRetries bounds how often the end of a move is recorded again
	// after the task changed under it.
	finishRetries = 5
)

// mover drives one move.
type mover struct {
	r        *Runner
	id       string
	progress time.Time // last progress write
	// Bytes sent: by the rounds before the current one, and by the
	// current one (roundKey names it: volume and round).
	sent, roundBytes int64
	roundKey         string
}

// run drives the move until it ends or leadership is lost.
func (m *mover) run(ctx context.Context) {
	for ctx.Err() == nil {
		mv, ok := m.r.opts.Store.View().Move(m.id)
		if !ok || !mv.Active() {
			return
		}
		var err error
		if mv.State == store.MoveRunning {
			err = m.forward(ctx, mv)
		} else {
			err = m.rollbackOnce(ctx, mv)
		}
		if err != nil && ctx.Err() == nil {
			m.r.log.Warn("move step failed: trying again", "move", mv.ID, "step", mv.Step, "state", mv.State, "err", err)
			_ = pause(ctx, retryPause)
		}
	}
}

// forward runs the move's next step and records the one after. A failure
// before cleanup starts the rollback; cleanup is only ever retried, since
// the target already serves.
func (m *mover) forward(ctx context.Context, mv store.Move) error {
	before := stepIndex(mv.Step) < stepIndex(StepCleanup)
	stepCtx := ctx
	if mv.Deadline.IsZero() {
		mv.Deadline = mv.Started.Add(DefaultTimeout) // recorded without one
	}
	if before {
		if time.Now().After(mv.Deadline) {
			return m.startRollback(mv, fmt.Errorf("%s: the move's time ran out", mv.Step))
		}
		var cancel context.CancelFunc
		stepCtx, cancel = context.WithDeadline(ctx, mv.Deadline)
		defer cancel()
	}
	step := mv.Step
	if err := m.hold(stepCtx, step); err != nil {
		return err
	}
	err := m.step(stepCtx, &mv)
	switch {
	case err != nil && ctx.Err() != nil:
		return err // leadership lost: the next leader runs the step again
	case err != nil && before && stepCtx.Err() != nil:
		return m.startRollback(mv, fmt.Errorf("%s: the move's time ran out: %w", step, err))
	case err != nil && before:
		return m.startRollback(mv, fmt.Errorf("%s: %w", step, err))
	case err != nil:
		return err
	}
	mv.Step = steps[stepIndex(step)+1]
	if mv.Step == StepDone {
		mv.State, mv.Finished = store.MoveDone, time.Now().UTC()
		return m.finish(mv)
	}
	m.r.log.Info("move step done", "move", mv.ID, "step", step, "next", mv.Step)
	return m.save(mv)
}

// hold waits while the cluster variable HoldVar names step: an operator
// (or a fault-injection test) can stop every move just before a step, act
// on the cluster, and let the moves go on by deleting the variable.
func (m *mover) hold(ctx context.Context, step string) error {
	for {
		v, ok := m.r.opts.Store.View().Var(HoldVar)
		if !ok || v.Value != step {
			return nil
		}
		if err := pause(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
}

// step runs one forward step; it may record times and the target's
// container in mv.
func (m *mover) step(ctx context.Context, mv *store.Move) error {
	switch mv.Step {
	case StepPreCopy:
		return m.preCopy(ctx, mv)
	case StepStop:
		return m.stop(ctx, mv)
	case StepSync:
		return m.sync(ctx, mv)
	case StepRelease:
		return m.release(ctx, mv)
	case StepStart:
		id, err := m.startOrRestore(ctx, mv)
		mv.Container = id
		return err
	case StepVerify:
		if err := m.r.opts.Tasks.VerifyTask(ctx, mv.TaskID, mv.To); err != nil {
			return err
		}
		mv.Verified = time.Now().UTC()
		return nil
	case StepCleanup:
		return m.cleanup(ctx, mv)
	}
	return fmt.Errorf("unknown step %q", mv.Step)
}

// preCopy waits for the reconciler to be done with the task, then brings
// the target's copies of the task's copy volumes up to date while it runs.
func (m *mover) preCopy(ctx context.Context, mv *store.Move) error {
	for m.r.opts.Tasks.Busy(mv.TaskID) {
		if err := pause(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
	if !m.up(mv.From) {
		return nil // block volumes only (PlanMove checked): nothing to copy
	}
	if mv.Live {
		if err := m.r.opts.Volumes.CreateOn(ctx, mv.Checkpoint, mv.From); err != nil {
			return fmt.Errorf("checkpoint volume: %w", err)
		}
	}
	return m.eachVolume(mv, store.VolumeCopy, func(name string) error {
		_, err := m.r.opts.Volumes.PreCopy(ctx, name, mv.To, m.onProgress(mv))
		return err
	})
}

// stop stops the source container; a source host that is down has
// nothing running that could write, and the downtime counts from when it
// was last heard from.
func (m *mover) stop(ctx context.Context, mv *store.Move) error {
	stopped := time.Now().UTC()
	if m.up(mv.From) {
		if err := m.stopOrCheckpoint(ctx, mv); err != nil {
			return err
		}
		stopped = time.Now().UTC()
	} else if h, ok := m.r.opts.Store.View().Host(mv.From); ok && !h.LastHeartbeat.IsZero() {
		stopped = h.LastHeartbeat // the task was lost with its host
	}
	if mv.Stopped.IsZero() {
		mv.Stopped = stopped
	}
	return nil
}

// stopOrCheckpoint stops the source container, or for a live move
// checkpoints it into the checkpoint volume.
func (m *mover) stopOrCheckpoint(ctx context.Context, mv *store.Move) error {
	if !mv.Live {
		return m.r.opts.Tasks.StopTask(ctx, mv.TaskID, mv.From)
	}
	dir, err := m.r.opts.Volumes.PathOn(ctx, mv.Checkpoint, mv.From)
	if err != nil {
		return err
	}
	return m.r.opts.Tasks.CheckpointTask(ctx, mv.TaskID, mv.From, dir)
}

// startOrRestore starts the task on the target, or for a live move
// restores it from the checkpoint volume, synced there.
func (m *mover) startOrRestore(ctx context.Context, mv *store.Move) (string, error) {
	if !mv.Live {
		return m.r.opts.Tasks.RunTask(ctx, mv.TaskID, mv.To)
	}
	dir, err := m.r.opts.Volumes.PathOn(ctx, mv.Checkpoint, mv.To)
	if err != nil {
		return "", err
	}
	return m.r.opts.Tasks.RestoreTask(ctx, mv.TaskID, mv.To, dir)
}

// sync hands each volume to the target: the last delta and the target's
// verified switch-over (copy), or a detach (block); then the lease. A
// live move's checkpoint volume goes last, the same way.
func (m *mover) sync(ctx context.Context, mv *store.Move) error {
	handOver := func(name string) error {
		if vol, ok := m.r.opts.Store.View().Volume(name); ok && vol.OwnerHost == mv.To {
			return nil // handed over already (a step run again)
		}
		_, err := m.r.opts.Volumes.Sync(ctx, name, mv.To, m.onProgress(mv))
		return err
	}
	if err := m.eachVolume(mv, "", handOver); err != nil {
		return err
	}
	if mv.Live {
		return handOver(mv.Checkpoint)
	}
	return nil
}

// release makes sure no address of the task still points at the source:
// Docker deletes a stopped container's endpoints and the source's agent
// says so; a source that is down, or slow to say it, is overruled.
func (m *mover) release(ctx context.Context, mv *store.Move) error {
	deadline := time.Now().Add(m.r.opts.ReleaseWait)
	for {
		stale := m.leasesOn(mv.TaskID, mv.From)
		if len(stale) == 0 {
			return nil
		}
		if !m.up(mv.From) || time.Now().After(deadline) {
			for _, l := range stale {
				if _, err := m.r.opts.Leases.ClearEndpointHost(l.Network, l.Addr, mv.From); err != nil {
					return fmt.Errorf("release %s on %s: %w", l.Addr, mv.From, err)
				}
			}
			return nil
		}
		if err := pause(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
}

// leasesOn lists the task's address leases whose endpoint is on host.
func (m *mover) leasesOn(taskID, host string) []store.IPLease {
	var out []store.IPLease
	for _, l := range m.r.opts.Store.View().Leases("") {
		if l.TaskID == taskID && l.Host == host && host != "" {
			out = append(out, l)
		}
	}
	return out
}

// cleanup removes the source's container and volume copies (a source
// that is down is swept by the reconciler when it returns: the task's
// container there is then a stray copy).
func (m *mover) cleanup(ctx context.Context, mv *store.Move) error {
	if !m.up(mv.From) {
		return nil
	}
	if err := m.r.opts.Tasks.RemoveTask(ctx, mv.TaskID, mv.From); err != nil {
		return err
	}
	if err := m.eachVolume(mv, store.VolumeCopy, func(name string) error {
		return m.r.opts.Volumes.RemoveCopy(ctx, name, mv.From)
	}); err != nil {
		return err
	}
	return m.dropCheckpoint(ctx, mv)
}

// dropCheckpoint removes a live move's checkpoint volume, if it has one.
func (m *mover) dropCheckpoint(ctx context.Context, mv *store.Move) error {
	if mv.Checkpoint == "" {
		return nil
	}
	if _, ok := m.r.opts.Store.View().Volume(mv.Checkpoint); !ok {
		return nil
	}
	return m.r.opts.Volumes.Remove(ctx, mv.Checkpoint)
}

// finish records the end of the move and gives the task to its host (the
// target, or the source after a rollback) in one entry, so that the
// reconciler takes it over there. The entry is checked against the task
// as read: a task changed meanwhile (clusterctl down) is read again, and
// a task gone is not brought back.
func (m *mover) finish(mv store.Move) error {
	host := mv.To
	if mv.State != store.MoveDone {
		host = mv.From
	}
	_, err := store.Retry(m.r.opts.Store, m.r.opts.Apply, finishRetries, "the end of move "+mv.ID, func(v *store.View) ([]byte, error) {
		cmds := [][]byte{store.MustEncode(store.CmdPutMove, stamp(mv))}
		if t, ok := v.Task(mv.TaskID); ok && t.DesiredState == store.TaskRunning {
			t.DesiredHost, t.Updated = host, time.Now().UTC()
			check := store.Check{Tasks: map[string]uint64{t.ID: t.ModifyIndex}}
			cmds = append([][]byte{store.MustEncode(store.CmdCheck, check)}, cmds...)
			cmds = append(cmds, store.MustEncode(store.CmdPutTask, t))
		}
		return store.EncodeBatch(cmds...)
	})
	if err != nil {
		return fmt.Errorf("record the end of move %s: %w", mv.ID, err)
	}
	m.r.log.Info("move ended", "move", mv.ID, "state", mv.State, "error", mv.Error)
	return nil
}

// startRollback records why the move rolls back.
func (m *mover) startRollback(mv store.Move, cause error) error {
	mv.State, mv.Error = store.MoveRollingBack, cause.Error()
	m.r.log.Warn("move rolling back", "move", mv.ID, "err", cause)
	return m.save(mv)
}

// rollbackOnce is one attempt at the rollback, bounded so that a call to
// a host that stopped answering is given up and tried again.
func (m *mover) rollbackOnce(ctx context.Context, mv store.Move) error {
	ctx, cancel := context.WithTimeout(ctx, rollbackAttempt)
	defer cancel()
	return m.rollback(ctx, mv)
}

// rollback undoes what the move did, in reverse: the target's container
// goes, the volumes come back to the source, the source container runs
// again. Each part is idempotent; a part that cannot be done yet (a host
// is unreachable) is retried until it can, so the move never ends with
// the task running nowhere or twice.
func (m *mover) rollback(ctx context.Context, mv store.Move) error {
	// From the start step on, the target may have run the container and
	// written to its volumes.
	ran := stepIndex(mv.Step) >= stepIndex(StepStart)
	if m.up(mv.To) {
		if err := m.r.opts.Tasks.RemoveTask(ctx, mv.TaskID, mv.To); err != nil {
			return err
		}
	} else if ran {
		return fmt.Errorf("the task's container may run on %s, which is down: waiting for it to remove it", mv.To)
	}
	if !m.up(mv.From) {
		if !volumes.AllBlock(m.r.opts.Store.View(), mv.Volumes) {
			return fmt.Errorf("the source %s is down: waiting for it to start the task there again", mv.From)
		}
		// Nowhere to roll back to, and no need: a task whose volumes are
		// all on shared storage can leave a host that is down. The move
		// ends failed, the volumes stay where they are, and the
		// reconciler tries again, through a new move.
		mv.State, mv.Finished = store.MoveFailed, time.Now().UTC()
		mv.Error += fmt.Sprintf("; not rolled back: the source %s is down", mv.From)
		return m.finish(mv)
	}
	if err := m.eachVolume(&mv, "", func(name string) error { return m.giveBack(ctx, mv, name, ran) }); err != nil {
		return err
	}
	if _, err := m.r.opts.Tasks.RunTask(ctx, mv.TaskID, mv.From); err != nil {
		return err
	}
	if err := m.dropCheckpoint(ctx, &mv); err != nil {
		m.r.log.Warn("remove a rolled-back live move's checkpoint volume", "volume", mv.Checkpoint, "err", err)
	}
	mv.State, mv.Finished = store.MoveRolledBack, time.Now().UTC()
	return m.finish(mv)
}

// giveBack returns one volume to the source. Before the target ran the
// container, the source's copy is exactly what was handed over: the lease
// just goes back. Afterwards the target may have written: its data comes
// back by a sync (which needs the target up).
func (m *mover) giveBack(ctx context.Context, mv store.Move, name string, ran bool) error {
	vol, ok := m.r.opts.Store.View().Volume(name)
	if !ok || vol.OwnerHost != mv.To || !ran {
		return m.r.opts.Volumes.Reclaim(name, mv.From, mv.To)
	}
	if !m.up(mv.To) {
		return fmt.Errorf("volume %s was written on %s, which is down: waiting for it to bring the data back", name, mv.To)
	}
	_, err := m.r.opts.Volumes.Sync(ctx, name, mv.From, nil)
	return err
}

// eachVolume runs f for the task's volumes of a backend ("" for all); a
// live move's checkpoint volume is not one of them.
func (m *mover) eachVolume(mv *store.Move, backend string, f func(name string) error) error {
	v := m.r.opts.Store.View()
	for _, name := range mv.Volumes {
		vol, ok := v.Volume(name)
		if !ok {
			return fmt.Errorf("volume %s is gone from the cluster", name)
		}
		if backend != "" && vol.Backend != backend {
			continue
		}
		if err := f(name); err != nil {
			return err
		}
	}
	return nil
}

// onProgress records the volumes' transfer progress in the move, at most
// every progressEvery, so `clusterctl move` and the dashboard can show it.
func (m *mover) onProgress(mv *store.Move) func(agentapi.VolumeProgress) {
	if m.roundKey == "" {
		m.sent = mv.BytesSent // resumed by this manager: carry on from the record
	}
	return func(p agentapi.VolumeProgress) {
		if key := fmt.Sprintf("%s/%d/%s", p.Volume, p.Round, p.Step); key != m.roundKey {
			m.sent, m.roundKey, m.roundBytes = m.sent+m.roundBytes, key, 0
		}
		if p.BytesTotal > 0 {
			mv.Bytes = p.BytesTotal
		}
		if p.BytesSent > 0 {
			m.roundBytes, mv.Rate = p.BytesSent, p.BytesPerSec
		}
		mv.BytesSent = m.sent + m.roundBytes
		if time.Since(m.progress) < progressEvery {
			return
		}
		m.progress = time.Now()
		if err := m.save(*mv); err != nil {
			m.r.log.Debug("record move progress", "move", mv.ID, "err", err)
		}
	}
}

// save records the move.
func (m *mover) save(mv store.Move) error {
	if _, err := m.r.opts.Apply(store.MustEncode(store.CmdPutMove, stamp(mv))); err != nil {
		return fmt.Errorf("record move %s: %w", mv.ID, err)
	}
	return nil
}

// stamp sets a move's Updated time.
func stamp(mv store.Move) store.Move {
	mv.Updated = time.Now().UTC()
	return mv
}

// up says whether a host is in the cluster and up.
func (m *mover) up(host string) bool {
	h, ok := m.r.opts.Store.View().Host(host)
	return ok && h.State == store.HostUp
}

// pause waits d, or less if ctx ends.
func pause(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
