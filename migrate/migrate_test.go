package migrate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/clusterctl/clusterctl/agentapi"
	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/orchestrator"
	"github.com/clusterctl/clusterctl/store"
	"github.com/clusterctl/clusterctl/store/mock"
	"github.com/clusterctl/clusterctl/volumes"
)

// The mock task shop-db-1 runs on host1; moves take it to host2.
const (
	from = "host1"
	to   = "host2"
)

// waitLimit bounds every wait of these tests for a move to end.
const waitLimit = 30 * time.Second

// harness is a store that applies commands directly (no Raft) and fakes
// of the three sides of a move, which record their calls in one log.
type harness struct {
	t       *testing.T
	store   *store.Store
	applyMu sync.Mutex // one entry at a time, as Raft would
	calls   *callLog
	tasks   *fakeTasks
	vols    *fakeVolumes
	leases  *fakeLeases
}

// newHarness returns a harness with up hosts host1..hostN.
func newHarness(t *testing.T, hosts int) *harness {
	t.Helper()
	h := &harness{t: t, store: store.New(nil), calls: newCallLog()}
	h.tasks = &fakeTasks{h: h, target: to}
	h.vols = &fakeVolumes{h: h}
	h.leases = &fakeLeases{h: h}
	for _, host := range mock.Hosts(hosts) {
		host.Containers = nil
		h.must(store.CmdRegisterHost, host)
	}
	return h
}

// apply applies an entry at the next index, as Raft would.
func (h *harness) apply(b []byte) (uint64, error) {
	h.applyMu.Lock()
	defer h.applyMu.Unlock()
	index := h.store.AppliedIndex() + 1
	res := h.store.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: b, AppendedAt: time.Now()})
	return index, store.ResponseError(res)
}

// must applies one command and fails the test if the store refuses it.
func (h *harness) must(typ store.CommandType, payload any) {
	h.t.Helper()
	if _, err := h.apply(store.MustEncode(typ, payload)); err != nil {
		h.t.Fatalf("apply %s: %v", typ, err)
	}
}

// addTask puts the mock task on host1 with the given volumes (owned by
// host1) and its address leased on host1; the fake plans move them all.
func (h *harness) addTask(vols ...store.Volume) store.Task {
	h.t.Helper()
	task := mock.Task()
	h.must(store.CmdPutTask, task)
	for _, v := range vols {
		h.must(store.CmdPutVolume, v)
		h.tasks.volumes = append(h.tasks.volumes, v.Name)
	}
	l := mock.Lease()
	l.Host = from
	h.must(store.CmdPutLease, l)
	return task
}

// setDown marks hosts down.
func (h *harness) setDown(hosts ...string) {
	h.must(store.CmdSetHostState, store.SetHostState{Names: hosts, State: store.HostDown})
}

// runner returns a runner over the harness's store and fakes, as a
// leader would make one.
func (h *harness) runner() *Runner {
	return New(Options{
		Store: h.store, Apply: h.apply,
		Tasks: h.tasks, Volumes: h.vols, Leases: h.leases,
		Every: 10 * time.Millisecond,
	})
}

// run runs r until the returned stop is called (leadership lost), which
// returns once Run has returned; the test's cleanup stops it too.
func (h *harness) run(r *Runner) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(waitLimit):
				h.t.Errorf("Run did not return %v after its context ended", waitLimit)
			}
		})
	}
	h.t.Cleanup(stop)
	return stop
}

// start starts a move and fails the test if it is refused.
func (h *harness) start(r *Runner, req Request) store.Move {
	h.t.Helper()
	m, err := r.Start(req)
	if err != nil {
		h.t.Fatalf("start %+v: %v", req, err)
	}
	return m
}

