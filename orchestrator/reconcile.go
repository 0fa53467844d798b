package orchestrator

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/clusterctl/clusterctl/scheduler"
	"github.com/clusterctl/clusterctl/spec"
	"github.com/clusterctl/clusterctl/store"
	"github.com/clusterctl/clusterctl/volumes"
)

// actionBackoff is how long a task whose Docker action failed waits
// before the next attempt, so a broken host is not hammered.
const actionBackoff = 2 * time.Second

// pass is one reconciliation: a view of the store and what it decided.
type pass struct {
	v      *store.View
	now    time.Time
	specs  map[string]spec.App
	hosts  map[string]store.Host
	byTask map[string][]located // the containers of each task, on any host
	tasks  []store.Task
	// running holds the tasks desired running by ServiceKey(app,
	// service), and apps the apps that have tasks at all: dependency and
	// rolling-update checks look them up instead of scanning every task.
	running map[string][]store.Task
	apps    map[string]bool
	// moving holds the tasks a move holds: the move (package migrate)
	// stops, starts and removes their containers, not the reconciler.
	moving map[string]bool

	updates []store.Task // observed-state changes to commit
	deletes []string     // tasks to forget
	place   []store.Task // tasks to (re)place
	actions []action     // Docker work
}

// located is a container and the host it is on.
type located struct {
	host string
	c    store.Container
}

// reconcile runs one pass: decide from a view, commit what was decided
// about the store, and start the Docker work in the background. It
// returns the index of the view it decided from.
func (o *Orchestrator) reconcile(ctx context.Context) (uint64, error) {
	v := o.opts.Store.View()
	p := newPass(v, time.Now())
	o.decide(p)
	if err := o.placeTasks(p); err != nil {
		return v.Index(), err
	}
	if err := o.commitObserved(p); err != nil {
		return v.Index(), err
	}
	o.releaseLeases(o.opts.Store.View())
	for _, a := range p.actions {
		o.work.start(a.key, func() { o.run(ctx, a) })
	}
	return v.Index(), nil
}

// newPass indexes a view for one pass.
func newPass(v *store.View, now time.Time) *pass {
	p := &pass{v: v, now: now, specs: specsOf(v), hosts: map[string]store.Host{}, byTask: map[string][]located{},
		tasks: v.Tasks(""), running: map[string][]store.Task{}, apps: map[string]bool{}, moving: map[string]bool{}}
	for _, m := range v.Moves() {
		if m.Active() {
			p.moving[m.TaskID] = true
		}
	}
	for _, t := range p.tasks {
		p.apps[t.App] = true
		if t.DesiredState == store.TaskRunning {
			key := scheduler.ServiceKey(t.App, t.Service)
			p.running[key] = append(p.running[key], t)
		}
	}
	for _, h := range v.Hosts() {
		p.hosts[h.Name] = h
		for _, c := range h.Containers {
			if id := c.Labels[spec.LabelTask]; id != "" {
				p.byTask[id] = append(p.byTask[id], located{host: h.Name, c: c})
			}
		}
	}
	return p
}

// up says whether a host is known and up.
func (p *pass) up(name string) bool { return p.hosts[name].State == store.HostUp }

// decide compares every task with its containers and records what to do.
func (o *Orchestrator) decide(p *pass) {
	for _, t := range p.tasks {
		if o.work.busy(t.ID) || o.memory.wait(t.ID, p.now) || p.moving[t.ID] {
			continue
		}
		if t.DesiredState == store.TaskShutdown {
			o.decideShutdown(p, t)
			continue
		}
		a, okApp := p.specs[t.App]
		svc, okSvc := a.Service(t.Service)
		if !okApp || !okSvc {
			continue // written by a newer manager, or mid-update: next pass
		}
		o.decideRunning(p, t, a, svc)
	}
	o.decideRollingUpdates(p)
	o.decideRemovedApps(p)
	o.decideOrphans(p)
}

// decideShutdown removes a task's containers, then forgets the task.
// Containers on hosts that are down cannot be removed now: the orphan
// sweep removes them when their host comes back.
func (o *Orchestrator) decideShutdown(p *pass, t store.Task) {
	left := false
	for _, l := range p.byTask[t.ID] {
		if p.up(l.host) {
			left = true
			p.actions = append(p.actions, removeAction(t.ID, l))
			break // one at a time under the task's key
		}
	}
	if !left {
		p.deletes = append(p.deletes, t.ID)
	}
}

