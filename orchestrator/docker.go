package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"

	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/spec"
	"github.com/clusterctl/clusterctl/store"
)

// Docker call bounds: creating and starting a container takes well under a
// second on a healthy host; stopping waits for the process like Compose.
const (
	dockerTimeout = 30 * time.Second
	stopTimeout   = 10 // seconds, Compose's default
)

// actionKind is what an action does.
type actionKind int

const (
	actCreate    actionKind = iota // create (replacing a container if set) and start
	actStart                       // start an existing container (or adopt a running one)
	actRemove                      // stop and remove a container
	actRemoveApp                   // remove a removed app's networks and volumes, then the app
	actPrepare                     // create a waiting task's networks and volumes ahead of it
)

// prepared is how long a prepared task is not prepared again.
const prepared = 10 * time.Minute

// action is one piece of Docker work decided by a pass.
type action struct {
	kind      actionKind
	key       string // at most one action per key at a time
	task      store.Task
	host      string
	container string // the container to start or remove
	replace   string // actCreate: the outdated container to remove first
	restart   bool   // actStart: a restart under the restart policy
	app       store.App
	// restore starts the container from a checkpoint (a live move).
	restore container.StartOptions
}

// removeAction removes a located container under key.
func removeAction(key string, l located) action {
	return action{kind: actRemove, key: key, host: l.host, container: l.c.ID}
}

// run performs an action and records its outcome in the store. A failure
// is recorded in the task's message and retried after actionBackoff.
func (o *Orchestrator) run(ctx context.Context, a action) {
	ctx, cancel := context.WithTimeout(ctx, dockerTimeout)
	defer cancel()
	var err error
	switch a.kind {
	case actCreate:
		err = o.create(ctx, a)
	case actStart:
		err = o.start(ctx, a)
	case actRemove:
		err = o.remove(ctx, a.host, a.container)
	case actRemoveApp:
		err = o.removeApp(ctx, a.app)
	case actPrepare:
		err = o.prepare(ctx, a)
	}
	if err == nil || errors.Is(ctx.Err(), context.Canceled) {
		return // done, or leadership lost: the next leader decides again
	}
	o.log.Warn("docker action failed", "key", a.key, "host", a.host, "err", err)
	o.memory.holdUntil(a.key, time.Now().Add(actionBackoff))
	if a.task.ID != "" {
		// "failed: " tells `up` to stop waiting: it reports what runs
		// where and exits; the reconciler keeps retrying meanwhile.
		o.recordTask(a.task.ID, func(t *store.Task) { t.Message = "failed: " + err.Error() })
	}
}

// engineOf returns the Docker client of a host in the store.
func (o *Orchestrator) engineOf(host string) (*client.Client, error) {
	h, ok := o.opts.Store.View().Host(host)
	if !ok {
		return nil, fmt.Errorf("host %s is not in the cluster", host)
	}
	return o.engines.get(h)
}

// create makes a task's container on its host (its networks and volumes
// first), connects it to its other networks and starts it.
func (o *Orchestrator) create(ctx context.Context, a action) error {
	t := a.task
	app, svc, err := o.specOf(t)
	if err != nil {
		return err
	}
	d, err := o.engineOf(a.host)
	if err != nil {
		return err
	}
	if a.replace != "" {
		if err := o.remove(ctx, a.host, a.replace); err != nil {
			return err
		}
	}
	if err := o.ensureResources(ctx, d, app, svc, a.host); err != nil {
		return err
	}
	cfg, err := app.Container(svc, spec.TaskRef{ID: t.ID, Slot: t.Slot, Host: a.host, Version: t.Version})
	if err != nil {
		return fmt.Errorf("container of %s: %w", t.ID, err)
	}
	if err := o.leaseAddresses(app, t, &cfg); err != nil {
		return err
	}
	id, err := o.createContainer(ctx, d, cfg, t, a.host)
	if err != nil {
		return err
	}
	for _, c := range cfg.Connect {
		if err := d.NetworkConnect(ctx, c.Network, id, c.Endpoint); err != nil && !isAlreadyConnected(err) {
			return fmt.Errorf("connect %s to %s on %s: %w", cfg.Name, c.Network, a.host, err)
		}
	}
	o.log.Info("container created", "task", t.ID, "host", a.host, "container", cfg.Name)
	return o.start(ctx, action{task: t, host: a.host, container: id, restore: a.restore})
}