// waitFor polls until cond holds, failing the test after waitLimit.
func (h *harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s; calls %q", what, h.calls.list())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitEnd waits until the move is no longer active and returns it.
func (h *harness) waitEnd(id string) store.Move {
	h.t.Helper()
	var m store.Move
	h.waitFor("move "+id+" to end", func() bool {
		var ok bool
		m, ok = h.store.View().Move(id)
		return ok && !m.Active()
	})
	return m
}

// move returns the move's record.
func (h *harness) move(id string) store.Move {
	h.t.Helper()
	m, ok := h.store.View().Move(id)
	if !ok {
		h.t.Fatalf("no move %s in the store", id)
	}
	return m
}

// task returns the mock task's record.
func (h *harness) task() store.Task {
	h.t.Helper()
	t, ok := h.store.View().Task(mock.Task().ID)
	if !ok {
		h.t.Fatal("the task is gone from the store")
	}
	return t
}

// volume returns a volume's record.
func (h *harness) volume(name string) store.Volume {
	h.t.Helper()
	v, ok := h.store.View().Volume(name)
	if !ok {
		h.t.Fatalf("no volume %s in the store", name)
	}
	return v
}

// lease returns the mock task's address lease.
func (h *harness) lease() store.IPLease {
	h.t.Helper()
	l := mock.Lease()
	got, ok := h.store.View().Lease(l.Network, l.Addr)
	if !ok {
		h.t.Fatalf("no lease %s/%s in the store", l.Network, l.Addr)
	}
	return got
}

// setLeaseHosts points the task's leases on host old (any host if old is
// "*") at host, as the network manager does when an agent reports
// its endpoints.
func (h *harness) setLeaseHosts(taskID, old, host string) {
	for _, l := range h.store.View().Leases("") {
		if l.TaskID == taskID && l.Host != host && (old == "*" || l.Host == old) {
			l.Host = host
			h.must(store.CmdPutLease, l)
		}
	}
}

// fault is an injected failure of a call: n more times, or always if n < 0.
type fault struct{ n int }

// callLog is the shared, ordered record of the fakes' calls, with the
// failures and hooks the test set for some of them.
type callLog struct {
	mu     sync.Mutex
	calls  []string
	faults map[string]*fault
	hooks  map[string]func(ctx context.Context) error
	after  map[string]func(ctx context.Context) error
}

// newCallLog returns an empty log.
func newCallLog() *callLog {
	return &callLog{faults: map[string]*fault{}, hooks: map[string]func(context.Context) error{},
		after: map[string]func(context.Context) error{}}
}

// fail makes the next n calls named call fail (every one if n < 0).
func (c *callLog) fail(call string, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.faults[call] = &fault{n: n}
}

// hook runs f in the next call named call (once), before any injected
// failure; an error from f is the call's.
func (c *callLog) hook(call string, f func(ctx context.Context) error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hooks[call] = f
}

// hookAfter runs f in the next call named call (once), after the call's
// change to the store (only Volumes.Sync has hooks there); an error from
// f is the call's.
func (c *callLog) hookAfter(call string, f func(ctx context.Context) error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.after[call] = f
}

// done runs the after-hook of a call that made its change.
func (c *callLog) done(ctx context.Context, call string) error {
	c.mu.Lock()
	hook := c.after[call]
	delete(c.after, call)
	c.mu.Unlock()
	if hook == nil {
		return nil
	}
	return hook(ctx)
}

// do records a call, runs its hook and returns its injected failure.
func (c *callLog) do(ctx context.Context, call string) error {
	c.mu.Lock()
	c.calls = append(c.calls, call)
	hook := c.hooks[call]
	delete(c.hooks, call)
	c.mu.Unlock()
	if hook != nil {
		if err := hook(ctx); err != nil {
			return err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.faults[call]
	if f == nil || f.n == 0 {
		return nil
	}
	if f.n > 0 {
		f.n--
	}
	return fmt.Errorf("injected failure of %q", call)
}

// list returns a copy of the calls so far.
func (c *callLog) list() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.calls)
}

// count says how many calls named call were made.
func (c *callLog) count(call string) int {
	n := 0
	for _, got := range c.list() {
		if got == call {
			n++
		}
	}
	return n
}

// fakeTasks is the Docker side. Like the agents it stands for, stopping or
// removing the task's container on a host takes the task's endpoints
// there away (unless silentStop), and running it puts them on that host.
type fakeTasks struct {
	h       *harness
	target  string   // PickTarget's answer
	volumes []string // the plans' volumes
	planErr error
	// silentStop: the source's agent never reports the stopped
	// container's endpoints gone.
	silentStop bool

	mu         sync.Mutex
	violations []string // addresses still on another host when the task ran
}

func (f *fakeTasks) PlanMove(taskID, to string) (orchestrator.MovePlan, error) {
	if f.planErr != nil {
		return orchestrator.MovePlan{}, f.planErr
	}
	t, ok := f.h.store.View().Task(taskID)
	if !ok {
		return orchestrator.MovePlan{}, fmt.Errorf("no task %s", taskID)
	}
	return orchestrator.MovePlan{Task: t, From: t.DesiredHost, To: to, Volumes: slices.Clone(f.volumes)}, nil
}

func (f *fakeTasks) PickTarget(string) (string, error) { return f.target, nil }

func (f *fakeTasks) Busy(string) bool { return false }

func (f *fakeTasks) StopTask(ctx context.Context, taskID, host string) error {
	if err := f.h.calls.do(ctx, "stop "+host); err != nil {
		return err
	}
	if !f.silentStop {
		f.h.setLeaseHosts(taskID, host, "")
	}
	return nil
}

func (f *fakeTasks) RunTask(ctx context.Context, taskID, host string) (string, error) {
	if err := f.h.calls.do(ctx, "run "+host); err != nil {
		return "", err
	}
	for _, l := range f.h.store.View().Leases("") {
		if l.TaskID == taskID && l.Host != "" && l.Host != host {
			f.mu.Lock()
			f.violations = append(f.violations, fmt.Sprintf("%s still on %s when the task ran on %s", l.Addr, l.Host, host))
			f.mu.Unlock()
		}
	}
	f.h.setLeaseHosts(taskID, "*", host)
	return "ctr-" + host, nil
}

func (f *fakeTasks) CheckpointTask(ctx context.Context, taskID, host, dir string) error {
	if err := f.h.calls.do(ctx, "checkpoint "+host+" "+dir); err != nil {
		return err
	}
	f.h.setLeaseHosts(taskID, host, "")
	return nil
}

func (f *fakeTasks) RestoreTask(ctx context.Context, taskID, host, dir string) (string, error) {
	if err := f.h.calls.do(ctx, "restore "+host+" "+dir); err != nil {
		return "", err
	}
	f.h.setLeaseHosts(taskID, "*", host)
	return "ctr-" + host, nil
}

func (f *fakeTasks) VerifyTask(ctx context.Context, _, host string) error {
	return f.h.calls.do(ctx, "verify "+host)
}

func (f *fakeTasks) RemoveTask(ctx context.Context, taskID, host string) error {
	if err := f.h.calls.do(ctx, "remove "+host); err != nil {
		return err
	}
	f.h.setLeaseHosts(taskID, host, "")
	return nil
}

// addressViolations returns what RunTask found wrong with the addresses.
func (f *fakeTasks) addressViolations() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.violations)
}

