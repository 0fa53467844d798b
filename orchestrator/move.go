package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/clusterctl/clusterctl/migrate/live"
	"github.com/clusterctl/clusterctl/scheduler"
	"github.com/clusterctl/clusterctl/spec"
	"github.com/clusterctl/clusterctl/store"
)

// This file is the Docker side of a move (package migrate drives the
// steps): whether a task may go to a host, and stopping, running, checking
// and removing its container on one host. The reconciler leaves a task
// alone while a move holds it (see pass.moving).

// MovePlan is what a move of one task needs to know before it starts.
type MovePlan struct {
	Task store.Task
	From string
	To   string
	// Volumes are the task's cluster volumes, which follow it.
	Volumes []string
}

// PlanMove checks that a task can move to host to now: it runs, the target
// is another host that fits it (up, not draining, constraints, resources,
// ports), and all its data can follow (cluster volumes only, their data
// reachable). The refusal says why in one line.
func (o *Orchestrator) PlanMove(taskID, to string) (MovePlan, error) {
	v := o.opts.Store.View()
	t, ok := v.Task(taskID)
	if !ok {
		return MovePlan{}, store.Refuse(store.ErrNotFound, "no task %s", taskID)
	}
	name := fmt.Sprintf("%s.%d", t.Service, t.Slot)
	for _, m := range v.Moves() {
		if m.TaskID == t.ID && m.Active() {
			return MovePlan{}, store.Refuse(store.ErrConflict, "%s is already moving (%s to %s, %s)", name, m.From, m.To, m.Step)
		}
	}
	if t.DesiredState != store.TaskRunning || t.DesiredHost == "" {
		return MovePlan{}, store.Refuse(store.ErrConflict, "%s is not placed on a host (it is %s): nothing to move", name, t.ObservedState)
	}
	if t.DesiredHost == to {
		return MovePlan{}, store.Refuse(store.ErrConflict, "%s already runs on %s", name, to)
	}
	app, svc, err := o.specOf(t)
	if err != nil {
		return MovePlan{}, err
	}
	if stranded := app.StrandedMounts(svc); len(stranded) > 0 {
		return MovePlan{}, store.Refuse(store.ErrInvalid, "cannot move %s: %s", name, stranded[0])
	}
	if partner := spec.Partner(svc); partner != "" {
		return MovePlan{}, store.Refuse(store.ErrInvalid, "cannot move %s alone: it shares a host with service %s (network_mode or volumes_from)", name, partner)
	}
	ts := app.TaskSpec(svc, t.ID, t.Slot)
	if err := o.sourceReady(v, t, ts.Volumes); err != nil {
		return MovePlan{}, fmt.Errorf("cannot move %s: %w", name, err)
	}
	if err := o.fits(v, t, ts, to); err != nil {
		return MovePlan{}, err
	}
	return MovePlan{Task: t, From: t.DesiredHost, To: to, Volumes: ts.Volumes}, nil
}

// sourceReady checks that the data can leave the task's host: the host is
// up, or every volume is on shared storage (block), or there is none.
func (o *Orchestrator) sourceReady(v *store.View, t store.Task, vols []string) error {
	for _, name := range vols {
		vol, ok := v.Volume(name)
		if !ok {
			return store.Refuse(store.ErrConflict, "its volume %s is not in the cluster yet", name)
		}
		if vol.MovingTo != "" {
			return store.Refuse(store.ErrConflict, "its volume %s is being moved to %s", name, vol.MovingTo)
		}
		if vol.Backend == store.VolumeCopy && vol.OwnerHost != "" && !upHost(v, vol.OwnerHost) {
			return store.Refuse(store.ErrConflict, "its volume %s keeps its data on %s, which is down", name, vol.OwnerHost)
		}
	}
	return nil
}

// moveSnapshot is the scheduler's view for moving a task: as if the task
// and its volumes, which go with it, were placed nowhere yet.
func moveSnapshot(v *store.View, t store.Task, ts scheduler.TaskSpec) *scheduler.Snapshot {
	free := map[string]bool{}
	for _, name := range ts.Volumes {
		free[name] = true
	}
	return snapshotWithout(v, specsOf(v), map[string]bool{t.ID: true}, free)
}

// fits asks the scheduler whether to can take the task.
func (o *Orchestrator) fits(v *store.View, t store.Task, ts scheduler.TaskSpec, to string) error {
	snap := moveSnapshot(v, t, ts)
	o.planMu.Lock()
	defer o.planMu.Unlock()
	if err := o.stack.Fits(snap, ts, to); err != nil {
		code := store.ErrConflict
		if _, ok := v.Host(to); !ok {
			code = store.ErrNotFound
		}
		return store.Refuse(code, "%s.%d cannot go to %s: %v", t.Service, t.Slot, to, err)
	}
	return nil
}

