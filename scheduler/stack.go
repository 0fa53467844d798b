package scheduler

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// StackOptions chooses how a Stack ranks and samples hosts.
type StackOptions struct {
	// Ranker is RankSpread (the default, also for "") or RankBinpack.
	Ranker string
	// Rand shuffles the order hosts are visited in, so that managers do not
	// all pile onto the first hosts of the list. Nil visits hosts in
	// snapshot order, which makes tests exact.
	Rand *rand.Rand
	// SampleLimit is how many feasible hosts are ranked per placement; 0
	// means max(2, ceil(log2 hosts)), as Nomad does.
	SampleLimit int
}

// Validate reports options NewStack cannot use, so a bad flag or config
// value fails at start-up with a clear message.
func (o StackOptions) Validate() error {
	if baseRankers(o.Ranker, nil) == nil {
		return fmt.Errorf("ranker %q: want %s or %s", o.Ranker, RankSpread, RankBinpack)
	}
	if o.SampleLimit < 0 {
		return fmt.Errorf("sample limit %d: must be >= 0", o.SampleLimit)
	}
	return nil
}

// Stack places tasks on hosts: the chain of source, checkers, sample limit
// and rankers, assembled once by NewStack and reused for every placement.
// A Stack is not safe for concurrent use; a manager needs only one.
type Stack struct {
	opts     StackOptions
	ctx      *evalContext
	feasible *feasibleIterator
	limit    *limitIterator
	base     []ranker
	prefs    []ranker // one per spread level, grown on demand
	rankers  []ranker // this placement's: preferences, then base
	sticky   bool
	list     listIterator // pinned hosts, or every host to explain a failure
	st       *state
	cur      []float64 // scores of the host being ranked
	best     []float64 // scores of the best host so far
	placed   int
	failed   int
}

// NewStack assembles the placement chain. It panics on options that
// Validate rejects: check user input with Validate first.
func NewStack(opts StackOptions) *Stack {
	if err := opts.Validate(); err != nil {
		panic("scheduler: " + err.Error())
	}
	ctx := newEvalContext()
	s := &Stack{opts: opts, ctx: ctx}

	// Feasibility, in the order refusals are reported: a host's reason is
	// the first checker that says no, so the rules that pin a task to a
	// host come before the ones that say that host is full.
	s.feasible = &feasibleIterator{ctx: ctx, checkers: []checker{
		readyChecker{ctx},      // the host is up and not draining
		constraintChecker{ctx}, // deploy.placement.constraints hold
		volumeChecker{ctx},     // the task's attached volumes are here
		colocateChecker{ctx},   // its ColocateWith partner runs here
		resourceChecker{ctx},   // its CPU and memory reservations fit
		portChecker{ctx},       // its published ports are free
	}}

	// Sampling: rank only the first few feasible hosts, so a placement
	// costs about the same on 5 hosts as on 5000.
	s.limit = &limitIterator{src: s.feasible}

	// Ranking: the strategy's rankers, after the task's spread
	// preferences (added per task by setRankers).
	s.base = baseRankers(opts.Ranker, ctx)

	// Binpack starts each pass at the host that fitted first last time,
	// so it keeps filling that host; spread moves on, so successive
	// placements sample different hosts.
	s.sticky = opts.Ranker == RankBinpack
	return s
}

// Stats counts a stack's work, so tests and metrics can check that a
// placement costs the same on 5 hosts as on 5000.
type Stats struct {
	Placed        int // tasks placed
	Failed        int // tasks that found no host
	HostsExamined int // hosts run through the checkers, explanations included
	CheckerCalls  int // checker calls
}

// Stats returns the work done by all Place calls so far.
func (s *Stack) Stats() Stats {
	return Stats{Placed: s.placed, Failed: s.failed, HostsExamined: s.ctx.hostsExamined, CheckerCalls: s.ctx.checkerCalls}
}

// Place places tasks in order and returns the plan. It adds each placement
// to snap, so later tasks (and later calls) see earlier ones; clone the
// snapshot first to keep it. A task that fits nowhere gets a Failure saying
// why, and the others are still placed.
func (s *Stack) Place(snap *Snapshot, tasks []TaskSpec) Plan {
	s.use(snap)
	var plan Plan
	for i := range tasks {
		if p, f := s.place(&tasks[i]); f != nil {
			plan.Failures = append(plan.Failures, *f)
		} else {
			plan.Placements = append(plan.Placements, p)
		}
	}
	return plan
}