// Progress the fake volume transfers report: two pre-copy rounds (the
// whole volume, then a delta) and a sync.
const (
	preCopyBytes = 100
	deltaBytes   = 20
	syncBytes    = 10
)

// fakeVolumes is the volume side: Sync and Reclaim hand the volume's
// lease over in the store as the volume manager does.
type fakeVolumes struct{ h *harness }

func (f *fakeVolumes) PreCopy(ctx context.Context, name, target string, progress volumes.Progress) (api.VolumeReport, error) {
	if err := f.h.calls.do(ctx, "precopy "+name+" "+target); err != nil {
		return api.VolumeReport{}, err
	}
	if progress != nil {
		progress(agentapi.VolumeProgress{Volume: name, Step: "precopy", Round: 1, BytesTotal: preCopyBytes, BytesSent: preCopyBytes / 2})
		progress(agentapi.VolumeProgress{Volume: name, Step: "precopy", Round: 1, BytesTotal: preCopyBytes, BytesSent: preCopyBytes})
		progress(agentapi.VolumeProgress{Volume: name, Step: "precopy", Round: 2, BytesTotal: preCopyBytes, BytesSent: deltaBytes})
	}
	return api.VolumeReport{Volume: name, Op: "precopy", To: target}, nil
}

func (f *fakeVolumes) Sync(ctx context.Context, name, target string, progress volumes.Progress) (api.VolumeReport, error) {
	call := "sync " + name + " " + target
	if err := f.h.calls.do(ctx, call); err != nil {
		return api.VolumeReport{}, err
	}
	v, ok := f.h.store.View().Volume(name)
	if !ok {
		return api.VolumeReport{}, fmt.Errorf("no volume %s", name)
	}
	from := v.OwnerHost
	v.OwnerHost, v.Generation, v.MovingTo = target, v.Generation+1, ""
	if _, err := f.h.apply(store.MustEncode(store.CmdPutVolume, v)); err != nil {
		return api.VolumeReport{}, err
	}
	if progress != nil {
		progress(agentapi.VolumeProgress{Volume: name, Step: "sync", Round: 1, BytesSent: syncBytes})
	}
	if err := f.h.calls.done(ctx, call); err != nil {
		return api.VolumeReport{}, err
	}
	return api.VolumeReport{Volume: name, Op: "sync", From: from, To: target, Generation: v.Generation}, nil
}