// decideRunning brings a task that should run towards running on its host.
func (o *Orchestrator) decideRunning(p *pass, t store.Task, a spec.App, svc spec.Service) {
	if t.DesiredHost == "" {
		p.place = append(p.place, t)
		return
	}
	if !p.up(t.DesiredHost) {
		o.decideLost(p, t, a, svc)
		return
	}
	var here *located
	for _, l := range p.byTask[t.ID] {
		switch {
		case l.host != t.DesiredHost && p.up(l.host):
			// A copy left where the task ran before (its host came back
			// after the task was placed elsewhere): never two copies.
			p.actions = append(p.actions, removeAction("rm:"+l.c.ID, l))
		case l.host == t.DesiredHost && here == nil:
			here = &l
		}
	}
	switch {
	case here == nil:
		o.decideCreate(p, t, a, svc)
	case here.c.Labels[spec.LabelVersion] != t.Version:
		p.actions = append(p.actions, action{kind: actCreate, key: t.ID, task: t, host: t.DesiredHost, replace: here.c.ID})
	case here.c.State == "running":
		o.observeRunning(p, t, here)
	case here.c.State == "created":
		if msg := o.waitingFor(p, a, svc); msg != "" {
			p.observe(t, store.TaskPending, msg)
			return
		}
		p.actions = append(p.actions, action{kind: actStart, key: t.ID, task: t, host: t.DesiredHost, container: here.c.ID})
	default: // exited, dead
		o.decideRestart(p, t, svc, here.c)
	}
}

// decideLost handles a task whose host is down: a stateless one is placed
// elsewhere; a stateful one waits for its data.
func (o *Orchestrator) decideLost(p *pass, t store.Task, a spec.App, svc spec.Service) {
	vols := a.TaskSpec(svc, t.ID, t.Slot).Volumes
	if len(vols) == 0 {
		p.place = append(p.place, t)
		return
	}
	if volumes.AllBlock(p.v, vols) && o.opts.Evacuate != nil {
		o.evacuate(p, t)
		return
	}
	p.observe(t, store.TaskLost, fmt.Sprintf("waiting for %s to come back: its cluster volume %s keeps its data there", t.DesiredHost, strings.Join(vols, ", ")))
}

// evacuateEvery is how often a lost stateful task that could not be
// moved yet (no host fits) tries again.
const evacuateEvery = 5 * time.Second

// evacuate moves a stateful task off its host, which is down, with its
// block volumes and its addresses, through the same path as clusterctl
// move.
func (o *Orchestrator) evacuate(p *pass, t store.Task) {
	key := "evacuate:" + t.ID
	if o.memory.wait(key, p.now) {
		return
	}
	o.memory.holdUntil(key, p.now.Add(evacuateEvery))
	if err := o.opts.Evacuate(t.ID, "host "+t.DesiredHost+" down"); err != nil {
		p.observe(t, store.TaskLost, fmt.Sprintf("host %s is down; moving it elsewhere failed: %v", t.DesiredHost, err))
		return
	}
	o.log.Info("moving a task off a host that is down", "task", t.ID, "host", t.DesiredHost)
}

// decideCreate creates a task's container once its dependencies allow.
func (o *Orchestrator) decideCreate(p *pass, t store.Task, a spec.App, svc spec.Service) {
	h := p.hosts[t.DesiredHost]
	if t.ContainerID != "" && t.Host == t.DesiredHost && h.ModifyIndex <= t.ModifyIndex {
		// We created it after the host's last report: wait for the
		// report rather than create it twice.
		return
	}
	if msg := o.waitingFor(p, a, svc); msg != "" {
		p.observe(t, store.TaskPending, msg)
		// Meanwhile make its networks and volumes, so that it starts as
		// soon as its dependencies are ready.
		if key := "prepare:" + t.ID; !o.memory.wait(key, p.now) && !o.work.busy(key) {
			p.actions = append(p.actions, action{kind: actPrepare, key: key, task: t, host: t.DesiredHost})
		}
		return
	}
	p.actions = append(p.actions, action{kind: actCreate, key: t.ID, task: t, host: t.DesiredHost})
}

// observeRunning records a running container; one the task does not know
// yet (adopted after a failover or a lost write) is started again, which
// is a no-op for Docker but records its addresses.
func (o *Orchestrator) observeRunning(p *pass, t store.Task, l *located) {
	if t.ContainerID != l.c.ID || t.Host != l.host {
		p.actions = append(p.actions, action{kind: actStart, key: t.ID, task: t, host: l.host, container: l.c.ID})
		return
	}
	if t.ObservedState != store.TaskRunning || t.Health != l.c.Health || t.Message != "" {
		t.Health = l.c.Health
		p.observe(t, store.TaskRunning, "")
	}
}

