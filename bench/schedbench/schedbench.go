// Package schedbench measures how many placements per second the managers
// can decide and commit on a large cluster, and what that costs in memory.
//
// Run starts three managers in this process (hashicorp/raft on in-memory
// transports and log stores, each with a real store.Store as its FSM),
// registers simulated hosts through raft, then places tasks with one
// scheduler.Stack over a snapshot it keeps current, and commits each batch
// of placements as one raft entry: a store.Check (the batch's hosts are up,
// its tasks do not exist yet) and one PutTask per task, all or nothing, as
// the leader commits a plan. A placement counts once its entry is
// committed and applied without refusal. Planning the next batch overlaps
// committing the previous ones, as a leader's planner and plan applier do.
//
// Everything is real except the network and the disk: all three replicas
// apply every entry, and Run checks at the end that each holds every task.
// The baseline, measured in the same run, is placement alone (the same
// stack, hosts and tasks, nothing committed), so the ratio says what raft
// and three replicas cost on top of deciding.
package schedbench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
	"golang.org/x/sync/errgroup"

	"github.com/clusterctl/clusterctl/scheduler"
	"github.com/clusterctl/clusterctl/store"
)

// Options says what to simulate. Zero fields take the defaults of
// Defaults, the sizes the scheduler's scale targets are stated for.
type Options struct {
	// Hosts is how many simulated hosts register.
	Hosts int
	// Tasks is how many tasks are placed and committed.
	Tasks int
	// Batch is how many placements one raft entry commits.
	Batch int
	// Services is how many services the tasks belong to, with as many
	// replicas each (rounded up); tasks come service by service.
	Services int
	// Seed seeds the scheduler's host shuffle, so runs are repeatable.
	Seed uint64
	// MaxLag is how many entries a follower may still have to apply
	// before the leader waits for it. Followers apply on their own
	// goroutines; without a bound they would fall behind on a busy
	// machine and the rate would hide work still to be done.
	MaxLag int
	// SnapshotEvery, if positive, makes raft snapshot every replica and
	// compact its log every so many entries. Zero never snapshots, as
	// raft's defaults would not in a run this short (8192 entries): the
	// in-memory log then holds every entry, where a manager's log would
	// be on disk. Snapshots bound the log but serialize the whole state
	// each time, which costs far more CPU than the log costs memory.
	SnapshotEvery int
	// MemoryLimit, if positive, is the Go runtime's soft memory limit
	// (debug.SetMemoryLimit, as GOMEMLIMIT sets it) for the run, in
	// bytes: the collector then runs as often as it must to keep the
	// heap under it, instead of letting garbage grow to the live heap's
	// size (GOGC=100) before collecting. A manager would be run with one.
	MemoryLimit int64
	// NoBaseline skips the placement-only baseline.
	NoBaseline bool
	// OnCheckpoint, if set, is called as each checkpoint is passed, so a
	// long run can show progress.
	OnCheckpoint func(Checkpoint)
}

// Defaults are the sizes of the scale target: 5000 hosts, a million tasks
// committed a thousand per entry, over a thousand services.
var Defaults = Options{Hosts: 5000, Tasks: 1_000_000, Batch: 1000, Services: 1000, Seed: 1, MaxLag: 4}

// withDefaults fills zero fields from Defaults.
func (o Options) withDefaults() Options {
	d := Defaults
	for _, f := range []struct{ v, d *int }{
		{&o.Hosts, &d.Hosts}, {&o.Tasks, &d.Tasks}, {&o.Batch, &d.Batch},
		{&o.Services, &d.Services}, {&o.MaxLag, &d.MaxLag},
	} {
		if *f.v == 0 {
			*f.v = *f.d
		}
	}
	if o.Seed == 0 {
		o.Seed = d.Seed
	}
	return o
}

