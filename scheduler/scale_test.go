package scheduler

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// roomyHosts returns n hosts big enough that every test task fits, so the
// only thing that changes with n is the size of the cluster.
func roomyHosts(n int) *Snapshot {
	return testSnapshot(n, withLabel("zone", "z0"), func(i int, h *HostState) {
		h.Host.CPUs, h.Host.MemoryBytes = 1<<16, 1<<50
		h.Host.Labels["zone"] = fmt.Sprintf("z%d", i%3)
	})
}

// scaleTasks returns n tasks over 10 services, with a reservation and a
// constraint so every checker has something to do.
func scaleTasks(n int, opts ...func(*TaskSpec)) []TaskSpec {
	tasks := make([]TaskSpec, n)
	for i := range tasks {
		tasks[i] = testTask(fmt.Sprintf("svc%d", i%10), i/10+1,
			append([]func(*TaskSpec){withCPUs(0.01), withMemory(1 << 20), withConstraint("node.role == worker")}, opts...)...)
	}
	return tasks
}

// perPlacement places tasks on snap and returns hosts examined and checker
// calls per placement.
func perPlacement(t *testing.T, opts StackOptions, snap *Snapshot, tasks []TaskSpec) (hosts, checks float64) {
	t.Helper()
	s := NewStack(opts)
	mustPlace(t, s, snap, tasks)
	st := s.Stats()
	return float64(st.HostsExamined) / float64(len(tasks)), float64(st.CheckerCalls) / float64(len(tasks))
}

func TestPlacementCostIsFlat(t *testing.T) {
	const tasks = 1000
	checkers := float64(len(NewStack(StackOptions{}).feasible.checkers))
	for _, ranker := range []string{RankSpread, RankBinpack} {
		for _, n := range []int{5, 5000} {
			for _, rnd := range []*rand.Rand{nil, rand.New(rand.NewPCG(1, 2))} {
				limit := float64(sampleLimit(0, n))
				hosts, checks := perPlacement(t, StackOptions{Ranker: ranker, Rand: rnd}, roomyHosts(n), scaleTasks(tasks))
				t.Logf("%s, %d hosts, rand=%v: %.2f hosts and %.2f checker calls per placement (limit %v)",
					ranker, n, rnd != nil, hosts, checks, limit)
				if hosts > limit+1 {
					t.Errorf("%s on %d hosts: %.2f hosts examined per placement, want <= %v (limit + 1)", ranker, n, hosts, limit+1)
				}
				if checks > (limit+1)*checkers {
					t.Errorf("%s on %d hosts: %.2f checker calls per placement, want <= %v", ranker, n, checks, (limit+1)*checkers)
				}
			}
		}
	}
}

func TestPlacementCostIndependentOfClusterSize(t *testing.T) {
	// With the same sample limit, 5 and 5000 hosts cost exactly the same.
	opts := StackOptions{SampleLimit: 4, Rand: rand.New(rand.NewPCG(3, 4))}
	small, _ := perPlacement(t, opts, roomyHosts(5), scaleTasks(1000))
	big, _ := perPlacement(t, opts, roomyHosts(5000), scaleTasks(1000))
	if small != big || big > 4 {
		t.Errorf("hosts examined per placement: %.2f on 5 hosts, %.2f on 5000; want both 4", small, big)
	}
}

func TestSpreadPreferenceCostIsFlat(t *testing.T) {
	// Spread preferences walk label groups, not hosts: 3 zones either way.
	for _, n := range []int{6, 5000} {
		limit := float64(sampleLimit(0, n))
		hosts, _ := perPlacement(t, StackOptions{}, roomyHosts(n), scaleTasks(1000, withSpread("node.labels.zone")))
		if hosts > limit+1 {
			t.Errorf("%d hosts: %.2f hosts examined per placement, want <= %v", n, hosts, limit+1)
		}
	}
}

func TestPinnedPlacementExaminesOneHost(t *testing.T) {
	snap := roomyHosts(5000)
	snap.Hosts[4321].AttachVolume("db-data")
	s := NewStack(StackOptions{})
	plan := mustPlace(t, s, snap, []TaskSpec{testTask("db", 1, withVolume("db-data"))})
	if hostOf(plan, "shop-db-1") != "host4322" || s.Stats().HostsExamined != 1 {
		t.Errorf("plan %+v after examining %d hosts, want host4322 after 1", plan, s.Stats().HostsExamined)
	}
}

// benchPlace measures one placement on an n-host cluster that is already
// indexed, the steady state of a manager placing a large deployment.
func benchPlace(b *testing.B, n int, opts ...func(*TaskSpec)) {
	snap := roomyHosts(n)
	tasks := scaleTasks(b.N, opts...)
	s := NewStack(StackOptions{Rand: rand.New(rand.NewPCG(1, 2))})
	s.Place(snap, scaleTasks(1, opts...)) // index the snapshot
	before := s.Stats().HostsExamined
	b.ReportAllocs()
	b.ResetTimer()
	plan := s.Place(snap, tasks)
	b.StopTimer()
	if err := plan.Err(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(s.Stats().HostsExamined-before)/float64(b.N), "hosts/op")
}

func BenchmarkPlace5Hosts(b *testing.B)    { benchPlace(b, 5) }
func BenchmarkPlace5000Hosts(b *testing.B) { benchPlace(b, 5000) }

func BenchmarkPlace5000HostsSpreadZones(b *testing.B) {
	benchPlace(b, 5000, withSpread("node.labels.zone"))
}