func (f *fakeVolumes) Reclaim(name, from, to string) error {
	if err := f.h.calls.do(context.Background(), "reclaim "+name+" "+from); err != nil {
		return err
	}
	v, ok := f.h.store.View().Volume(name)
	switch {
	case !ok:
		return fmt.Errorf("no volume %s", name)
	case v.OwnerHost == from:
		return nil
	case v.OwnerHost != to:
		return fmt.Errorf("volume %s belongs to %s, not %s", name, v.OwnerHost, to)
	}
	v.OwnerHost, v.Generation, v.MovingTo = from, v.Generation+1, ""
	_, err := f.h.apply(store.MustEncode(store.CmdPutVolume, v))
	return err
}

func (f *fakeVolumes) RemoveCopy(ctx context.Context, name, host string) error {
	return f.h.calls.do(ctx, "removecopy "+name+" "+host)
}

func (f *fakeVolumes) CreateOn(ctx context.Context, name, host string) error {
	if err := f.h.calls.do(ctx, "create "+name+" "+host); err != nil {
		return err
	}
	if _, ok := f.h.store.View().Volume(name); ok {
		return nil
	}
	_, err := f.h.apply(store.MustEncode(store.CmdPutVolume, store.Volume{Name: name, Backend: store.VolumeCopy, OwnerHost: host, Generation: 1}))
	return err
}

func (f *fakeVolumes) PathOn(_ context.Context, name, host string) (string, error) {
	return "/disk/" + host + "/" + name, nil
}

func (f *fakeVolumes) Remove(ctx context.Context, name string) error {
	if err := f.h.calls.do(ctx, "rm "+name); err != nil {
		return err
	}
	_, err := f.h.apply(store.MustEncode(store.CmdDeleteVolume, store.NameRef{Name: name}))
	return err
}

// fakeLeases is the address side.
type fakeLeases struct{ h *harness }

func (f *fakeLeases) ClearEndpointHost(network, addr, host string) (store.IPLease, error) {
	if err := f.h.calls.do(context.Background(), "lease "+addr+" none"); err != nil {
		return store.IPLease{}, err
	}
	l, ok := f.h.store.View().Lease(network, addr)
	if !ok {
		return store.IPLease{}, fmt.Errorf("no lease %s/%s", network, addr)
	}
	if l.Host != host {
		return l, nil
	}
	l.Host = ""
	_, err := f.h.apply(store.MustEncode(store.CmdPutLease, l))
	return l, err
}

// wantCalls fails the test unless the fakes saw exactly want, in order.
func (h *harness) wantCalls(want ...string) {
	h.t.Helper()
	if got := h.calls.list(); !slices.Equal(got, want) {
		h.t.Errorf("calls:\n got  %q\n want %q", got, want)
	}
}

// wantNoCall fails the test if any call starts with one of prefixes.
func (h *harness) wantNoCall(prefixes ...string) {
	h.t.Helper()
	for _, c := range h.calls.list() {
		for _, p := range prefixes {
			if strings.HasPrefix(c, p) {
				h.t.Errorf("unexpected call %q (calls %q)", c, h.calls.list())
			}
		}
	}
}

// wantAddressesFreed fails the test if the task ran somewhere while one
// of its addresses still pointed at another host.
func (h *harness) wantAddressesFreed() {
	h.t.Helper()
	if v := h.tasks.addressViolations(); len(v) > 0 {
		h.t.Errorf("addresses not released before the task ran: %q", v)
	}
}

// wantDone checks a move that ended on the target.
func (h *harness) wantDone(m store.Move) {
	h.t.Helper()
	if m.State != store.MoveDone || m.Step != StepDone || m.Error != "" {
		h.t.Errorf("move ended %s at step %s (error %q), want done", m.State, m.Step, m.Error)
	}
	if m.Stopped.IsZero() || m.Verified.IsZero() || m.Finished.IsZero() {
		h.t.Errorf("times not recorded: stopped %v, verified %v, finished %v", m.Stopped, m.Verified, m.Finished)
	}
	if d := m.Verified.Sub(m.Stopped); d < 0 {
		h.t.Errorf("downtime %v < 0", d)
	}
	if m.Container != "ctr-"+to {
		h.t.Errorf("target container %q, want ctr-%s", m.Container, to)
	}
	if got := h.task().DesiredHost; got != to {
		h.t.Errorf("task desired on %s, want %s", got, to)
	}
	if got := h.lease().Host; got != to {
		h.t.Errorf("lease on %q, want %s", got, to)
	}
	h.wantAddressesFreed()
}

