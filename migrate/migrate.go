// Package migrate moves a running task to another host with its data and
// its addresses. A move is a state machine persisted in the store (one
// store.Move per move): the leader runs its steps in order, recording each
// before the next, so a new leader resumes it where it stood; every step is
// idempotent. A failure before the target is verified rolls the move back:
// the task runs again on its source, with its IP and its data.
//
// The steps (Step* constants): plan (when the move is created), precopy,
// stop, sync, release, start, verify, cleanup. The Docker side is the
// orchestrator's (Tasks), the volume side the volume manager's (Volumes).
package migrate

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/orchestrator"
	"github.com/clusterctl/clusterctl/store"
	"github.com/clusterctl/clusterctl/volumes"
)

// Steps, in order. Step is the next step to run (or running).
const (
	StepPreCopy = "precopy" // copy volumes' data to the target while the task runs
	StepStop    = "stop"    // stop the source container (kept for a rollback)
	StepSync    = "sync"    // last delta, then each volume's lease goes to the target
	StepRelease = "release" // the source's endpoints are gone: the addresses are free to move
	StepStart   = "start"   // the same container on the target: volumes attach, endpoints with the same IP and MAC
	StepVerify  = "verify"  // healthy, or its ports answer
	StepCleanup = "cleanup" // the source's container and copies go; the task belongs to the target
	StepDone    = "done"
)

// steps is the forward order.
var steps = []string{StepPreCopy, StepStop, StepSync, StepRelease, StepStart, StepVerify, StepCleanup, StepDone}

// stepIndex is a step's position in steps.
func stepIndex(step string) int {
	for i, s := range steps {
		if s == step {
			return i
		}
	}
	return -1
}

// HoldVar is the cluster variable that holds moves before a step: while
// its value is a step's name, every move waits before running that step.
const HoldVar = "clusterctl/move-hold"

// DefaultTimeout bounds a move that was given none: past it, a move that
// has not verified its target rolls back.
const DefaultTimeout = 5 * time.Minute

// Tasks is the Docker side of a move (the orchestrator's).
type Tasks interface {
	PlanMove(taskID, to string) (orchestrator.MovePlan, error)
	PickTarget(taskID string) (string, error)
	Busy(taskID string) bool
	StopTask(ctx context.Context, taskID, host string) error
	RunTask(ctx context.Context, taskID, host string) (string, error)
	VerifyTask(ctx context.Context, taskID, host string) error
	RemoveTask(ctx context.Context, taskID, host string) error
	// A live move's stop and start: into and from a checkpoint in dir.
	CheckpointTask(ctx context.Context, taskID, host, dir string) error
	RestoreTask(ctx context.Context, taskID, host, dir string) (string, error)
}

// Volumes is the volume side of a move (the volume manager's).
type Volumes interface {
	PreCopy(ctx context.Context, name, target string, progress volumes.Progress) (api.VolumeReport, error)
	Sync(ctx context.Context, name, target string, progress volumes.Progress) (api.VolumeReport, error)
	Reclaim(name, from, to string) error
	RemoveCopy(ctx context.Context, name, host string) error
	// A live move's checkpoint volume: made on the source, where it is
	// on a host's disk, removed at the end.
	CreateOn(ctx context.Context, name, host string) error
	PathOn(ctx context.Context, name, host string) (string, error)
	Remove(ctx context.Context, name string) error
}

// Leases is the address side of a move (the network manager's).
type Leases interface {
	ClearEndpointHost(network, addr, host string) (store.IPLease, error)
}

// Options configure a Runner.
type Options struct {
	Store   *store.Store
	Apply   func(cmd []byte) (uint64, error)
	Tasks   Tasks
	Volumes Volumes
	Leases  Leases
	Log     *slog.Logger
	// Every is how often the runner looks for moves to drive even when
	// nothing changed (a rollback waiting for a host); store changes
	// wake it at once.
	Every time.Duration
	// ReleaseWait is how long a move waits for the source's agent to say
	// the task's endpoints are gone before it clears them itself.
	ReleaseWait time.Duration
}

// Runner creates moves and drives them on the leader.
type Runner struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	driving map[string]bool // moves with a goroutine on this manager
	wg      sync.WaitGroup
}

// New returns a runner.
func New(opts Options) *Runner {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Every == 0 {
		opts.Every = time.Second
	}
	if opts.ReleaseWait == 0 {
		opts.ReleaseWait = 5 * time.Second
	}
	return &Runner{opts: opts, log: opts.Log, driving: map[string]bool{}}
}

