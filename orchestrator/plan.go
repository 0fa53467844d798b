package orchestrator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/scheduler"
	"github.com/clusterctl/clusterctl/spec"
	"github.com/clusterctl/clusterctl/store"
)

// ErrRefused is returned (wrapped, with the failures) when a plan cannot
// place every task: nothing was committed.
var ErrRefused = errors.New("plan refused")

// planAttempts bounds re-planning after optimistic-concurrency conflicts.
const planAttempts = 5

// Deploy plans app against the current state and, unless dryRun, commits
// the plan: the app, its services, and its tasks placed on hosts (created
// or to be removed). Changed services keep their tasks, which the
// reconciler replaces one at a time. A plan that cannot place every task
// is returned with its failures and ErrRefused, and nothing changes.
func (o *Orchestrator) Deploy(ctx context.Context, app spec.App, compose string, dryRun bool) (api.PlanResult, error) {
	o.planMu.Lock()
	defer o.planMu.Unlock()
	for attempt := 1; ; attempt++ {
		v := o.opts.Store.View()
		p, err := o.planApp(v, app, compose)
		if err != nil {
			return api.PlanResult{App: app.Name}, err
		}
		if len(p.result.Failures) > 0 {
			return p.result, fmt.Errorf("%w: %s", ErrRefused, strings.Join(p.result.Failures, "; "))
		}
		p.result.Problems = o.checkImages(ctx, app, p.result)
		if dryRun {
			return p.result, nil
		}
		if len(p.result.Problems) > 0 {
			return p.result, fmt.Errorf("%w: %s", ErrRefused, strings.Join(p.result.Problems, "; "))
		}
		index, err := o.commit(p.cmds)
		if isConflict(err) && attempt < planAttempts {
			o.log.Info("plan conflict, planning again", "app", app.Name, "err", err)
			continue
		}
		if err != nil {
			return p.result, fmt.Errorf("commit plan of %s: %w", app.Name, err)
		}
		p.result.Index = index
		return p.result, nil
	}
}

// Scale sets the replicas of one service of a deployed app, through the
// same planning as Deploy.
func (o *Orchestrator) Scale(ctx context.Context, appName, service string, replicas int, dryRun bool) (api.PlanResult, error) {
	a, stored, err := loadApp(o.opts.Store.View(), appName)
	if err != nil {
		return api.PlanResult{App: appName}, err
	}
	i := slices.IndexFunc(a.Services, func(s spec.Service) bool { return s.Name == service })
	if i < 0 {
		return api.PlanResult{App: appName}, fmt.Errorf("app %s has no service %q: %w", appName, service, store.ErrNotFound)
	}
	if replicas < 0 {
		return api.PlanResult{App: appName}, fmt.Errorf("replicas %d: must be >= 0: %w", replicas, store.ErrInvalid)
	}
	if a.Services[i].ContainerName != "" && replicas > 1 {
		return api.PlanResult{App: appName}, fmt.Errorf("service %s has container_name %s: it cannot have more than one replica: %w", service, a.Services[i].ContainerName, store.ErrInvalid)
	}
	a.Services[i].Replicas = replicas
	if err := a.Validate(); err != nil {
		return api.PlanResult{App: appName}, fmt.Errorf("%w: %w", err, store.ErrInvalid)
	}
	return o.Deploy(ctx, a, stored.Compose, dryRun)
}

// loadApp returns a deployed app's spec.
func loadApp(v *store.View, name string) (spec.App, store.App, error) {
	stored, ok := v.App(name)
	if !ok {
		return spec.App{}, stored, fmt.Errorf("no app named %q: %w", name, store.ErrNotFound)
	}
	var a spec.App
	if err := json.Unmarshal(stored.Spec, &a); err != nil {
		return spec.App{}, stored, fmt.Errorf("decode app %s: %w", name, err)
	}
	return a, stored, nil
}

// plan is a computed plan: the user's view and the commands to commit.
type plan struct {
	result api.PlanResult
	cmds   [][]byte
}