// wantRolledBack checks a move that failed at step and went back to the
// source.
func (h *harness) wantRolledBack(m store.Move, step string) {
	h.t.Helper()
	if m.State != store.MoveRolledBack || m.Step != step {
		h.t.Errorf("move ended %s at step %s, want rolled back at %s", m.State, m.Step, step)
	}
	if !strings.HasPrefix(m.Error, step+": ") {
		h.t.Errorf("error %q does not name the step %s", m.Error, step)
	}
	if m.Finished.IsZero() {
		h.t.Error("finish time not recorded")
	}
	if got := h.task().DesiredHost; got != from {
		h.t.Errorf("task desired on %s, want %s", got, from)
	}
	if got := h.lease().Host; got != from {
		h.t.Errorf("lease on %q, want %s", got, from)
	}
	calls := h.calls.list()
	if len(calls) == 0 || calls[len(calls)-1] != "run "+from {
		h.t.Errorf("the task was not run again on the source last: calls %q", calls)
	}
	h.wantAddressesFreed()
}

// TestMoveHappyPath moves a task with a copy volume and an address: every
// step runs once, in order, and the task, its data and its address end on
// the target.
func TestMoveHappyPath(t *testing.T) {
	h := newHarness(t, 2)
	vol := mock.Volume()
	h.addTask(vol)
	r := h.runner()
	m := h.start(r, Request{TaskID: mock.Task().ID, To: to, Reason: "move"})
	if m.State != store.MoveRunning || m.Step != StepPreCopy || m.From != from || m.To != to {
		t.Fatalf("started move %+v", m)
	}
	h.run(r)
	m = h.waitEnd(m.ID)

	h.wantCalls(
		"precopy shop_data "+to,
		"stop "+from,
		"sync shop_data "+to,
		"run "+to,
		"verify "+to,
		"remove "+from,
		"removecopy shop_data "+from,
	)
	h.wantDone(m)
	if v := h.volume(vol.Name); v.OwnerHost != to || v.Generation != vol.Generation+1 {
		t.Errorf("volume owned by %s at generation %d, want %s at %d", v.OwnerHost, v.Generation, to, vol.Generation+1)
	}
	if want := int64(preCopyBytes + deltaBytes + syncBytes); m.Bytes != preCopyBytes || m.BytesSent != want {
		t.Errorf("progress %d of %d bytes, want %d of %d", m.BytesSent, m.Bytes, want, preCopyBytes)
	}
}

// TestLiveMove checkpoints instead of stopping and restores instead of
// starting, the checkpoint carried in a volume of its own, removed at the
// end.
func TestLiveMove(t *testing.T) {
	h := newHarness(t, 2)
	vol := mock.Volume()
	h.addTask(vol)
	r := h.runner()
	m := h.start(r, Request{TaskID: mock.Task().ID, To: to, Live: true})
	if !m.Live || m.Checkpoint == "" {
		t.Fatalf("started move %+v, want a live one with a checkpoint volume", m)
	}
	h.run(r)
	m = h.waitEnd(m.ID)
	ckpt := m.Checkpoint
	h.wantCalls(
		"create "+ckpt+" "+from,
		"precopy shop_data "+to,
		"checkpoint "+from+" /disk/"+from+"/"+ckpt,
		"sync shop_data "+to,
		"sync "+ckpt+" "+to,
		"restore "+to+" /disk/"+to+"/"+ckpt,
		"verify "+to,
		"remove "+from,
		"removecopy shop_data "+from,
		"rm "+ckpt,
	)
	h.wantNoCall("stop", "run")
	h.wantDone(m)
	if _, ok := h.store.View().Volume(ckpt); ok {
		t.Errorf("the checkpoint volume %s is left", ckpt)
	}
}

// TestMoveStateless moves a task without volumes: no volume call at all.
func TestMoveStateless(t *testing.T) {
	h := newHarness(t, 2)
	h.addTask()
	r := h.runner()
	m := h.start(r, Request{TaskID: mock.Task().ID, To: to})
	h.run(r)
	m = h.waitEnd(m.ID)

	h.wantCalls("stop "+from, "run "+to, "verify "+to, "remove "+from)
	h.wantNoCall("precopy", "sync", "reclaim", "removecopy")
	h.wantDone(m)
}