// Validate reports options Run cannot use, so a bad flag fails before
// anything starts.
func (o Options) Validate() error {
	o = o.withDefaults()
	for _, f := range []struct {
		name string
		v    int
	}{{"hosts", o.Hosts}, {"tasks", o.Tasks}, {"batch", o.Batch}, {"services", o.Services}, {"max lag", o.MaxLag}} {
		if f.v < 1 {
			return fmt.Errorf("%s %d: must be at least 1", f.name, f.v)
		}
	}
	if o.MemoryLimit < 0 {
		return fmt.Errorf("memory limit %d: must be 0 (none) or more", o.MemoryLimit)
	}
	if o.SnapshotEvery < 0 {
		return fmt.Errorf("snapshot every %d entries: must be 0 (never) or more", o.SnapshotEvery)
	}
	if o.SnapshotEvery > 0 && o.MaxLag+inflight >= trailingLogs {
		// A follower further behind than the log a snapshot leaves
		// would need InstallSnapshot, which the bench's discarded
		// snapshots cannot serve.
		return fmt.Errorf("max lag %d: must be below %d with snapshots", o.MaxLag, trailingLogs-inflight)
	}
	return nil
}

// Checkpoint is the rate over one window of the run: the placements
// committed since the previous checkpoint, over the time they took. A flat
// rate from checkpoint to checkpoint means the cost of a placement does
// not grow with the tasks already placed.
type Checkpoint struct {
	// Tasks is how many tasks were committed when the window closed:
	// the checkpoint, unless the batch size does not divide it.
	Tasks int `json:"tasks"`
	// PlacementsPerSec is the window's rate.
	PlacementsPerSec float64 `json:"placements_per_sec"`
	// Seconds is the time since the first placement.
	Seconds float64 `json:"seconds"`
	// RSSMiB is the process's resident memory at the checkpoint.
	RSSMiB float64 `json:"rss_mib"`
	// HeapMiB is the Go heap in use at the checkpoint (live objects
	// and garbage not yet collected).
	HeapMiB float64 `json:"heap_mib"`
	// CPUMicrosPerPlacement is the process's CPU time (user and system,
	// every goroutine) over the window, per placement: unlike the rate,
	// it does not depend on what else the machine runs.
	CPUMicrosPerPlacement float64 `json:"cpu_us_per_placement"`
}

// Baseline is the reference rate measured in the same run.
type Baseline struct {
	// What says what the baseline measures.
	What string `json:"what"`
	// PlacementsPerSec is its rate.
	PlacementsPerSec float64 `json:"placements_per_sec"`
	// Ratio is the committed rate over the baseline's: the share of the
	// machine left to placing once raft and three replicas take theirs.
	Ratio float64 `json:"ratio"`
}

// Replica is what one manager holds at the end of the run.
type Replica struct {
	Name         string `json:"name"`
	Leader       bool   `json:"leader"`
	AppliedIndex uint64 `json:"applied_index"`
	Tasks        int    `json:"tasks"`
	// SnapshotIndex is the index of the replica's last snapshot, 0 if
	// it took none.
	SnapshotIndex uint64 `json:"snapshot_index,omitempty"`
}

// Result is what a run measured.
type Result struct {
	Hosts    int `json:"hosts"`
	Tasks    int `json:"tasks"`
	Batch    int `json:"batch"`
	Services int `json:"services"`
	// PlacementsPerSec is every task over the time from the first
	// placement until all three replicas applied the last entry.
	PlacementsPerSec float64 `json:"placements_per_sec"`
	// PeakRSSMiB is the process's peak resident memory (VmHWM).
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	// MemoryLimitMiB is the Go runtime's soft memory limit during the
	// run, 0 if none.
	MemoryLimitMiB float64 `json:"memory_limit_mib"`
	// Seconds is the time the rate is over.
	Seconds float64 `json:"seconds"`
	// CPUMicrosPerPlacement is the process's CPU time over that time,
	// per placement (see Checkpoint).
	CPUMicrosPerPlacement float64 `json:"cpu_us_per_placement"`
	// Entries is how many raft entries committed the tasks.
	Entries int `json:"raft_entries"`
	// HostsExamined is how many hosts the scheduler checked per
	// placement: flat as the cluster grows, thanks to sampling.
	HostsExamined float64 `json:"hosts_examined_per_placement"`
	// Checkpoints are the rates over windows ending when 10k, 100k,
	// 1M... tasks and the last task are committed (at the first entry that
	// reaches each).
	Checkpoints []Checkpoint `json:"checkpoints"`
	// Baseline is placement alone, nil with NoBaseline.
	Baseline *Baseline `json:"baseline,omitempty"`
	// Replicas is what each manager holds after the run.
	Replicas []Replica `json:"replicas"`
}