// prepare creates a task's networks and volumes on its host.
func (o *Orchestrator) prepare(ctx context.Context, a action) error {
	app, svc, err := o.specOf(a.task)
	if err != nil {
		return err
	}
	d, err := o.engineOf(a.host)
	if err != nil {
		return err
	}
	if err := o.ensureResources(ctx, d, app, svc, a.host); err != nil {
		return err
	}
	o.memory.holdUntil(a.key, time.Now().Add(prepared))
	return nil
}

// createContainer creates the container, or adopts the one of the same
// name if it is this task's at this version (a create whose answer was
// lost). A name taken by anything else is an error, never removed.
func (o *Orchestrator) createContainer(ctx context.Context, d *client.Client, cfg spec.ContainerConfig, t store.Task, host string) (string, error) {
	resp, err := d.ContainerCreate(ctx, cfg.Config, cfg.Host, cfg.Network, nil, cfg.Name)
	if err == nil {
		return resp.ID, nil
	}
	if cerrdefs.IsNotFound(err) {
		return "", fmt.Errorf("image %s is not on %s: load or push it there (%w)", cfg.Config.Image, host, err)
	}
	if !cerrdefs.IsConflict(err) {
		return "", fmt.Errorf("create %s on %s: %w", cfg.Name, host, err)
	}
	have, ierr := d.ContainerInspect(ctx, cfg.Name)
	if ierr != nil {
		return "", fmt.Errorf("create %s on %s: %w", cfg.Name, host, err)
	}
	labels := have.Config.Labels
	switch {
	case labels[spec.LabelTask] != t.ID:
		return "", fmt.Errorf("container name %s is taken on %s by a container clusterctl does not run for this task: remove or rename it", cfg.Name, host)
	case labels[spec.LabelVersion] != t.Version:
		if err := o.remove(ctx, host, have.ID); err != nil {
			return "", err
		}
		return o.createContainer(ctx, d, cfg, t, host)
	}
	return have.ID, nil
}

// start starts a container (a no-op if it runs) and records the task as
// running there, with its addresses.
func (o *Orchestrator) start(ctx context.Context, a action) error {
	d, err := o.engineOf(a.host)
	if err != nil {
		return err
	}
	if err := d.ContainerStart(ctx, a.container, a.restore); err != nil {
		return fmt.Errorf("start %s on %s: %w", a.task.ID, a.host, err)
	}
	info, err := d.ContainerInspect(ctx, a.container)
	if err != nil {
		return fmt.Errorf("inspect %s on %s: %w", a.task.ID, a.host, err)
	}
	var ips []string
	if info.NetworkSettings != nil {
		for _, name := range slices.Sorted(maps.Keys(info.NetworkSettings.Networks)) {
			if ip := info.NetworkSettings.Networks[name].IPAddress; ip != "" {
				ips = append(ips, ip)
			}
		}
	}
	health := ""
	if info.State != nil && info.State.Health != nil {
		health = info.State.Health.Status
	}
	o.recordTask(a.task.ID, func(t *store.Task) {
		t.Host, t.ContainerID, t.IPs, t.Health = a.host, info.ID, ips, health
		t.ObservedState, t.Message, t.ExitCode = store.TaskRunning, "", 0
		if a.restart {
			t.Restarts++
		}
	})
	return nil
}