// planApp computes the plan of app against v.
func (o *Orchestrator) planApp(v *store.View, app spec.App, compose string) (plan, error) {
	res := api.PlanResult{App: app.Name}
	old, exists := v.App(app.Name)
	if exists && old.Removing {
		return plan{}, fmt.Errorf("app %s is being removed: wait for down to finish: %w", app.Name, store.ErrConflict)
	}
	specJSON, err := json.Marshal(app)
	if err != nil {
		return plan{}, fmt.Errorf("encode app %s: %w", app.Name, err)
	}
	created := time.Now().UTC()
	if exists {
		created = old.Created
	}
	b := newBatch()
	b.put(store.CmdPutApp, store.App{Name: app.Name, Compose: compose, Created: created, Spec: specJSON})

	specs := specsOf(v)
	specs[app.Name] = app
	snap := snapshot(v, specs, nil)
	tasks := v.Tasks(app.Name)
	var toPlace []scheduler.TaskSpec
	planned := map[string]int{} // task ID -> index in res.Tasks
	for _, svc := range app.Services {
		b.check.Services[app.Name+"/"+svc.Name] = serviceIndex(v, app.Name, svc.Name)
		svcJSON, err := json.Marshal(svc)
		if err != nil {
			return plan{}, fmt.Errorf("encode service %s: %w", svc.Name, err)
		}
		version := svc.Version()
		b.put(store.CmdPutService, store.Service{App: app.Name, Name: svc.Name, Spec: svcJSON, Version: version, Replicas: svc.Replicas})
		bySlot := map[int]store.Task{}
		for _, t := range tasks {
			if t.Service == svc.Name && t.DesiredState == store.TaskRunning {
				bySlot[t.Slot] = t
			}
		}
		for slot := 1; slot <= max(svc.Replicas, maxSlot(bySlot)); slot++ {
			t, have := bySlot[slot]
			switch {
			case have && slot > svc.Replicas:
				b.shutdown(t)
				res.Tasks = append(res.Tasks, plannedTask(t, api.ActionRemove, "scaled down"))
			case have && t.DesiredHost != "" && (hostUp(v, t.DesiredHost) || stateful(app, svc)):
				// A stateful task whose host is down stays: its data is
				// there; the reconciler says why it waits.
				action, why := api.ActionKeep, "stays"
				if t.Version != version {
					action, why = api.ActionUpdate, "replaced by a rolling update"
				}
				res.Tasks = append(res.Tasks, plannedTask(t, action, why))
			case !have:
				t = store.Task{ID: newTaskID(app.Name, svc.Name, slot), App: app.Name, Service: svc.Name, Slot: slot,
					DesiredState: store.TaskRunning, Version: version, ObservedState: store.TaskPending}
				fallthrough
			default: // new, or not placed yet, or its host is down
				b.check.Tasks[t.ID] = t.ModifyIndex
				toPlace = append(toPlace, app.TaskSpec(svc, t.ID, t.Slot))
				res.Tasks = append(res.Tasks, plannedTask(t, api.ActionCreate, ""))
				planned[t.ID] = len(res.Tasks) - 1
				b.pending[t.ID] = t
			}
		}
	}
	for _, t := range tasks { // services the new spec no longer has
		if t.DesiredState == store.TaskRunning && !slices.ContainsFunc(app.Services, func(s spec.Service) bool { return s.Name == t.Service }) {
			b.shutdown(t)
			res.Tasks = append(res.Tasks, plannedTask(t, api.ActionRemove, "service removed from the app"))
		}
	}
	for _, s := range v.Services(app.Name) {
		if _, ok := app.Service(s.Name); !ok {
			b.check.Services[app.Name+"/"+s.Name] = s.ModifyIndex
			b.put(store.CmdDeleteService, store.NameRef{Name: app.Name + "/" + s.Name})
		}
	}
	p := o.stack.Place(snap, toPlace)
	specByID := make(map[string]scheduler.TaskSpec, len(toPlace))
	for _, ts := range toPlace {
		specByID[ts.ID] = ts
	}
	for _, pl := range p.Placements {
		t := b.pending[pl.TaskID]
		t.DesiredHost = pl.Host
		t.Updated = time.Now().UTC()
		b.put(store.CmdPutTask, t)
		b.hostUp(pl.Host)
		pt := &res.Tasks[planned[pl.TaskID]]
		pt.Host, pt.Why = pl.Host, why(specByID[pl.TaskID], pl)
	}
	for _, f := range p.Failures {
		res.Failures = append(res.Failures, f.Reason)
		res.Tasks[planned[f.TaskID]].Why = "cannot be placed"
	}
	res.Tasks = sortPlanned(res.Tasks)
	return plan{result: res, cmds: b.commands()}, nil
}