// TestMoveRollsBackOnFailure fails each forward step before cleanup: the
// move rolls back, the target's container goes, the volume comes back
// (by a lease reclaim before the target ran, by a sync after) and the
// task runs on its source again.
func TestMoveRollsBackOnFailure(t *testing.T) {
	precopy, stop, handover := "precopy shop_data "+to, "stop "+from, "sync shop_data "+to
	run, verify := "run "+to, "verify "+to
	reclaim := []string{"remove " + to, "reclaim shop_data " + from, "run " + from}
	syncBack := []string{"remove " + to, "sync shop_data " + from, "run " + from}
	cases := []struct {
		step, fail string
		want       []string
		generation uint64 // the volume's when it is back
	}{
		{StepPreCopy, precopy, append([]string{precopy}, reclaim...), 1},
		{StepStop, stop, append([]string{precopy, stop}, reclaim...), 1},
		{StepSync, handover, append([]string{precopy, stop, handover}, reclaim...), 1},
		{StepStart, run, append([]string{precopy, stop, handover, run}, syncBack...), 3},
		{StepVerify, verify, append([]string{precopy, stop, handover, run, verify}, syncBack...), 3},
	}
	for _, tc := range cases {
		t.Run(tc.step, func(t *testing.T) {
			h := newHarness(t, 2)
			h.addTask(mock.Volume())
			h.calls.fail(tc.fail, -1)
			r := h.runner()
			m := h.start(r, Request{TaskID: mock.Task().ID, To: to})
			h.run(r)
			m = h.waitEnd(m.ID)

			h.wantCalls(tc.want...)
			h.wantRolledBack(m, tc.step)
			if !strings.Contains(m.Error, "injected failure") {
				t.Errorf("error %q does not carry the cause", m.Error)
			}
			if v := h.volume("shop_data"); v.OwnerHost != from || v.Generation != tc.generation {
				t.Errorf("volume owned by %s at generation %d, want %s at %d", v.OwnerHost, v.Generation, from, tc.generation)
			}
		})
	}
}

// TestRollbackRetriesFailedPart fails the removal of the target's
// container once during a rollback: the rollback is tried again and
// still ends with the task back on its source.
func TestRollbackRetriesFailedPart(t *testing.T) {
	h := newHarness(t, 2)
	h.addTask(mock.Volume())
	h.calls.fail("verify "+to, -1)
	h.calls.fail("remove "+to, 1)
	r := h.runner()
	m := h.start(r, Request{TaskID: mock.Task().ID, To: to})
	h.run(r)
	m = h.waitEnd(m.ID)

	h.wantCalls(
		"precopy shop_data "+to, "stop "+from, "sync shop_data "+to, "run "+to, "verify "+to,
		"remove "+to, "remove "+to, "sync shop_data "+from, "run "+from,
	)
	h.wantRolledBack(m, StepVerify)
	if v := h.volume("shop_data"); v.OwnerHost != from {
		t.Errorf("volume owned by %s, want %s", v.OwnerHost, from)
	}
}

// TestCleanupFailureIsRetried fails the source's container removal once:
// the target already serves, so cleanup is retried, not rolled back.
func TestCleanupFailureIsRetried(t *testing.T) {
	h := newHarness(t, 2)
	h.addTask(mock.Volume())
	h.calls.fail("remove "+from, 1)
	r := h.runner()
	m := h.start(r, Request{TaskID: mock.Task().ID, To: to})
	h.run(r)
	m = h.waitEnd(m.ID)

	h.wantCalls(
		"precopy shop_data "+to, "stop "+from, "sync shop_data "+to, "run "+to, "verify "+to,
		"remove "+from, "remove "+from, "removecopy shop_data "+from,
	)
	h.wantDone(m)
	h.wantNoCall("run "+from, "reclaim", "remove "+to)
}

