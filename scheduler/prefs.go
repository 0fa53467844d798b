package scheduler

import (
	"cmp"
	"slices"
	"strings"
)

// missingLabel stands for a host without the label: such hosts form their
// own group, as in Swarm, and cannot collide with any real value.
const missingLabel = "\x01"

// groupIndex groups hosts by their values of some spread keys ("zone a,
// rack 2"). It depends only on the keys, so every service spreading over
// the same keys shares it; building it is the one walk over all hosts.
type groupIndex struct {
	buckets  []*bucket // fixed order: by values (shuffled with a Rand), the tie-break
	bucketOf []*bucket // by HostState.idx
	prefixes []int     // how many distinct value prefixes each level has
}

// bucket is the hosts that share all the keys' values.
type bucket struct {
	id     string       // the values, NUL-separated
	rank   int          // position in the fixed order
	hosts  []*HostState // in ring order
	offset int          // rotating start, as the ring's
	seen   int
	// prefix numbers, per level, the bucket's first level+1 values among
	// that level's prefixes: buckets of one zone share a level-0 number.
	prefix []int
}

// newGroupIndex groups st's hosts by attrs.
func newGroupIndex(st *state, attrs []attr) *groupIndex {
	g := &groupIndex{bucketOf: make([]*bucket, len(st.snap.Hosts)), prefixes: make([]int, len(attrs))}
	byID := map[string]*bucket{}
	prefixNum := make([]map[string]int, len(attrs))
	for l := range prefixNum {
		prefixNum[l] = map[string]int{}
	}
	values := make([]string, len(attrs))
	for _, h := range st.ring.hosts {
		groupPrefixes(h, attrs, values)
		b := byID[values[len(values)-1]]
		if b == nil {
			b = &bucket{id: values[len(values)-1], prefix: make([]int, len(attrs))}
			for l, pre := range values {
				n, ok := prefixNum[l][pre]
				if !ok {
					n = len(prefixNum[l])
					prefixNum[l][pre] = n
				}
				b.prefix[l] = n
			}
			byID[b.id] = b
			g.buckets = append(g.buckets, b)
		}
		b.hosts = append(b.hosts, h)
		g.bucketOf[h.idx] = b
	}
	for l := range prefixNum {
		g.prefixes[l] = len(prefixNum[l])
	}
	g.order(st)
	return g
}

// order sorts the buckets by their values, then shuffles them if the stack
// has a Rand, so ties between equally loaded groups do not always favour
// the same one in production.
func (g *groupIndex) order(st *state) {
	slices.SortFunc(g.buckets, func(a, b *bucket) int { return strings.Compare(a.id, b.id) })
	if st.rand != nil {
		st.rand.Shuffle(len(g.buckets), func(i, j int) { g.buckets[i], g.buckets[j] = g.buckets[j], g.buckets[i] })
	}
	for i, b := range g.buckets {
		b.rank = i
	}
}

// groupPrefixes fills out[l] with h's first l+1 values, NUL-separated.
func groupPrefixes(h *HostState, attrs []attr, out []string) {
	var sb strings.Builder
	for l, a := range attrs {
		v, ok := a.of(h)
		if !ok {
			v = missingLabel
		}
		if l > 0 {
			sb.WriteByte(0)
		}
		sb.WriteString(v)
		out[l] = sb.String()
	}
}

// prefIndex counts one service's tasks in each group of a groupIndex, at
// every level. As a hostIterator it visits the least-loaded group first,
// so the sample the rankers see holds the hosts the preference wants;
// preferenceRanker then ranks hosts by their group's load. Its cost per
// placement grows with the number of groups, not of hosts.
type prefIndex struct {
	svc   string
	keys  []string
	g     *groupIndex
	load  [][]int   // per level, per prefix number: the service's tasks
	order []*bucket // this pass's visiting order
	cur   int       // position in order
}

// newPrefIndex counts svc's tasks over g's groups, visiting only the hosts
// that run the service.
func newPrefIndex(st *state, svc string, keys []string, g *groupIndex) *prefIndex {
	p := &prefIndex{svc: svc, keys: slices.Clone(keys), g: g, load: make([][]int, len(g.prefixes))}
	for l, n := range g.prefixes {
		p.load[l] = make([]int, n)
	}
	for _, h := range st.serviceHosts[svc] {
		p.addN(h, h.Tasks[svc])
	}
	p.order = slices.Clone(g.buckets)
	return p
}

// add counts one more task of the service on h.
func (p *prefIndex) add(h *HostState) { p.addN(h, 1) }

// addN counts n more tasks of the service on h, at every level.
func (p *prefIndex) addN(h *HostState, n int) {
	for l, pre := range p.g.bucketOf[h.idx].prefix {
		p.load[l][pre] += n
	}
}

// loadOf returns the service's tasks in h's group at a level.
func (p *prefIndex) loadOf(h *HostState, level int) int {
	return p.bucketLoad(p.g.bucketOf[h.idx], level)
}

// bucketLoad returns the service's tasks in b's group at a level.
func (p *prefIndex) bucketLoad(b *bucket, level int) int { return p.load[level][b.prefix[level]] }

// Reset orders the groups least-loaded first, level by level (the emptiest
// zone, then its emptiest rack), ties in the fixed order.
func (p *prefIndex) Reset() {
	slices.SortFunc(p.order, p.compare)
	for _, b := range p.order {
		b.seen = 0
	}
	p.cur = 0
}

// compare orders two buckets by load, level by level, then by rank.
func (p *prefIndex) compare(a, b *bucket) int {
	for l := range p.load {
		if c := cmp.Compare(p.bucketLoad(a, l), p.bucketLoad(b, l)); c != 0 {
			return c
		}
	}
	return cmp.Compare(a.rank, b.rank)
}

// Next returns the next host, group by group.
func (p *prefIndex) Next() *HostState {
	for p.cur < len(p.order) {
		b := p.order[p.cur]
		if b.seen < len(b.hosts) {
			h := b.hosts[b.offset]
			b.offset = (b.offset + 1) % len(b.hosts)
			b.seen++
			return h
		}
		p.cur++
	}
	return nil
}
