package scheduler

import (
	"slices"
	"testing"
)

// rankOrder returns the names of hosts, best first, under rankers compared
// lexicographically as the stack does; ties keep snapshot order.
func rankOrder(rankers []ranker, hosts []*HostState) []string {
	scores := map[*HostState][]float64{}
	for _, h := range hosts {
		for _, r := range rankers {
			scores[h] = append(scores[h], r.Score(h))
		}
	}
	sorted := slices.Clone(hosts)
	slices.SortStableFunc(sorted, func(a, b *HostState) int {
		switch {
		case better(scores[a], scores[b]):
			return -1
		case better(scores[b], scores[a]):
			return 1
		}
		return 0
	})
	names := make([]string, len(sorted))
	for i, h := range sorted {
		names[i] = h.Host.Name
	}
	return names
}

func TestSpreadRankerOrder(t *testing.T) {
	snap := testSnapshot(5, func(i int, h *HostState) {
		switch i {
		case 0: // two web tasks: last
			h.AddTask(testTask("web", 1))
			h.AddTask(testTask("web", 2))
		case 1: // one web task
			h.AddTask(testTask("web", 3))
		case 2: // no web, but two other tasks
			h.AddTask(testTask("db", 1))
			h.AddTask(testTask("db", 2))
		case 3: // no web, one other task, less free memory than host5
			h.AddTask(testTask("db", 3, withMemory(1<<30)))
		case 4: // no web, one other task, more free memory
			h.AddTask(testTask("db", 4, withMemory(1<<20)))
		}
	})
	ctx := newTestContext(t, snap, testTask("web", 4))
	got := rankOrder(baseRankers(RankSpread, ctx), snap.Hosts)
	want := []string{"host5", "host4", "host3", "host2", "host1"}
	if !slices.Equal(got, want) {
		t.Errorf("spread order = %v, want %v", got, want)
	}
}

func TestBinpackRankerOrder(t *testing.T) {
	snap := testSnapshot(4, func(i int, h *HostState) {
		switch i {
		case 0:
			h.AddTask(testTask("db", 1, withCPUs(1), withMemory(1<<30)))
		case 1:
			h.AddTask(testTask("db", 2, withCPUs(3), withMemory(4<<30)))
		case 2: // nothing reserved, but runs tasks: ahead of the empty host
			h.AddTask(testTask("db", 3))
		}
	})
	ctx := newTestContext(t, snap, testTask("web", 1, withCPUs(0.5)))
	got := rankOrder(baseRankers(RankBinpack, ctx), snap.Hosts)
	want := []string{"host2", "host1", "host3", "host4"}
	if !slices.Equal(got, want) {
		t.Errorf("binpack order = %v, want %v", got, want)
	}
}

func TestPreferenceRankerOrder(t *testing.T) {
	// Zone a has two web tasks, zone b one, zone c none; host5 has no zone
	// label and is a group of its own, with no tasks.
	snap := testSnapshot(5, func(i int, h *HostState) {
		delete(h.Host.Labels, "zone")
		switch i {
		case 0, 1:
			h.Host.Labels["zone"] = "a"
			h.AddTask(testTask("web", i+1))
		case 2:
			h.Host.Labels["zone"] = "b"
			h.AddTask(testTask("web", 3))
		case 3:
			h.Host.Labels["zone"] = "c"
		}
	})
	ctx := newTestContext(t, snap, testTask("web", 4, withSpread("node.labels.zone")))
	got := rankOrder([]ranker{preferenceRanker{ctx: ctx, level: 0}}, snap.Hosts)
	want := []string{"host4", "host5", "host3", "host1", "host2"}
	if !slices.Equal(got, want) {
		t.Errorf("preference order = %v, want %v", got, want)
	}
}
