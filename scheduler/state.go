package scheduler

import (
	"math/rand/v2"
	"slices"
	"strings"
)

// state is a Stack's index of one Snapshot. Building it walks every host
// once; after that the stack keeps it current as it places tasks, so that a
// placement never walks every host to find a volume's owner, a service's
// slots or a label group's load.
type state struct {
	snap  *Snapshot
	hosts int // len(snap.Hosts) when built, to notice a changed snapshot
	rand  *rand.Rand
	ring  *ringIterator
	// total counts the tasks on each host, by HostState.idx.
	total []int
	// volumeOwner is the host each attached cluster volume is on.
	volumeOwner map[string]*HostState
	// slotHost is the host each slot runs on, by service key, for the
	// services a task was co-located with so far (see slotHosts).
	slotHost map[string]map[int]*HostState
	// serviceHosts lists, by service key, the hosts running the service in
	// the order they got its first task.
	serviceHosts map[string][]*HostState
	// groups holds the host groupings by spread keys; prefs the loads of
	// each service over them, by service and keys; prefsOf lists those by
	// service, to keep their loads current; lastPref is the last one used.
	groups   map[string]*groupIndex
	prefs    map[string]*prefIndex
	prefsOf  map[string][]*prefIndex
	lastPref *prefIndex
	// svcTasks counts each service's tasks. Once a service has denseMin
	// of them, svcDense holds its tasks per host by HostState.idx: the
	// spread ranker then reads an array instead of a map in each sampled
	// host, the cache misses that were most of a placement's cost on a
	// large cluster. The threshold bounds the arrays to 64 bytes per task.
	svcTasks map[string]int
	svcDense map[string][]int32
	denseMin int
}

// newState indexes snap. The ring visits hosts in an order shuffled by rnd
// (snapshot order if nil), starting at offset so that a new snapshot does
// not send the next placements back to the same first hosts.
func newState(snap *Snapshot, rnd *rand.Rand, offset int) *state {
	st := &state{
		snap:         snap,
		hosts:        len(snap.Hosts),
		rand:         rnd,
		total:        make([]int, len(snap.Hosts)),
		volumeOwner:  map[string]*HostState{},
		slotHost:     map[string]map[int]*HostState{},
		serviceHosts: map[string][]*HostState{},
		groups:       map[string]*groupIndex{},
		prefs:        map[string]*prefIndex{},
		prefsOf:      map[string][]*prefIndex{},
		svcTasks:     map[string]int{},
		svcDense:     map[string][]int32{},
		denseMin:     max(1, len(snap.Hosts)/16),
	}
	for i, h := range snap.Hosts {
		h.init()
		h.idx = i
		st.index(h)
	}
	order := slices.Clone(snap.Hosts)
	if rnd != nil {
		rnd.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	}
	st.ring = newRingIterator(order, offset)
	return st
}

// index adds what already runs on h to the indexes. Hosts are indexed in
// snapshot order, so the first host wins where the store is inconsistent
// (a volume or slot on two hosts) and every list is deterministic.
func (st *state) index(h *HostState) {
	for svc, n := range h.Tasks {
		st.total[h.idx] += n
		st.svcTasks[svc] += n
		if n > 0 {
			st.serviceHosts[svc] = append(st.serviceHosts[svc], h)
		}
	}
	for v, attached := range h.Volumes {
		if _, ok := st.volumeOwner[v]; attached && !ok {
			st.volumeOwner[v] = h
		}
	}
}

// slotHosts returns the host of each slot of the service svc. Only
// co-location asks, so a service is indexed the first time it is asked
// for and kept current from then on: an index of every slot of every
// service cost about 190 bytes per task on a large cluster. The host that
// got the service first wins where the store is inconsistent (a slot on
// two hosts).
func (st *state) slotHosts(svc string) map[int]*HostState {
	if m, ok := st.slotHost[svc]; ok {
		return m
	}
	m := map[int]*HostState{}
	for _, h := range st.serviceHosts[svc] {
		for _, s := range h.slots {
			if _, ok := m[s.slot]; s.svc == svc && !ok {
				m[s.slot] = h
			}
		}
	}
	st.slotHost[svc] = m
	return m
}

// fresh reports whether st still indexes snap.
func (st *state) fresh(snap *Snapshot) bool {
	return st != nil && st.snap == snap && st.hosts == len(snap.Hosts)
}

// assign places t on h: the host's usage and every index change together,
// so the next task sees this one.
func (st *state) assign(h *HostState, t *TaskSpec, svc string) {
	h.AddTask(*t)
	st.total[h.idx]++
	if h.Tasks[svc] == 1 {
		st.serviceHosts[svc] = append(st.serviceHosts[svc], h)
	}
	st.svcTasks[svc]++
	if d := st.svcDense[svc]; d != nil {
		d[h.idx]++
	} else if st.svcTasks[svc] >= st.denseMin {
		st.svcDense[svc] = st.denseCounts(svc)
	}
	if m := st.slotHost[svc]; m != nil {
		if _, ok := m[t.Slot]; !ok {
			m[t.Slot] = h
		}
	}
	for _, v := range t.Volumes {
		if _, ok := st.volumeOwner[v]; !ok {
			st.volumeOwner[v] = h
		}
	}
	for _, p := range st.prefsOf[svc] {
		p.add(h)
	}
}

// denseCounts returns a service's tasks per host by HostState.idx, read
// from the hosts that run it.
func (st *state) denseCounts(svc string) []int32 {
	d := make([]int32, len(st.snap.Hosts))
	for _, h := range st.serviceHosts[svc] {
		d[h.idx] = int32(h.Tasks[svc])
	}
	return d
}

// prefIndex returns the spread-preference index of a service over keys,
// building it the first time it is asked for. Replicas of one service come
// in a row, so the last one answered is checked first, without a lookup.
func (st *state) prefIndex(svc string, keys []string, attrs []attr) *prefIndex {
	if p := st.lastPref; p != nil && p.svc == svc && slices.Equal(p.keys, keys) {
		return p
	}
	groupID := strings.Join(keys, "\x00")
	id := svc + "\x00" + groupID
	p := st.prefs[id]
	if p == nil {
		g := st.groups[groupID]
		if g == nil {
			g = newGroupIndex(st, attrs)
			st.groups[groupID] = g
		}
		p = newPrefIndex(st, svc, keys, g)
		st.prefs[id] = p
		st.prefsOf[svc] = append(st.prefsOf[svc], p)
	}
	st.lastPref = p
	return p
}