// TestMoveResumesAfterLeadershipLoss loses leadership in the middle of the
// sync step, before or after the volume changed hands: a new leader's
// runner on the same store runs the sync again if it must and finishes
// the move, without running the recorded steps again and without
// rolling back.
func TestMoveResumesAfterLeadershipLoss(t *testing.T) {
	handover := "sync shop_data " + to
	cases := []struct {
		name  string
		hook  func(*callLog, string, func(context.Context) error)
		again []string // the new leader's calls
	}{
		{"before the handover", (*callLog).hook, []string{handover}},
		{"after the handover", (*callLog).hookAfter, nil}, // the volume is the target's already
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, 2)
			h.addTask(mock.Volume())
			syncing := make(chan struct{})
			tc.hook(h.calls, handover, func(ctx context.Context) error {
				close(syncing)
				<-ctx.Done() // until the leader steps down
				return ctx.Err()
			})
			first := h.runner()
			m := h.start(first, Request{TaskID: mock.Task().ID, To: to})
			stopFirst := h.run(first)
			select {
			case <-syncing:
			case <-time.After(waitLimit):
				t.Fatalf("sync never ran; calls %q", h.calls.list())
			}
			if got := h.move(m.ID); got.Step != StepSync || got.Stopped.IsZero() {
				t.Fatalf("move at step %s (stopped %v) while syncing, want the sync step recorded after a stop", got.Step, got.Stopped)
			}
			stopFirst()
			got := h.move(m.ID)
			if got.State != store.MoveRunning || got.Step != StepSync || got.Error != "" {
				t.Fatalf("after leadership loss the move is %s at %s (error %q), want running at sync", got.State, got.Step, got.Error)
			}

			h.run(h.runner()) // the new leader
			m = h.waitEnd(m.ID)

			want := []string{"precopy shop_data " + to, "stop " + from, handover} // the first leader's
			want = append(want, tc.again...)
			h.wantCalls(append(want, "run "+to, "verify "+to, "remove "+from, "removecopy shop_data "+from)...)
			h.wantNoCall("run "+from, "reclaim", "remove "+to)
			h.wantDone(m)
			if !m.Stopped.Equal(got.Stopped) {
				t.Errorf("stop time changed from %v to %v by the new leader", got.Stopped, m.Stopped)
			}
			if v := h.volume("shop_data"); v.OwnerHost != to {
				t.Errorf("volume owned by %s, want %s", v.OwnerHost, to)
			}
		})
	}
}

// TestMoveDeadline gives a move less time than its pre-copy takes: it
// rolls back before stopping the source.
func TestMoveDeadline(t *testing.T) {
	t.Run("between steps", func(t *testing.T) {
		h := newHarness(t, 2)
		h.addTask(mock.Volume())
		h.calls.hook("precopy shop_data "+to, func(context.Context) error {
			time.Sleep(20 * time.Millisecond) // a transfer that does not look at ctx
			return nil
		})
		r := h.runner()
		m := h.start(r, Request{TaskID: mock.Task().ID, To: to, Timeout: time.Millisecond})
		h.run(r)
		m = h.waitEnd(m.ID)

		// The time ran out before precopy or, if precopy started
		// within the millisecond, before stop.
		if !strings.Contains(m.Error, "the move's time ran out") {
			t.Errorf("error %q does not say the time ran out", m.Error)
		}
		h.wantRolledBack(m, m.Step)
		if m.Step != StepPreCopy && m.Step != StepStop {
			t.Errorf("rolled back at %s, want precopy or stop", m.Step)
		}
		h.wantNoCall("stop "+from, "sync", "run "+to)
		if v := h.volume("shop_data"); v.OwnerHost != from {
			t.Errorf("volume owned by %s, want %s", v.OwnerHost, from)
		}
	})
	t.Run("during a step", func(t *testing.T) {
		h := newHarness(t, 2)
		h.addTask(mock.Volume())
		h.calls.hook("precopy shop_data "+to, func(ctx context.Context) error {
			<-ctx.Done() // a transfer cut by the move's deadline
			return ctx.Err()
		})
		r := h.runner()
		m := h.start(r, Request{TaskID: mock.Task().ID, To: to, Timeout: 50 * time.Millisecond})
		h.run(r)
		m = h.waitEnd(m.ID)

		h.wantRolledBack(m, StepPreCopy)
		if !strings.Contains(m.Error, context.DeadlineExceeded.Error()) {
			t.Errorf("error %q does not say the deadline passed", m.Error)
		}
		h.wantNoCall("stop "+from, "sync", "run "+to)
	})
}

// TestEvacuateDownSource evacuates a task on a block volume off a host
// that is down: nothing is stopped or removed there, the stale address is
// overruled through the network manager, and the task ends on the target.
func TestEvacuateDownSource(t *testing.T) {
	h := newHarness(t, 2)
	vol := store.Volume{Name: "shop_block", Backend: store.VolumeBlock, OwnerHost: from, Generation: 1, SizeBytes: 64 << 20}
	h.addTask(vol)
	h.setDown(from)
	r := h.runner()
	m, err := r.Evacuate(mock.Task().ID, "host "+from+" down")
	if err != nil {
		t.Fatal(err)
	}
	if m.To != to || m.Reason != "host "+from+" down" {
		t.Fatalf("evacuation %+v", m)
	}
	h.run(r)
	m = h.waitEnd(m.ID)

	h.wantCalls("sync shop_block "+to, "lease "+mock.Lease().Addr+" none", "run "+to, "verify "+to)
	h.wantNoCall("stop", "remove", "precopy", "removecopy")
	h.wantDone(m)
	if v := h.volume(vol.Name); v.OwnerHost != to || v.Generation != 2 {
		t.Errorf("volume owned by %s at generation %d, want %s at 2", v.OwnerHost, v.Generation, to)
	}
}