// Run runs the benchmark. It fails if any entry is refused, if any replica
// ends without every task, or when ctx ends.
func Run(ctx context.Context, opts Options) (Result, error) {
	if err := opts.Validate(); err != nil {
		return Result{}, err
	}
	o := opts.withDefaults()
	res := Result{Hosts: o.Hosts, Tasks: o.Tasks, Batch: o.Batch, Services: o.Services}
	if o.MemoryLimit > 0 {
		defer debug.SetMemoryLimit(debug.SetMemoryLimit(o.MemoryLimit))
	}
	if limit := debug.SetMemoryLimit(-1); limit != math.MaxInt64 {
		res.MemoryLimitMiB = float64(limit) / (1 << 20)
	}
	w := newWorkload(o)
	if !o.NoBaseline {
		rate, err := baseline(ctx, o, w)
		if err != nil {
			return res, err
		}
		res.Baseline = &Baseline{What: "placement only, nothing committed (same hosts, tasks and stack)", PlacementsPerSec: rate}
		runtime.GC() // start the measured run without the baseline's garbage
	}
	c, err := startCluster(ctx, 3, o.SnapshotEvery)
	if err != nil {
		return res, err
	}
	err = run(ctx, o, w, c, &res)
	if serr := c.shutdown(); serr != nil {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return res, err
	}
	if res.Baseline != nil {
		res.Baseline.Ratio = res.PlacementsPerSec / res.Baseline.PlacementsPerSec
	}
	return res, nil
}

// baseline places every task with nothing committed and returns the rate:
// what the scheduler alone does on this machine.
func baseline(ctx context.Context, o Options, w *workload) (float64, error) {
	hosts := make([]store.Host, o.Hosts)
	for i := range hosts {
		hosts[i] = simHost(i)
	}
	snap := simHosts(hosts)
	stack := newStack(o)
	specs := make([]scheduler.TaskSpec, 0, o.Batch)
	start := time.Now()
	for first := 0; first < o.Tasks; first += o.Batch {
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("baseline: %w", err)
		}
		specs = w.specs(specs, first, min(o.Batch, o.Tasks-first))
		if err := stack.Place(snap, specs).Err(); err != nil {
			return 0, fmt.Errorf("baseline: place tasks %d-%d: %w", first, first+len(specs)-1, err)
		}
	}
	return float64(o.Tasks) / time.Since(start).Seconds(), nil
}

// newStack returns the one stack a run places with: spread, seeded.
func newStack(o Options) *scheduler.Stack {
	return scheduler.NewStack(scheduler.StackOptions{
		Ranker: scheduler.RankSpread,
		Rand:   rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15)),
	})
}

// specs refills buf with the specs of tasks first..first+n-1.
func (w *workload) specs(buf []scheduler.TaskSpec, first, n int) []scheduler.TaskSpec {
	buf = buf[:0]
	for i := range n {
		buf = append(buf, w.spec(first+i))
	}
	return buf
}

// planned is one batch ready to commit.
type planned struct {
	first, n int
	data     []byte
}