// why explains a placement in words for `clusterctl plan`.
func why(t scheduler.TaskSpec, p scheduler.Placement) string {
	switch {
	case len(t.Volumes) > 0:
		return "goes where its volume " + t.Volumes[0] + " is attached"
	case t.ColocateWith != "":
		return fmt.Sprintf("shares a host with %s.%d", t.ColocateWith, t.Slot)
	}
	n := int(-p.Score)
	if n == 1 {
		return "spread: 1 other " + t.Service + " task there"
	}
	return fmt.Sprintf("spread: %d other %s tasks there", max(n, 0), t.Service)
}

// stateful says whether a service's tasks mount cluster volumes: their
// data decides where they run.
func stateful(a spec.App, svc spec.Service) bool {
	return len(a.TaskSpec(svc, "", 1).Volumes) > 0
}

// plannedTask describes t in a plan.
func plannedTask(t store.Task, action, why string) api.PlannedTask {
	return api.PlannedTask{Task: fmt.Sprintf("%s.%d", t.Service, t.Slot), ID: t.ID, Service: t.Service,
		Slot: t.Slot, Host: t.DesiredHost, Action: action, Why: why}
}

// sortPlanned orders a plan's tasks by service, then slot.
func sortPlanned(ts []api.PlannedTask) []api.PlannedTask {
	slices.SortStableFunc(ts, func(a, b api.PlannedTask) int {
		if c := strings.Compare(a.Service, b.Service); c != 0 {
			return c
		}
		return a.Slot - b.Slot
	})
	return ts
}

// maxSlot is the highest slot among tasks, 0 for none.
func maxSlot(bySlot map[int]store.Task) int {
	m := 0
	for s := range bySlot {
		m = max(m, s)
	}
	return m
}

// newTaskID returns a task ID that says what it is and is unique even when
// a slot is removed and created again.
func newTaskID(app, service string, slot int) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s.%s.%d.%s", app, service, slot, hex.EncodeToString(b[:]))
}

// serviceIndex is the ModifyIndex of a service, 0 if it does not exist.
func serviceIndex(v *store.View, app, name string) uint64 {
	s, ok := v.Service(app, name)
	if !ok {
		return 0
	}
	return s.ModifyIndex
}

// hostUp says whether a host exists and is up.
func hostUp(v *store.View, name string) bool {
	h, ok := v.Host(name)
	return ok && h.State == store.HostUp
}

// specsOf decodes the spec of every deployed app, by name. An app whose
// spec does not decode is left out (and logged by whoever needs it).
func specsOf(v *store.View) map[string]spec.App {
	out := map[string]spec.App{}
	for _, a := range v.Apps() {
		var s spec.App
		if json.Unmarshal(a.Spec, &s) == nil {
			out[a.Name] = s
		}
	}
	return out
}

// snapshot builds the scheduler's view of the hosts: every host with the
// tasks desired to run on it (except those in skip) and the cluster
// volumes it owns.
func snapshot(v *store.View, specs map[string]spec.App, skip map[string]bool) *scheduler.Snapshot {
	return snapshotWithout(v, specs, skip, nil)
}