// decideRestart applies the service's restart policy to a stopped
// container, or records that it stays stopped.
func (o *Orchestrator) decideRestart(p *pass, t store.Task, svc spec.Service, c store.Container) {
	policy := svc.Restart
	restart := policy.Condition == spec.RestartAlways || (policy.Condition == spec.RestartOnFailure && c.ExitCode != 0)
	if restart && (policy.MaxAttempts == 0 || t.Restarts < policy.MaxAttempts) {
		if t.ObservedState == store.TaskRunning { // first seen stopped: wait the delay
			t.ExitCode = c.ExitCode
			p.observe(t, store.TaskExited, fmt.Sprintf("exited with code %d: restarting", c.ExitCode))
			o.memory.holdUntil(t.ID, p.now.Add(policy.Delay))
			return
		}
		o.memory.holdUntil(t.ID, p.now.Add(policy.Delay))
		p.actions = append(p.actions, action{kind: actStart, key: t.ID, task: t, host: t.DesiredHost, container: c.ID, restart: true})
		return
	}
	msg := fmt.Sprintf("exited with code %d", c.ExitCode)
	if restart {
		msg += fmt.Sprintf(": not restarted after %d attempts", t.Restarts)
	}
	if t.ObservedState != store.TaskExited || t.ExitCode != c.ExitCode || t.Message != msg || t.ContainerID != c.ID {
		t.ExitCode, t.ContainerID, t.Host = c.ExitCode, c.ID, t.DesiredHost
		p.observe(t, store.TaskExited, msg)
	}
}

// waitingFor says which dependency a service's new containers wait for,
// "" when all are met.
func (o *Orchestrator) waitingFor(p *pass, a spec.App, svc spec.Service) string {
	for _, d := range svc.DependsOn {
		for _, t := range p.running[scheduler.ServiceKey(a.Name, d.Service)] {
			if msg := unmet(d, t); msg != "" {
				return msg
			}
		}
	}
	return ""
}

// unmet says how task t of a dependency fails condition d, "" if it meets it.
func unmet(d spec.Dependency, t store.Task) string {
	name := fmt.Sprintf("%s.%d", t.Service, t.Slot)
	switch d.Condition {
	case spec.ConditionHealthy:
		if t.ObservedState != store.TaskRunning || (t.Health != "" && t.Health != "healthy") {
			return "waiting for " + name + " to be healthy"
		}
	case spec.ConditionCompleted:
		if t.ObservedState != store.TaskExited || t.ExitCode != 0 {
			return "waiting for " + name + " to complete successfully"
		}
	default:
		if t.ObservedState != store.TaskRunning && t.ObservedState != store.TaskExited {
			return "waiting for " + name + " to start"
		}
	}
	return ""
}

// decideRollingUpdates moves one outdated task per service to the
// service's current version at a time, once the previous one settled: the
// container is then replaced by decideRunning.
func (o *Orchestrator) decideRollingUpdates(p *pass) {
	for _, s := range p.v.Services("") {
		var outdated []store.Task
		busy := false
		for _, t := range p.running[scheduler.ServiceKey(s.App, s.Name)] {
			switch {
			case t.Version != s.Version:
				outdated = append(outdated, t)
			case !settled(t):
				busy = true
			}
		}
		if busy || len(outdated) == 0 {
			continue
		}
		next := slices.MinFunc(outdated, func(a, b store.Task) int { return a.Slot - b.Slot })
		if o.work.busy(next.ID) || !p.up(next.DesiredHost) || p.moving[next.ID] {
			continue
		}
		next.Version = s.Version
		p.observe(next, store.TaskPending, "updating")
	}
}

// settled says whether a task runs as it should (healthy, if it has a
// healthcheck), so a rolling update may go on to the next one.
func settled(t store.Task) bool {
	return t.ObservedState == store.TaskRunning && (t.Health == "" || t.Health == "healthy")
}

// decideRemovedApps finishes `down`: once an app being removed has no
// tasks left, its networks (and volumes, if asked) go from every host,
// then the app and its services from the store.
func (o *Orchestrator) decideRemovedApps(p *pass) {
	for _, a := range p.v.Apps() {
		if !a.Removing || p.apps[a.Name] {
			continue
		}
		p.actions = append(p.actions, action{kind: actRemoveApp, key: "app:" + a.Name, app: a})
	}
}