// PickTarget chooses where a drain sends a task: the scheduler's best
// host other than the one it is on.
func (o *Orchestrator) PickTarget(taskID string) (string, error) {
	v := o.opts.Store.View()
	t, ok := v.Task(taskID)
	if !ok {
		return "", store.Refuse(store.ErrNotFound, "no task %s", taskID)
	}
	app, svc, err := o.specOf(t)
	if err != nil {
		return "", err
	}
	ts := app.TaskSpec(svc, t.ID, t.Slot)
	snap := moveSnapshot(v, t, ts)
	if h := snap.Host(t.DesiredHost); h != nil {
		h.Draining = true
	}
	o.planMu.Lock()
	defer o.planMu.Unlock()
	plan := o.stack.Place(snap, []scheduler.TaskSpec{ts})
	if err := plan.Err(); err != nil {
		return "", store.Refuse(store.ErrConflict, "%v", err)
	}
	return plan.Placements[0].Host, nil
}

// StopTask stops the task's container on host gracefully, keeping it (a
// rollback starts it again), and waits until the host's agent reports it
// stopped, so that volume handovers see no running user.
func (o *Orchestrator) StopTask(ctx context.Context, taskID, host string) error {
	return o.stopWith(ctx, taskID, host, func(ctx context.Context, d *client.Client, c store.Container) error {
		timeout := stopTimeout
		if err := d.ContainerStop(ctx, c.ID, container.StopOptions{Timeout: &timeout}); err != nil && !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("stop %s on %s: %w", c.Name, host, err)
		}
		return nil
	})
}

// stopWith stops the task's container on host with stop (none there:
// nothing runs), then waits until the host's agent reports it stopped.
func (o *Orchestrator) stopWith(ctx context.Context, taskID, host string, stop func(context.Context, *client.Client, store.Container) error) error {
	ctx, cancel := context.WithTimeout(ctx, dockerTimeout+stopTimeout*time.Second)
	defer cancel()
	c, ok := o.containerOf(taskID, host)
	if !ok {
		return nil
	}
	d, err := o.engineOf(host)
	if err != nil {
		return err
	}
	if err := stop(ctx, d, c); err != nil {
		return err
	}
	return o.waitStopped(ctx, taskID, host)
}

// waitStopped polls the store until host's report of the task's
// container says it does not run.
func (o *Orchestrator) waitStopped(ctx context.Context, taskID, host string) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if c, ok := o.containerOf(taskID, host); !ok || c.State != "running" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s's report of task %s: %w", host, taskID, ctx.Err())
		case <-tick.C:
		}
	}
}

// containerOf is the task's container on host as its agent last reported.
func (o *Orchestrator) containerOf(taskID, host string) (store.Container, bool) {
	h, ok := o.opts.Store.View().Host(host)
	if !ok {
		return store.Container{}, false
	}
	for _, c := range h.Containers {
		if c.Labels[spec.LabelTask] == taskID {
			return c, true
		}
	}
	return store.Container{}, false
}

// RunTask creates (or adopts) the task's container on host with the same
// config, addresses and volumes, starts it, and returns its ID.
func (o *Orchestrator) RunTask(ctx context.Context, taskID, host string) (string, error) {
	return o.runTask(ctx, taskID, host, container.StartOptions{})
}

// checkpointID names the checkpoint of a live move in its directory.
const checkpointID = "move"

// CheckpointTask stops the task's container on host into a checkpoint
// (CRIU, through Docker's experimental API) written in dir, a directory
// on that host, and waits until the host reports it stopped.
func (o *Orchestrator) CheckpointTask(ctx context.Context, taskID, host, dir string) error {
	if _, ok := o.containerOf(taskID, host); !ok {
		return fmt.Errorf("task %s has no container on %s to checkpoint", taskID, host)
	}
	return o.stopWith(ctx, taskID, host, func(ctx context.Context, d *client.Client, c store.Container) error {
		if err := (live.Docker{Engine: d}).Checkpoint(ctx, c.ID, checkpointID, dir); err != nil {
			return fmt.Errorf("on %s: %w", host, err)
		}
		return nil
	})
}

// RestoreTask is RunTask with the process restored from the checkpoint
// in dir, a directory on host, instead of started afresh.
func (o *Orchestrator) RestoreTask(ctx context.Context, taskID, host, dir string) (string, error) {
	return o.runTask(ctx, taskID, host, container.StartOptions{CheckpointID: checkpointID, CheckpointDir: dir})
}