// remove stops (gracefully, like Compose) and removes a container; one
// already gone is fine.
func (o *Orchestrator) remove(ctx context.Context, host, id string) error {
	d, err := o.engineOf(host)
	if err != nil {
		return err
	}
	timeout := stopTimeout
	if err := d.ContainerStop(ctx, id, container.StopOptions{Timeout: &timeout}); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("stop %.12s on %s: %w", id, host, err)
	}
	if err := d.ContainerRemove(ctx, id, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove %.12s on %s: %w", id, host, err)
	}
	o.log.Info("container removed", "host", host, "container", fmt.Sprintf("%.12s", id))
	return nil
}

// ensureResources creates the networks and volumes a service uses on a
// host, unless they exist (external ones must).
func (o *Orchestrator) ensureResources(ctx context.Context, d *client.Client, app spec.App, svc spec.Service, host string) error {
	for _, att := range svc.Networks {
		n, ok := app.Network(att.Network)
		if !ok {
			return fmt.Errorf("service %s: no network %s in app %s", svc.Name, att.Network, app.Name)
		}
		if err := o.ensureNetwork(ctx, d, app, n, host); err != nil {
			return err
		}
	}
	for _, m := range svc.Mounts {
		if m.Type != "volume" {
			continue
		}
		v, ok := app.Volume(m.Source)
		if !ok || v.External {
			continue // anonymous, or external: Docker creates or finds it
		}
		opts := app.VolumeCreate(v)
		if _, err := d.VolumeCreate(ctx, opts); err != nil {
			return fmt.Errorf("create volume %s on %s: %w", v.DockerName, host, err)
		}
	}
	return nil
}

// ensureNetwork creates one of an app's networks on a host unless it
// exists. Docker lets two networks have the same name, so two tasks
// preparing the same network on the same host at once (one waiting for a
// dependency, one starting) must not both create it: one host's network is
// made under its own lock.
func (o *Orchestrator) ensureNetwork(ctx context.Context, d *client.Client, app spec.App, n spec.Network, host string) error {
	unlock := o.netLocks.lock(host + "/" + n.DockerName)
	defer unlock()
	if _, err := d.NetworkInspect(ctx, n.DockerName, network.InspectOptions{}); err == nil {
		return nil
	} else if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("network %s on %s: %w", n.DockerName, host, err)
	}
	if n.External {
		return fmt.Errorf("external network %s does not exist on %s: create it there first", n.DockerName, host)
	}
	opts := app.NetworkCreate(n)
	if isClusterNet(n) {
		var err error
		if opts, _, err = o.clusterNetwork(app, n); err != nil {
			return err
		}
	}
	if _, err := d.NetworkCreate(ctx, n.DockerName, opts); err != nil && !cerrdefs.IsConflict(err) {
		return fmt.Errorf("create network %s on %s: %w", n.DockerName, host, err)
	}
	return nil
}

// removeApp removes a removed app's networks (and volumes if asked) from
// every up host, then the app and its services from the store. A host
// that is down keeps them until it is swept; the app is forgotten anyway.
func (o *Orchestrator) removeApp(ctx context.Context, a store.App) error {
	byProject := filters.NewArgs(filters.Arg("label", spec.LabelProject+"="+a.Name), filters.Arg("label", spec.LabelManagedBy+"=true"))
	for _, h := range o.opts.Store.View().Hosts() {
		if h.State != store.HostUp {
			continue
		}
		d, err := o.engines.get(h)
		if err != nil {
			return err
		}
		if err := removeNetworks(ctx, d, byProject, h.Name); err != nil {
			return err
		}
		if a.RemoveVolumes {
			if err := removeVolumes(ctx, d, byProject, h.Name); err != nil {
				return err
			}
		}
	}
	b := newBatch()
	b.check.Tasks = nil
	for _, s := range o.opts.Store.View().Services(a.Name) {
		b.put(store.CmdDeleteService, store.NameRef{Name: a.Name + "/" + s.Name})
	}
	b.put(store.CmdDeleteApp, store.NameRef{Name: a.Name})
	if _, err := o.commit(b.commands()); err != nil {
		return fmt.Errorf("forget app %s: %w", a.Name, err)
	}
	o.log.Info("app removed", "app", a.Name)
	return nil
}

