package scheduler

// ranker scores a feasible host for the task being placed; higher is
// better. A stack compares hosts ranker by ranker: a later ranker only
// breaks the ties of the earlier ones, which keeps each one simple.
type ranker interface {
	Score(h *HostState) float64
}

// Ranker names for StackOptions.
const (
	// RankSpread spreads a service's tasks over hosts, so losing one host
	// loses few replicas. It is the default.
	RankSpread = "spread"
	// RankBinpack fills hosts before using new ones, leaving whole hosts
	// free for big tasks or to be turned off.
	RankBinpack = "binpack"
)

// serviceSpreadRanker prefers hosts with fewer tasks of the same service.
type serviceSpreadRanker struct{ ctx *evalContext }

// Score returns minus the service's tasks on h.
func (r serviceSpreadRanker) Score(h *HostState) float64 {
	if n := r.ctx.svcN; n != nil {
		return -float64(n[h.idx])
	}
	return -float64(h.Tasks[r.ctx.svc])
}

// taskSpreadRanker prefers hosts with fewer tasks of any service.
type taskSpreadRanker struct{ ctx *evalContext }

// Score returns minus the tasks on h.
func (r taskSpreadRanker) Score(h *HostState) float64 {
	return -float64(r.ctx.st.total[h.idx])
}

// freeMemoryRanker prefers hosts with more free memory, the resource that
// most often runs out on Docker hosts.
type freeMemoryRanker struct{}

// Score returns h's unreserved memory in bytes.
func (freeMemoryRanker) Score(h *HostState) float64 {
	return float64(h.Host.MemoryBytes - h.UsedMemory)
}

// binpackRanker prefers the host that would be fullest with the task, as
// the mean of its CPU and memory reservations over capacity.
type binpackRanker struct{ ctx *evalContext }

// Score returns h's used fraction once the task is added.
func (r binpackRanker) Score(h *HostState) float64 {
	t := r.ctx.task
	var sum float64
	n := 0
	if h.Host.CPUs > 0 {
		sum += (h.UsedCPUs + t.CPUs) / float64(h.Host.CPUs)
		n++
	}
	if h.Host.MemoryBytes > 0 {
		sum += float64(h.UsedMemory+t.MemoryBytes) / float64(h.Host.MemoryBytes)
		n++
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

// taskPackRanker prefers hosts with more tasks, so binpack still packs
// tasks that reserve nothing.
type taskPackRanker struct{ ctx *evalContext }

// Score returns the tasks on h.
func (r taskPackRanker) Score(h *HostState) float64 {
	return float64(r.ctx.st.total[h.idx])
}

// preferenceRanker prefers hosts whose value of one spread key (level 0 is
// the first key) has the fewest tasks of the service, like Swarm's
// placement preferences: replicas spread evenly over zones, not hosts.
type preferenceRanker struct {
	ctx   *evalContext
	level int
}

// Score returns minus the service's tasks in h's group at this level.
func (r preferenceRanker) Score(h *HostState) float64 {
	return -float64(r.ctx.pref.loadOf(h, r.level))
}

// baseRankers returns the rankers of a named strategy, most important
// first, or nil for an unknown name.
func baseRankers(name string, ctx *evalContext) []ranker {
	switch name {
	case "", RankSpread:
		return []ranker{
			serviceSpreadRanker{ctx}, // fewest tasks of this service
			taskSpreadRanker{ctx},    // then fewest tasks overall
			freeMemoryRanker{},       // then most free memory
		}
	case RankBinpack:
		return []ranker{
			binpackRanker{ctx},  // most used resources
			taskPackRanker{ctx}, // then most tasks
		}
	}
	return nil
}