// snapshotWithout is snapshot, with the volumes in free attached nowhere:
// a move takes them along, so they must not pin the task to its host.
func snapshotWithout(v *store.View, specs map[string]spec.App, skip, free map[string]bool) *scheduler.Snapshot {
	managers := map[string]bool{}
	for _, s := range v.Servers() {
		if host, _, err := net.SplitHostPort(s.RaftAddr); err == nil {
			managers[host] = true
		}
	}
	var hosts []*scheduler.HostState
	for _, h := range v.Hosts() {
		role := scheduler.RoleWorker
		if managers[h.Addr] {
			role = scheduler.RoleManager
		}
		hosts = append(hosts, scheduler.NewHostState(h, role))
	}
	snap := scheduler.NewSnapshot(hosts)
	for _, t := range v.Tasks("") {
		if t.DesiredState != store.TaskRunning || t.DesiredHost == "" || skip[t.ID] {
			continue
		}
		hs := snap.Host(t.DesiredHost)
		a, ok := specs[t.App]
		svc, found := a.Service(t.Service)
		if hs == nil || !ok || !found {
			continue
		}
		hs.AddTask(a.TaskSpec(svc, t.ID, t.Slot))
	}
	reserveMoves(v, specs, snap, skip)
	for _, vol := range v.Volumes() {
		if hs := snap.Host(vol.OwnerHost); hs != nil && !free[vol.Name] {
			hs.AttachVolume(vol.Name)
		}
	}
	return snap
}

// reserveMoves counts every task that is moving on its target too: the
// target's resources and ports are reserved from the move's start, so two
// moves (or a move and a placement) cannot both take the last of a host.
func reserveMoves(v *store.View, specs map[string]spec.App, snap *scheduler.Snapshot, skip map[string]bool) {
	for _, m := range v.Moves() {
		if !m.Active() || skip[m.TaskID] {
			continue
		}
		t, ok := v.Task(m.TaskID)
		hs := snap.Host(m.To)
		a, okApp := specs[t.App]
		svc, okSvc := a.Service(t.Service)
		if ok && hs != nil && okApp && okSvc {
			hs.AddTask(a.TaskSpec(svc, t.ID, t.Slot))
		}
	}
}

// batch collects the commands of one plan, behind one Check.
type batch struct {
	check   store.Check
	cmds    [][]byte
	err     error
	pending map[string]store.Task // tasks to place, by ID
	hosts   map[string]bool
}

func newBatch() *batch {
	return &batch{check: store.Check{Tasks: map[string]uint64{}, Services: map[string]uint64{}},
		pending: map[string]store.Task{}, hosts: map[string]bool{}}
}

// put adds a command.
func (b *batch) put(t store.CommandType, payload any) {
	cmd, err := store.Encode(t, payload)
	if err != nil && b.err == nil {
		b.err = err
	}
	b.cmds = append(b.cmds, cmd)
}

// shutdown marks t to be removed, provided it did not change meanwhile.
func (b *batch) shutdown(t store.Task) {
	b.check.Tasks[t.ID] = t.ModifyIndex
	t.DesiredState = store.TaskShutdown
	t.Updated = time.Now().UTC()
	b.put(store.CmdPutTask, t)
}

// hostUp requires a host to be up when the batch commits.
func (b *batch) hostUp(name string) {
	if !b.hosts[name] {
		b.hosts[name] = true
		b.check.HostsUp = append(b.check.HostsUp, name)
	}
}

// commands returns the Check followed by the commands.
func (b *batch) commands() [][]byte {
	slices.Sort(b.check.HostsUp)
	check, err := store.Encode(store.CmdCheck, b.check)
	if err != nil || b.err != nil {
		panic(fmt.Sprintf("orchestrator: encode plan: %v %v", err, b.err)) // plain structs: a bug
	}
	return append([][]byte{check}, b.cmds...)
}

// Down marks an app for removal: every task is to be shut down, and the
// reconciler removes the containers, then the networks (and volumes if
// asked), then the app itself.
func (o *Orchestrator) Down(name string, volumes bool) (uint64, error) {
	o.planMu.Lock()
	defer o.planMu.Unlock()
	for attempt := 1; ; attempt++ {
		v := o.opts.Store.View()
		a, ok := v.App(name)
		if !ok {
			return 0, fmt.Errorf("no app named %q: %w", name, store.ErrNotFound)
		}
		b := newBatch()
		b.check.Tasks = map[string]uint64{}
		a.Removing, a.RemoveVolumes = true, a.RemoveVolumes || volumes
		b.put(store.CmdPutApp, a)
		for _, t := range v.Tasks(name) {
			if t.DesiredState != store.TaskShutdown {
				b.shutdown(t)
			}
		}
		index, err := o.commit(b.commands())
		if isConflict(err) && attempt < planAttempts {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("remove app %s: %w", name, err)
		}
		return index, nil
	}
}