// run registers the hosts, places and commits every task, waits for the
// followers and checks every replica.
func run(ctx context.Context, o Options, w *workload, c *cluster, res *Result) error {
	leader, err := c.leader(ctx)
	if err != nil {
		return err
	}
	hosts, err := registerHosts(leader, o.Hosts)
	if err != nil {
		return err
	}
	snap := simHosts(hosts)
	stack := newStack(o)
	samples := map[int]string{} // task number -> planned host, checked at the end
	every := max(1, o.Tasks/1000)

	g, gctx := errgroup.WithContext(ctx)
	batches := make(chan planned, 1) // plan one batch ahead of the commits
	start, startCPU := time.Now(), cpuTime()
	g.Go(func() error {
		defer close(batches)
		specs := make([]scheduler.TaskSpec, 0, o.Batch)
		for first := 0; first < o.Tasks; first += o.Batch {
			specs = w.specs(specs, first, min(o.Batch, o.Tasks-first))
			plan := stack.Place(snap, specs)
			if err := plan.Err(); err != nil {
				return fmt.Errorf("place tasks %d-%d: %w", first, first+len(specs)-1, err)
			}
			data, err := w.encodeBatch(first, specs, plan)
			if err != nil {
				return fmt.Errorf("encode tasks %d-%d: %w", first, first+len(specs)-1, err)
			}
			for i, p := range plan.Placements {
				if n := first + i; n%every == 0 || n == o.Tasks-1 {
					samples[n] = p.Host
				}
			}
			select {
			case batches <- planned{first: first, n: len(specs), data: data}:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	var last uint64
	g.Go(func() error {
		var err error
		last, err = commit(gctx, o, c, leader, batches, start, res)
		return err
	})
	if err := g.Wait(); err != nil {
		return err
	}
	for _, f := range c.followers(leader) {
		if err := waitFollower(ctx, f, last); err != nil {
			return err
		}
	}
	elapsed := time.Since(start)
	res.Seconds = elapsed.Seconds()
	res.PlacementsPerSec = float64(o.Tasks) / elapsed.Seconds()
	res.CPUMicrosPerPlacement = float64((cpuTime() - startCPU).Microseconds()) / float64(o.Tasks)
	if res.PeakRSSMiB, err = procStatus("VmHWM"); err != nil {
		return err
	}
	st := stack.Stats()
	res.HostsExamined = float64(st.HostsExamined) / float64(st.Placed)
	return verify(o, w, c, leader, last, samples, res)
}

// registerHosts registers n simulated hosts through raft, a few hundred
// per entry, and returns them as the leader's store now has them.
func registerHosts(leader *node, n int) ([]store.Host, error) {
	const perEntry = 500
	for first := 0; first < n; first += perEntry {
		var cmds [][]byte
		for i := first; i < min(n, first+perEntry); i++ {
			cmd, err := store.Encode(store.CmdRegisterHost, simHost(i))
			if err != nil {
				return nil, err
			}
			cmds = append(cmds, cmd)
		}
		data, err := store.EncodeBatch(cmds...)
		if err != nil {
			return nil, err
		}
		if _, err := apply(leader, data); err != nil {
			return nil, fmt.Errorf("register hosts %d-%d: %w", first+1, first+len(cmds), err)
		}
	}
	hosts := leader.fsm.View().Hosts()
	if len(hosts) != n {
		return nil, fmt.Errorf("registered %d hosts, the store has %d", n, len(hosts))
	}
	return hosts, nil
}

// inflight is how many entries the committer keeps in raft at once: one
// being applied while the next is replicated lets raft overlap them.
const inflight = 2

// commit sends each planned batch to raft and waits for it in order,
// counting its tasks once the leader applied it without refusal; it keeps
// the followers within MaxLag entries and records the checkpoints. It
// returns the index of the last entry.
func commit(ctx context.Context, o Options, c *cluster, leader *node, batches <-chan planned, start time.Time, res *Result) (uint64, error) {
	type pending struct {
		b planned
		f raft.ApplyFuture
	}
	var queue []pending
	var indexes []uint64
	committed := 0
	cp := newCheckpointer(o, start, res)
	followers := c.followers(leader)
	oldest := func() error {
		p := queue[0]
		queue = queue[1:]
		index, err := waitApplied(p.f)
		if err != nil {
			return fmt.Errorf("commit tasks %d-%d: %w", p.b.first, p.b.first+p.b.n-1, err)
		}
		committed += p.b.n
		indexes = append(indexes, index)
		res.Entries++
		if k := len(indexes) - 1 - o.MaxLag; k >= 0 {
			for _, f := range followers {
				if err := waitFollower(ctx, f, indexes[k]); err != nil {
					return err
				}
			}
		}
		cp.committed(committed)
		return nil
	}
	for b := range batches {
		queue = append(queue, pending{b: b, f: leader.raft.Apply(b.data, applyTimeout)})
		if len(queue) >= inflight {
			if err := oldest(); err != nil {
				return 0, err
			}
		}
	}
	for len(queue) > 0 {
		if err := oldest(); err != nil {
			return 0, err
		}
	}
	if err := ctx.Err(); err != nil {
		return 0, err // the planner stopped early
	}
	if committed != o.Tasks {
		return 0, fmt.Errorf("committed %d tasks, want %d", committed, o.Tasks)
	}
	return indexes[len(indexes)-1], nil
}

// checkpointer closes a window each time the committed tasks reach the
// next checkpoint.
type checkpointer struct {
	o       Options
	res     *Result
	start   time.Time
	next    []int         // checkpoints still ahead
	tasks   int           // committed when the last window closed
	at      time.Time     // when it closed
	cpuTime time.Duration // the process's CPU time then
}

// newCheckpointer returns a checkpointer whose first window opens at start.
func newCheckpointer(o Options, start time.Time, res *Result) *checkpointer {
	return &checkpointer{o: o, res: res, start: start, next: checkpoints(o.Tasks), at: start, cpuTime: cpuTime()}
}

// committed records that n tasks are committed, closing a window if that
// reaches a checkpoint. A batch that passes several checkpoints at once
// closes one window, at the tasks actually committed.
func (c *checkpointer) committed(n int) {
	if len(c.next) == 0 || n < c.next[0] {
		return
	}
	for len(c.next) > 0 && n >= c.next[0] {
		c.next = c.next[1:]
	}
	now, cpu := time.Now(), cpuTime()
	cp := Checkpoint{
		Tasks:                 n,
		PlacementsPerSec:      float64(n-c.tasks) / now.Sub(c.at).Seconds(),
		Seconds:               now.Sub(c.start).Seconds(),
		CPUMicrosPerPlacement: float64((cpu - c.cpuTime).Microseconds()) / float64(n-c.tasks),
	}
	cp.RSSMiB, _ = procStatus("VmRSS") // informative: VmHWM at the end is the figure
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	cp.HeapMiB = float64(ms.HeapInuse) / (1 << 20)
	c.res.Checkpoints = append(c.res.Checkpoints, cp)
	if c.o.OnCheckpoint != nil {
		c.o.OnCheckpoint(cp)
	}
	c.tasks, c.at, c.cpuTime = n, now, cpu
}

// stallTimeout is how long a follower may take to apply one more entry
// before the run fails rather than hang.
const stallTimeout = time.Minute

// waitFollower waits until f applied index.
func waitFollower(ctx context.Context, f *node, index uint64) error {
	ctx, cancel := context.WithTimeout(ctx, stallTimeout)
	defer cancel()
	if err := f.fsm.WaitIndex(ctx, index); err != nil {
		return fmt.Errorf("follower %s: %w", f.id, err)
	}
	return nil
}

// checkpoints returns the task counts at which a window closes: 10k,
// 100k, 1M... below tasks, then tasks.
func checkpoints(tasks int) []int {
	var out []int
	for n := 10_000; n < tasks; n *= 10 {
		out = append(out, n)
	}
	return append(out, tasks)
}

// verify checks that every replica applied the last entry and holds every
// task, and that a follower has the sampled tasks where they were placed.
func verify(o Options, w *workload, c *cluster, leader *node, last uint64, samples map[int]string, res *Result) error {
	for _, nd := range c.nodes {
		v := nd.fsm.View()
		r := Replica{Name: string(nd.id), Leader: nd == leader, AppliedIndex: v.Index(), Tasks: v.TaskCount()}
		r.SnapshotIndex, _ = strconv.ParseUint(nd.raft.Stats()["last_snapshot_index"], 10, 64)
		res.Replicas = append(res.Replicas, r)
		if r.AppliedIndex < last || r.Tasks != o.Tasks {
			return fmt.Errorf("replica %s: %d tasks at index %d, want %d at %d", r.Name, r.Tasks, r.AppliedIndex, o.Tasks, last)
		}
	}
	f := c.followers(leader)[0]
	v := f.fsm.View()
	for n, host := range samples {
		id := w.spec(n).ID
		t, ok := v.Task(id)
		if !ok || t.DesiredHost != host || t.DesiredState != store.TaskRunning || t.ModifyIndex == 0 {
			return fmt.Errorf("replica %s: task %s is %+v (found %v), want it running on %s", f.id, id, t, ok, host)
		}
	}
	return nil
}