// decideOrphans removes containers clusterctl created whose task no
// longer exists (removed while their host was down).
func (o *Orchestrator) decideOrphans(p *pass) {
	known := map[string]bool{}
	for _, t := range p.tasks {
		known[t.ID] = true
	}
	for id, locs := range p.byTask {
		if known[id] {
			continue
		}
		for _, l := range locs {
			if p.up(l.host) && l.c.Labels[spec.LabelManagedBy] == "true" {
				p.actions = append(p.actions, removeAction("rm:"+l.c.ID, l))
			}
		}
	}
}

// observe records a new observed state and message for t (with any other
// observed fields the caller changed), unless the store has it already.
func (p *pass) observe(t store.Task, state, msg string) {
	t.ObservedState, t.Message = state, msg
	if old, ok := p.v.Task(t.ID); ok && sameObserved(old, t) {
		return
	}
	t.Updated = p.now.UTC()
	p.updates = append(p.updates, t)
}

// sameObserved compares what observe may change.
func sameObserved(a, b store.Task) bool {
	return a.ObservedState == b.ObservedState && a.Message == b.Message && a.Health == b.Health &&
		a.ExitCode == b.ExitCode && a.ContainerID == b.ContainerID && a.Host == b.Host &&
		a.Version == b.Version && a.Restarts == b.Restarts
}

// commitObserved writes the pass's task updates and deletions in one
// entry, each conditional on the task not having changed since the view.
func (o *Orchestrator) commitObserved(p *pass) error {
	if len(p.updates) == 0 && len(p.deletes) == 0 {
		return nil
	}
	b := newBatch()
	for _, t := range p.updates {
		old, _ := p.v.Task(t.ID)
		b.check.Tasks[t.ID] = old.ModifyIndex
		b.put(store.CmdPutTask, t)
	}
	for _, id := range p.deletes {
		old, _ := p.v.Task(id)
		b.check.Tasks[id] = old.ModifyIndex
		b.put(store.CmdDeleteTask, store.NameRef{Name: id})
	}
	if _, err := o.commit(b.commands()); err != nil && !isConflict(err) {
		return fmt.Errorf("record task states: %w", err)
	}
	return nil
}

// placeTasks places the tasks the pass found without a usable host, and
// records why those that fit nowhere wait.
func (o *Orchestrator) placeTasks(p *pass) error {
	if len(p.place) == 0 {
		return nil
	}
	o.planMu.Lock()
	defer o.planMu.Unlock()
	skip := map[string]bool{}
	for _, t := range p.place {
		skip[t.ID] = true
	}
	snap := snapshot(p.v, p.specs, skip)
	byID := map[string]store.Task{}
	tasks := make([]scheduler.TaskSpec, 0, len(p.place))
	for _, t := range p.place {
		a := p.specs[t.App]
		svc, _ := a.Service(t.Service)
		tasks = append(tasks, a.TaskSpec(svc, t.ID, t.Slot))
		byID[t.ID] = t
	}
	// Partners first: a co-located task must find its partner placed.
	slices.SortStableFunc(tasks, func(x, y scheduler.TaskSpec) int {
		return serviceOrder(p.specs[x.App], x.Service) - serviceOrder(p.specs[y.App], y.Service)
	})
	plan := o.stack.Place(snap, tasks)
	b := newBatch()
	for _, pl := range plan.Placements {
		t := byID[pl.TaskID]
		b.check.Tasks[t.ID] = t.ModifyIndex
		t.DesiredHost, t.ObservedState, t.Message, t.Updated = pl.Host, store.TaskPending, "", p.now.UTC()
		b.put(store.CmdPutTask, t)
		b.hostUp(pl.Host)
		o.log.Info("task placed", "task", t.ID, "host", pl.Host)
	}
	for _, f := range plan.Failures {
		t := byID[f.TaskID]
		state := store.TaskPending
		if t.DesiredHost != "" {
			state = store.TaskLost
		}
		msg := strings.TrimPrefix(f.Reason, fmt.Sprintf("%s.%d: ", t.Service, t.Slot))
		if t.Message == msg && t.ObservedState == state {
			continue
		}
		b.check.Tasks[t.ID] = t.ModifyIndex
		t.ObservedState, t.Message, t.Updated = state, msg, p.now.UTC()
		b.put(store.CmdPutTask, t)
	}
	if len(b.cmds) == 0 {
		return nil
	}
	if _, err := o.commit(b.commands()); err != nil && !isConflict(err) {
		return fmt.Errorf("commit placements: %w", err)
	}
	return nil
}

// serviceOrder is a service's position in its app's dependency order.
func serviceOrder(a spec.App, name string) int {
	return slices.IndexFunc(a.Services, func(s spec.Service) bool { return s.Name == name })
}