// Request asks for one move.
type Request struct {
	TaskID  string
	To      string
	Reason  string
	Timeout time.Duration
	// Live checkpoints the process instead of stopping it (the caller
	// checked that both hosts can: package migrate/live).
	Live bool
}

// Plan checks a move without recording it (--dry-run).
func (r *Runner) Plan(req Request) (orchestrator.MovePlan, error) {
	return r.opts.Tasks.PlanMove(req.TaskID, req.To)
}

// Start plans a move and records it; the leader's Run drives it. A task
// that is already moving is refused by the store.
func (r *Runner) Start(req Request) (store.Move, error) {
	plan, err := r.Plan(req)
	if err != nil {
		return store.Move{}, err
	}
	if req.Timeout <= 0 {
		req.Timeout = DefaultTimeout
	}
	now := time.Now().UTC()
	m := store.Move{
		ID: uuid.NewString(), TaskID: plan.Task.ID, App: plan.Task.App, Service: plan.Task.Service, Slot: plan.Task.Slot,
		From: plan.From, To: plan.To, Reason: req.Reason, Step: StepPreCopy, State: store.MoveRunning,
		Volumes: plan.Volumes, Deadline: now.Add(req.Timeout), Started: now, Updated: now, Live: req.Live,
	}
	if m.Live {
		m.Checkpoint = "checkpoint-" + m.ID[:8]
	}
	if _, err := r.opts.Apply(store.MustEncode(store.CmdPutMove, m)); err != nil {
		return store.Move{}, fmt.Errorf("record the move of %s.%d: %w", m.Service, m.Slot, err)
	}
	r.log.Info("move started", "move", m.ID, "task", m.TaskID, "from", m.From, "to", m.To, "reason", m.Reason)
	return m, nil
}

// Evacuate moves a task off its host to wherever the scheduler puts it,
// for a drain or a host that went down.
func (r *Runner) Evacuate(taskID, reason string) (store.Move, error) {
	to, err := r.opts.Tasks.PickTarget(taskID)
	if err != nil {
		return store.Move{}, err
	}
	return r.Start(Request{TaskID: taskID, To: to, Reason: reason})
}

// Run drives every active move until ctx ends (leadership lost), then
// waits for the moves' goroutines: the next leader resumes them.
func (r *Runner) Run(ctx context.Context) {
	defer r.wg.Wait()
	for {
		// One view for both: a move recorded after it wakes the wait.
		v := r.opts.Store.View()
		for _, m := range v.Moves() {
			if m.Active() {
				r.drive(ctx, m.ID)
			}
		}
		if err := r.prune(v); err != nil {
			r.log.Warn("forget old moves", "err", err)
		}
		wctx, cancel := context.WithTimeout(ctx, r.opts.Every)
		_ = r.opts.Store.WaitIndex(wctx, v.Index()+1)
		cancel()
		if ctx.Err() != nil {
			return
		}
	}
}

// KeepMoves is how many ended moves the store keeps for `clusterctl
// moves`; older ones are forgotten, so that what every reconcile pass and
// placement reads of the moves stays small.
const KeepMoves = 200

// prune forgets the ended moves beyond the newest KeepMoves.
func (r *Runner) prune(v *store.View) error {
	var ended []store.Move
	for _, m := range v.Moves() {
		if !m.Active() {
			ended = append(ended, m)
		}
	}
	if len(ended) <= KeepMoves {
		return nil
	}
	slices.SortFunc(ended, func(a, b store.Move) int { return b.Finished.Compare(a.Finished) })
	var cmds [][]byte
	for _, m := range ended[KeepMoves:] {
		cmds = append(cmds, store.MustEncode(store.CmdDeleteMove, store.NameRef{Name: m.ID}))
	}
	b, err := store.EncodeBatch(cmds...)
	if err != nil {
		return err
	}
	_, err = r.opts.Apply(b)
	return err
}

// drive runs a move in its own goroutine unless one already does.
func (r *Runner) drive(ctx context.Context, id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.driving[id] {
		return
	}
	r.driving[id] = true
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer func() {
			r.mu.Lock()
			delete(r.driving, id)
			r.mu.Unlock()
		}()
		(&mover{r: r, id: id}).run(ctx)
	}()
}