// runTask creates the task's container on host and starts it so.
func (o *Orchestrator) runTask(ctx context.Context, taskID, host string, start container.StartOptions) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, dockerTimeout)
	defer cancel()
	t, ok := o.opts.Store.View().Task(taskID)
	if !ok {
		return "", store.Refuse(store.ErrNotFound, "no task %s", taskID)
	}
	if err := o.create(ctx, action{kind: actCreate, key: t.ID, task: t, host: host, restore: start}); err != nil {
		return "", err
	}
	c, err := o.inspectTask(ctx, t, host)
	if err != nil {
		return "", err
	}
	return c.ID, nil
}

// inspectTask inspects the task's container on host by its name.
func (o *Orchestrator) inspectTask(ctx context.Context, t store.Task, host string) (container.InspectResponse, error) {
	app, svc, err := o.specOf(t)
	if err != nil {
		return container.InspectResponse{}, err
	}
	d, err := o.engineOf(host)
	if err != nil {
		return container.InspectResponse{}, err
	}
	info, err := d.ContainerInspect(ctx, spec.ContainerName(app.Name, svc, t.Slot))
	if err != nil {
		return info, fmt.Errorf("inspect %s.%d on %s: %w", t.Service, t.Slot, host, err)
	}
	return info, nil
}

// VerifyTask waits until the task's container on host serves: healthy if
// it has a healthcheck, else its published ports accept connections, else
// running. A container that exits fails at once.
func (o *Orchestrator) VerifyTask(ctx context.Context, taskID, host string) error {
	v := o.opts.Store.View()
	t, ok := v.Task(taskID)
	if !ok {
		return store.Refuse(store.ErrNotFound, "no task %s", taskID)
	}
	h, _ := v.Host(host)
	_, svc, err := o.specOf(t)
	if err != nil {
		return err
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, dockerTimeout)
		err := o.serves(cctx, t, svc, h)
		cancel()
		if err == nil || errors.Is(err, errExited) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s.%d on %s: %v", t.Service, t.Slot, host, err)
		case <-tick.C:
		}
	}
}

// errExited marks a container that stopped while it was being verified.
var errExited = errors.New("exited")

// serves checks once whether the task's container on h serves.
func (o *Orchestrator) serves(ctx context.Context, t store.Task, svc spec.Service, h store.Host) error {
	info, err := o.inspectTask(ctx, t, h.Name)
	if err != nil {
		return err
	}
	st := info.State
	switch {
	case st == nil:
		return errors.New("no state yet")
	case !st.Running && st.Status != "created":
		return fmt.Errorf("%s.%d %w on %s with code %d", t.Service, t.Slot, errExited, h.Name, st.ExitCode)
	case !st.Running:
		return errors.New("not running yet")
	case st.Health != nil:
		if st.Health.Status != "healthy" {
			return fmt.Errorf("not healthy yet (%s)", st.Health.Status)
		}
		return nil
	}
	for _, p := range svc.Ports {
		if p.Published == 0 || p.Protocol == "udp" {
			continue
		}
		c, err := net.DialTimeout("tcp", net.JoinHostPort(h.Addr, strconv.Itoa(int(p.Published))), 200*time.Millisecond)
		if err != nil {
			return fmt.Errorf("port %d does not answer yet", p.Published)
		}
		c.Close()
	}
	return nil
}

// RemoveTask removes the task's container on host, if there is one.
func (o *Orchestrator) RemoveTask(ctx context.Context, taskID, host string) error {
	ctx, cancel := context.WithTimeout(ctx, dockerTimeout+stopTimeout*time.Second)
	defer cancel()
	t, ok := o.opts.Store.View().Task(taskID)
	if !ok {
		return nil
	}
	info, err := o.inspectTask(ctx, t, host)
	if cerrdefs.IsNotFound(errors.Unwrap(err)) {
		return nil
	}
	if err != nil {
		return err
	}
	if info.Config == nil || info.Config.Labels[spec.LabelTask] != taskID {
		return fmt.Errorf("container %s on %s is not task %s's: left alone", info.Name, host, taskID)
	}
	return o.remove(ctx, host, info.ID)
}

// upHost says whether a host is in the view and up.
func upHost(v *store.View, name string) bool {
	h, ok := v.Host(name)
	return ok && h.State == store.HostUp
}

// Busy says whether the reconciler is doing Docker work for a task: a
// move waits for it to finish before it takes the task over.
func (o *Orchestrator) Busy(taskID string) bool { return o.work.busy(taskID) }