// TestMoveOverrulesSilentSource moves off an up source whose agent never
// reports the stopped container's endpoints gone: after ReleaseWait the
// move clears them itself, before the task runs on the target.
func TestMoveOverrulesSilentSource(t *testing.T) {
	h := newHarness(t, 2)
	h.addTask()
	h.tasks.silentStop = true
	r := h.runner()
	r.opts.ReleaseWait = 100 * time.Millisecond
	m := h.start(r, Request{TaskID: mock.Task().ID, To: to})
	h.run(r)
	m = h.waitEnd(m.ID)

	h.wantCalls("stop "+from, "lease "+mock.Lease().Addr+" none", "run "+to, "verify "+to, "remove "+from)
	h.wantDone(m)
}

// TestStartRefusesSecondMove starts two moves of one task: the store
// refuses the second while the first is active, not after it ended.
func TestStartRefusesSecondMove(t *testing.T) {
	h := newHarness(t, 3)
	h.addTask()
	r := h.runner()
	first := h.start(r, Request{TaskID: mock.Task().ID, To: to})
	_, err := r.Start(Request{TaskID: mock.Task().ID, To: "host3"})
	if err == nil || !strings.Contains(err.Error(), "already moving") {
		t.Fatalf("second move: %v, want a refusal saying the task is already moving", err)
	}
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("second move refused with %v, want a conflict", err)
	}
	if n := len(h.store.View().Moves()); n != 1 {
		t.Fatalf("%d moves recorded, want 1", n)
	}
	if len(h.calls.list()) != 0 {
		t.Errorf("calls before any Run: %q", h.calls.list())
	}

	h.run(r)
	h.wantDone(h.waitEnd(first.ID))
	again := h.start(r, Request{TaskID: mock.Task().ID, To: "host3"})
	if again.From != to {
		t.Errorf("next move from %s, want %s", again.From, to)
	}
	if m := h.waitEnd(again.ID); m.State != store.MoveDone || h.task().DesiredHost != "host3" {
		t.Errorf("next move ended %s (error %q) with the task on %s", m.State, m.Error, h.task().DesiredHost)
	}
}

// TestStartRefusedPlan records nothing when the plan is refused.
func TestStartRefusedPlan(t *testing.T) {
	h := newHarness(t, 2)
	h.addTask()
	h.tasks.planErr = store.Refuse(store.ErrInvalid, "cannot move db.1: no")
	if _, err := h.runner().Start(Request{TaskID: mock.Task().ID, To: to}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("start: %v, want the plan's refusal", err)
	}
	if n := len(h.store.View().Moves()); n != 0 {
		t.Errorf("%d moves recorded, want none", n)
	}
}

// TestOldMovesAreForgotten keeps the newest KeepMoves ended moves and
// every active one.
func TestOldMovesAreForgotten(t *testing.T) {
	h := newHarness(t, 2)
	for i := range KeepMoves + 5 {
		m := store.Move{ID: fmt.Sprintf("m%03d", i), TaskID: fmt.Sprintf("t%03d", i), State: store.MoveDone,
			Finished: time.Unix(int64(1000+i), 0).UTC()}
		h.must(store.CmdPutMove, m)
	}
	h.must(store.CmdPutMove, store.Move{ID: "active", TaskID: "ta", State: store.MoveRunning, Step: StepPreCopy})
	r := h.runner()
	if err := r.prune(h.store.View()); err != nil {
		t.Fatal(err)
	}
	moves := h.store.View().Moves()
	if len(moves) != KeepMoves+1 {
		t.Fatalf("%d moves left, want %d ended and the active one", len(moves), KeepMoves)
	}
	for _, gone := range []string{"m000", "m004"} {
		if _, ok := h.store.View().Move(gone); ok {
			t.Errorf("old move %s kept", gone)
		}
	}
	for _, kept := range []string{"m005", "m204", "active"} {
		if _, ok := h.store.View().Move(kept); !ok {
			t.Errorf("move %s forgotten", kept)
		}
	}
}
