package scheduler

// hostIterator yields candidate hosts one at a time, nil when done. Reset
// starts a new pass for the next placement.
type hostIterator interface {
	Next() *HostState
	Reset()
}

// ringIterator visits every host once per pass, like Nomad's
// StaticIterator: a pass starts where the last one stopped, so successive
// placements look at different hosts without reshuffling anything.
type ringIterator struct {
	hosts  []*HostState
	pos    []int // ring position by HostState.idx
	offset int
	seen   int
}

// newRingIterator returns a ring over hosts (already in visiting order)
// whose first pass starts at offset.
func newRingIterator(hosts []*HostState, offset int) *ringIterator {
	r := &ringIterator{hosts: hosts, pos: make([]int, len(hosts))}
	for i, h := range hosts {
		r.pos[h.idx] = i
	}
	if len(hosts) > 0 {
		r.offset = offset % len(hosts)
	}
	return r
}

// Next returns the next host of this pass.
func (r *ringIterator) Next() *HostState {
	if r.seen >= len(r.hosts) {
		return nil
	}
	h := r.hosts[r.offset]
	r.offset = (r.offset + 1) % len(r.hosts)
	r.seen++
	return h
}

// Reset starts a new pass where this one stopped.
func (r *ringIterator) Reset() { r.seen = 0 }

// restartAt makes the next pass start at h: binpack keeps coming back to
// the first host that fitted, so it fills hosts in ring order.
func (r *ringIterator) restartAt(h *HostState) { r.offset = r.pos[h.idx] }

// listIterator visits a given list of hosts in order: the hosts a task is
// pinned to, or every host when explaining a failure.
type listIterator struct {
	hosts []*HostState
	i     int
}

// set replaces the list and starts over.
func (l *listIterator) set(hosts []*HostState) {
	l.hosts = hosts
	l.i = 0
}

// Next returns the next host of the list.
func (l *listIterator) Next() *HostState {
	if l.i >= len(l.hosts) {
		return nil
	}
	l.i++
	return l.hosts[l.i-1]
}

// Reset starts the list over.
func (l *listIterator) Reset() { l.i = 0 }

// feasibleIterator yields the hosts of its source that pass every checker,
// counting the work so tests can see what a placement costs.
type feasibleIterator struct {
	ctx      *evalContext
	src      hostIterator
	checkers []checker
}

// setSource points the iterator at the candidates for the next placement.
func (f *feasibleIterator) setSource(src hostIterator) { f.src = src }

// Next returns the next host that can take the task.
func (f *feasibleIterator) Next() *HostState {
	for h := f.src.Next(); h != nil; h = f.src.Next() {
		f.ctx.hostsExamined++
		if f.feasible(h) {
			return h
		}
	}
	return nil
}

// feasible runs the checkers in order; the first to refuse records why.
func (f *feasibleIterator) feasible(h *HostState) bool {
	for _, c := range f.checkers {
		f.ctx.checkerCalls++
		if !c.Feasible(h) {
			return false
		}
	}
	return true
}

// Reset starts a new pass of the source.
func (f *feasibleIterator) Reset() { f.src.Reset() }

// limitIterator stops after limit hosts: ranking a small sample of the
// feasible hosts keeps a placement's cost flat as the cluster grows, and
// the best of a few random hosts is nearly as good as the best of all.
type limitIterator struct {
	src   hostIterator
	limit int
	seen  int
}

// Next returns the next host until the limit is reached.
func (l *limitIterator) Next() *HostState {
	if l.seen >= l.limit {
		return nil
	}
	h := l.src.Next()
	if h != nil {
		l.seen++
	}
	return h
}

// Reset starts a new sample.
func (l *limitIterator) Reset() {
	l.seen = 0
	l.src.Reset()
}