// removeNetworks removes the networks matching f on one host.
func removeNetworks(ctx context.Context, d *client.Client, f filters.Args, host string) error {
	nets, err := d.NetworkList(ctx, network.ListOptions{Filters: f})
	if err != nil {
		return fmt.Errorf("list networks on %s: %w", host, err)
	}
	for _, n := range nets {
		if err := d.NetworkRemove(ctx, n.ID); err != nil && !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("remove network %s on %s: %w", n.Name, host, err)
		}
	}
	return nil
}

// removeVolumes removes the volumes matching f on one host.
func removeVolumes(ctx context.Context, d *client.Client, f filters.Args, host string) error {
	vols, err := d.VolumeList(ctx, volume.ListOptions{Filters: f})
	if err != nil {
		return fmt.Errorf("list volumes on %s: %w", host, err)
	}
	for _, v := range vols.Volumes {
		if err := d.VolumeRemove(ctx, v.Name, false); err != nil && !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("remove volume %s on %s: %w", v.Name, host, err)
		}
	}
	return nil
}

// specOf returns the app and service specs of a task.
func (o *Orchestrator) specOf(t store.Task) (spec.App, spec.Service, error) {
	a, _, err := loadApp(o.opts.Store.View(), t.App)
	if err != nil {
		return spec.App{}, spec.Service{}, err
	}
	svc, ok := a.Service(t.Service)
	if !ok {
		return spec.App{}, spec.Service{}, fmt.Errorf("app %s has no service %s", t.App, t.Service)
	}
	return a, svc, nil
}

// recordTask changes a task in the store, provided nobody else changed it
// since it was read; a lost race is left to the next pass.
func (o *Orchestrator) recordTask(id string, change func(*store.Task)) {
	t, ok := o.opts.Store.View().Task(id)
	if !ok {
		return
	}
	change(&t)
	t.Updated = time.Now().UTC()
	b := newBatch()
	b.check.Tasks[id] = t.ModifyIndex
	b.put(store.CmdPutTask, t)
	if _, err := o.commit(b.commands()); err != nil && !isConflict(err) {
		o.log.Warn("record task", "task", id, "err", err)
	}
}

// isAlreadyConnected says whether a network connect failed only because
// the container is on that network already.
func isAlreadyConnected(err error) bool {
	return cerrdefs.IsConflict(err) || cerrdefs.IsAlreadyExists(err)
}

// checkImages lists, for a plan's new and replaced tasks, the hosts that
// do not have the task's image: `up` refuses such a plan before creating
// anything, `plan` shows it as a problem.
func (o *Orchestrator) checkImages(ctx context.Context, app spec.App, res api.PlanResult) []string {
	type need struct{ host, image string }
	seen := map[need]bool{}
	var problems []string
	for _, t := range res.Tasks {
		svc, ok := app.Service(t.Service)
		n := need{t.Host, svc.Image}
		if !ok || t.Host == "" || seen[n] || (t.Action != api.ActionCreate && t.Action != api.ActionUpdate) {
			continue
		}
		seen[n] = true
		if err := o.hasImage(ctx, n.host, n.image); err != nil {
			problems = append(problems, fmt.Sprintf("service %s: %v", t.Service, err))
		}
	}
	return problems
}

// hasImage checks that a host's engine has an image.
func (o *Orchestrator) hasImage(ctx context.Context, host, image string) error {
	d, err := o.engineOf(host)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = d.ImageInspect(ctx, image)
	switch {
	case cerrdefs.IsNotFound(err):
		return fmt.Errorf("image %s is not on %s: load or push it there first", image, host)
	case err != nil:
		return fmt.Errorf("check image %s on %s: %w", image, host, err)
	}
	return nil
}