// Fits says whether one named host can take t now, and if not, why (the
// first rule it breaks): a move goes to the host the user chose, so the
// answer is about that host, not the best one.
func (s *Stack) Fits(snap *Snapshot, t TaskSpec, host string) error {
	s.use(snap)
	h := snap.Host(host)
	if h == nil {
		return fmt.Errorf("no host %q in the cluster", host)
	}
	if err := s.ctx.setTask(&t); err != nil {
		return fmt.Errorf("%s: invalid task: %w", t.Name(), err)
	}
	clear(s.ctx.rejected)
	if s.feasible.feasible(h) {
		return nil
	}
	for reason := range s.ctx.rejected { // one host, so one reason
		return errors.New(reason)
	}
	return errors.New("refused")
}

// use indexes snap unless the stack already did. The ring's position
// carries over so successive snapshots keep rotating.
func (s *Stack) use(snap *Snapshot) {
	if s.st.fresh(snap) {
		return
	}
	offset := 0
	if s.st != nil {
		offset = s.st.ring.offset
	}
	s.st = newState(snap, s.opts.Rand, offset)
	s.ctx.st = s.st
	s.limit.limit = sampleLimit(s.opts.SampleLimit, len(snap.Hosts))
}

// sampleLimit returns how many feasible hosts to rank on a cluster of n.
func sampleLimit(override, n int) int {
	if override > 0 {
		return override
	}
	if n <= 4 {
		return 2
	}
	return int(math.Ceil(math.Log2(float64(n))))
}

// place places one task, or says why it cannot.
func (s *Stack) place(t *TaskSpec) (Placement, *Failure) {
	if err := s.ctx.setTask(t); err != nil {
		s.failed++
		return Placement{}, &Failure{TaskID: t.ID, Reason: t.Name() + ": invalid task: " + err.Error()}
	}
	src := s.source()
	s.setRankers()
	h, first := s.selectHost(src)
	if h == nil {
		s.failed++
		return Placement{}, &Failure{TaskID: t.ID, Reason: s.explain()}
	}
	s.st.assign(h, t, s.ctx.svc)
	if s.sticky && src == hostIterator(s.st.ring) {
		s.st.ring.restartAt(first)
	}
	s.placed++
	return Placement{TaskID: t.ID, Host: h.Host.Name, Score: s.best[len(s.rankers)-len(s.base)]}, nil
}

// source picks this placement's candidates: the hosts the task is pinned
// to, its spread-preference groups (emptiest first), or the ring of all
// hosts.
func (s *Stack) source() hostIterator {
	if pins := s.ctx.pinned(); pins != nil {
		s.list.set(pins)
		return &s.list
	}
	if s.ctx.pref != nil {
		return s.ctx.pref
	}
	return s.st.ring
}

// setRankers puts the task's spread preferences, outermost first, before
// the strategy's rankers.
func (s *Stack) setRankers() {
	levels := len(s.ctx.spread)
	for len(s.prefs) < levels {
		s.prefs = append(s.prefs, preferenceRanker{ctx: s.ctx, level: len(s.prefs)})
	}
	s.rankers = append(append(s.rankers[:0], s.prefs[:levels]...), s.base...)
	if n := len(s.rankers); cap(s.cur) < n {
		s.cur, s.best = make([]float64, n), make([]float64, n)
	}
	s.cur, s.best = s.cur[:len(s.rankers)], s.best[:len(s.rankers)]
}

// selectHost ranks a sample of the feasible hosts of src and returns the
// best (the first seen on a tie) and the first feasible host.
func (s *Stack) selectHost(src hostIterator) (best, first *HostState) {
	s.feasible.setSource(src)
	s.limit.Reset()
	for h := s.limit.Next(); h != nil; h = s.limit.Next() {
		if first == nil {
			first = h
		}
		s.score(h)
		if best == nil || better(s.cur, s.best) {
			best = h
			s.cur, s.best = s.best, s.cur
		}
	}
	return best, first
}

// score fills s.cur with h's scores.
func (s *Stack) score(h *HostState) {
	for i, r := range s.rankers {
		s.cur[i] = r.Score(h)
	}
}

// better reports whether scores a beat b: the first ranker that tells
// them apart decides.
func better(a, b []float64) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] > b[i]
		}
	}
	return false
}

// explain runs every host through the checkers once more, in snapshot
// order, and says why none fits. Only failures pay for this full walk.
func (s *Stack) explain() string {
	clear(s.ctx.rejected)
	s.list.set(s.st.snap.Hosts)
	s.feasible.setSource(&s.list)
	for s.feasible.Next() != nil {
		// A host that fits now would be a bug in a source; the
		// refusals of the others are still the best explanation.
	}
	return s.ctx.task.Name() + ": no host fits: " + summarize(s.ctx.rejected)
}
