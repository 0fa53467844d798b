package scheduler

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// mixedTasks returns n tasks of services of very different sizes, in an
// interleaved order, so some services cross the dense threshold and
// others never do.
func mixedTasks(n int) []TaskSpec {
	tasks := make([]TaskSpec, n)
	slots := map[string]int{}
	for i := range tasks {
		svc := fmt.Sprintf("svc%d", min(i%13, 5)) // svc5 gets most tasks
		slots[svc]++
		tasks[i] = testTask(svc, slots[svc], withCPUs(0.01))
	}
	return tasks
}

func TestDenseServiceCountsMatchHosts(t *testing.T) {
	snap := roomyHosts(200)
	for _, h := range snap.Hosts[:10] { // tasks already running count too
		h.AddTask(testTask("svc5", 1000+h.idx))
	}
	s := NewStack(StackOptions{Rand: rand.New(rand.NewPCG(5, 6))})
	mustPlace(t, s, snap, mixedTasks(3000))
	if len(s.st.svcDense) == 0 {
		t.Fatal("no service crossed the dense threshold")
	}
	for svc, d := range s.st.svcDense {
		for _, h := range snap.Hosts {
			if int(d[h.idx]) != h.Tasks[svc] {
				t.Fatalf("%s on %s: dense count %d, host says %d", svc, h.Host.Name, d[h.idx], h.Tasks[svc])
			}
		}
	}
}

func TestDenseServiceCountsPlaceAlike(t *testing.T) {
	tasks := mixedTasks(3000)
	place := func(dense bool) Plan {
		snap := roomyHosts(200)
		s := NewStack(StackOptions{Rand: rand.New(rand.NewPCG(7, 8))})
		plan := mustPlace(t, s, snap, tasks[:1])
		if !dense {
			s.st.denseMin = math.MaxInt
			clear(s.st.svcDense)
		}
		rest := mustPlace(t, s, snap, tasks[1:])
		plan.Placements = append(plan.Placements, rest.Placements...)
		return plan
	}
	with, without := place(true), place(false)
	for i := range with.Placements {
		if with.Placements[i] != without.Placements[i] {
			t.Fatalf("placement %d: %+v with dense counts, %+v without", i, with.Placements[i], without.Placements[i])
		}
	}
}
