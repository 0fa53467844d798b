package scheduler

import (
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/clusterctl/clusterctl/store"
	"github.com/clusterctl/clusterctl/store/mock"
)

// mustPlace places tasks and fails the test on any failure.
func mustPlace(t *testing.T, s *Stack, snap *Snapshot, tasks []TaskSpec) Plan {
	t.Helper()
	plan := s.Place(snap, tasks)
	if err := plan.Err(); err != nil {
		t.Fatalf("Place: %v", err)
	}
	return plan
}

func TestStackSpreadThreeReplicas(t *testing.T) {
	plan := mustPlace(t, NewStack(StackOptions{}), testSnapshot(3), testTasks("web", 3))
	want := map[string]int{"host1": 1, "host2": 1, "host3": 1}
	if got := perHost(plan); !maps.Equal(got, want) {
		t.Errorf("spread = %v, want %v", got, want)
	}
}

func TestStackSpreadManyReplicasEvenly(t *testing.T) {
	plan := mustPlace(t, NewStack(StackOptions{}), testSnapshot(4), testTasks("web", 12))
	for h, n := range perHost(plan) {
		if n != 3 {
			t.Errorf("%s has %d of 12 replicas on 4 hosts, want 3", h, n)
		}
	}
}

func TestStackBinpackFillsOneHostFirst(t *testing.T) {
	// 4-CPU hosts, 1-CPU tasks: host1 fills before host2 gets any.
	plan := mustPlace(t, NewStack(StackOptions{Ranker: RankBinpack}), testSnapshot(3), testTasks("web", 6, withCPUs(1)))
	want := "host1,host1,host1,host1,host2,host2"
	if got := hostsString(plan.Placements); got != want {
		t.Errorf("binpack placed web.1..6 on %s, want %s", got, want)
	}
}

func TestStackBinpackPacksTasksWithoutReservations(t *testing.T) {
	plan := mustPlace(t, NewStack(StackOptions{Ranker: RankBinpack}), testSnapshot(5), testTasks("web", 7))
	if got := perHost(plan); !maps.Equal(got, map[string]int{"host1": 7}) {
		t.Errorf("binpack = %v, want all on host1", got)
	}
}

func TestStackConstraints(t *testing.T) {
	snap := testSnapshot(6, withLabel("zone", "b", 1, 4), func(i int, h *HostState) {
		if i == 4 {
			h.Role = RoleManager
		}
	})
	tasks := testTasks("web", 4, withConstraint("node.labels.zone == b"), withConstraint("node.role != manager"))
	plan := mustPlace(t, NewStack(StackOptions{}), snap, tasks)
	if got := perHost(plan); !maps.Equal(got, map[string]int{"host2": 4}) {
		t.Errorf("placements = %v, want all on host2 (the only zone b worker)", got)
	}
}

func TestStackPortConflict(t *testing.T) {
	plan := NewStack(StackOptions{}).Place(testSnapshot(3), testTasks("web", 4, withPort(8080, "tcp")))
	if got := perHost(plan); !maps.Equal(got, map[string]int{"host1": 1, "host2": 1, "host3": 1}) {
		t.Errorf("placements = %v, want one per host", got)
	}
	want := []Failure{{TaskID: "shop-web-4", Reason: "web.4: no host fits: 3 hosts: port 8080/tcp in use"}}
	if !reflect.DeepEqual(plan.Failures, want) {
		t.Errorf("failures = %+v, want %+v", plan.Failures, want)
	}
	if err := plan.Err(); err == nil || err.Error() != want[0].Reason {
		t.Errorf("Err = %v, want %q", err, want[0].Reason)
	}
}

func TestStackMixedFailureMostFrequentFirst(t *testing.T) {
	snap := testSnapshot(7, withLabel("zone", "a", 0, 1, 2, 3, 4, 5), func(i int, h *HostState) {
		switch i {
		case 0, 1, 2:
			h.AddTask(testTask("old", i+1, withPort(8080, "")))
		case 3, 4:
			h.Host.State = store.HostDown
		case 5:
			h.UsedCPUs = 4
		}
	})
	task := testTask("web", 1, withPort(8080, ""), withCPUs(1), withConstraint("node.labels.zone == a"))
	plan := NewStack(StackOptions{}).Place(snap, []TaskSpec{task})
	want := "web.1: no host fits: 3 hosts: port 8080/tcp in use; 2 hosts: host is down; " +
		"1 host: constraint node.labels.zone == a not met; 1 host: not enough CPU (needs 1)"
	if got := failureReasons(plan); !slices.Equal(got, []string{want}) {
		t.Errorf("failures =\n  %q\nwant\n  %q", got, want)
	}
}

func TestStackVolumeLocality(t *testing.T) {
	snap := testSnapshot(3, func(i int, h *HostState) {
		if i == 2 {
			h.AttachVolume("db-data")
		}
	})
	s := NewStack(StackOptions{})
	// Spread alone would start on host1; the volume pins db to host3.
	plan := mustPlace(t, s, snap, []TaskSpec{
		testTask("db", 1, withVolume("db-data")),
		// A volume attached nowhere goes with the first task that mounts
		// it, and the next one follows, though spread prefers other hosts.
		testTask("cache", 1, withVolume("cache-data")),
		testTask("cache", 2, withVolume("cache-data")),
	})
	if got := hostOf(plan, "shop-db-1"); got != "host3" {
		t.Errorf("db.1 on %q, want host3 where db-data is attached", got)
	}
	if a, b := hostOf(plan, "shop-cache-1"), hostOf(plan, "shop-cache-2"); a != b {
		t.Errorf("cache.1 on %s, cache.2 on %s: want the host of cache-data for both", a, b)
	}

	// The owner cannot take it: say so, and why the others are no use.
	snap.Hosts[2].UsedPorts[Port{HostPort: 5432, Protocol: "tcp"}] = true
	plan = s.Place(snap, []TaskSpec{testTask("db", 2, withVolume("db-data"), withPort(5432, ""))})
	want := "db.2: no host fits: 2 hosts: volume db-data is attached to host3; 1 host: port 5432/tcp in use"
	if got := failureReasons(plan); !slices.Equal(got, []string{want}) {
		t.Errorf("failures = %q, want %q", got, want)
	}
}

func TestStackColocation(t *testing.T) {
	// db.1 runs on host3 and db.2 on host2, against the ring's order, so
	// only the co-location rule can put the sidecars there.
	snap := testSnapshot(4, func(i int, h *HostState) {
		switch i {
		case 2:
			h.AddTask(testTask("db", 1))
		case 1:
			h.AddTask(testTask("db", 2))
		}
	})
	s := NewStack(StackOptions{})
	plan := mustPlace(t, s, snap, testTasks("sidecar", 3, withColocate("db")))
	if got := hostOf(plan, "shop-sidecar-1"); got != "host3" {
		t.Errorf("sidecar.1 on %s, want host3 with db.1", got)
	}
	if got := hostOf(plan, "shop-sidecar-2"); got != "host2" {
		t.Errorf("sidecar.2 on %s, want host2 with db.2", got)
	}
	// db has no slot 3: any db host, and spread picks the emptier one.
	if got := hostOf(plan, "shop-sidecar-3"); got != "host2" && got != "host3" {
		t.Errorf("sidecar.3 on %s, want a host running db", got)
	}

	plan = s.Place(snap, []TaskSpec{testTask("proxy", 1, withColocate("cache"))})
	want := "proxy.1: no host fits: 4 hosts: no cache task to run with"
	if got := failureReasons(plan); !slices.Equal(got, []string{want}) {
		t.Errorf("failures = %q, want %q", got, want)
	}
}

// Slots placed in the same plan, after their service was indexed for
// co-location (by sidecar.1), are where their sidecars go: any db host
// would not do.
func TestStackColocationWithSlotPlacedInSamePlan(t *testing.T) {
	snap := testSnapshot(4)
	s := NewStack(StackOptions{})
	tasks := []TaskSpec{testTask("db", 1), testTask("sidecar", 1, withColocate("db"))}
	tasks = append(tasks, testTask("db", 2), testTask("db", 3), testTask("db", 4))
	for slot := 4; slot >= 2; slot-- {
		tasks = append(tasks, testTask("sidecar", slot, withColocate("db")))
	}
	plan := mustPlace(t, s, snap, tasks)
	for slot := 1; slot <= 4; slot++ {
		n := strconv.Itoa(slot)
		db, sidecar := hostOf(plan, "shop-db-"+n), hostOf(plan, "shop-sidecar-"+n)
		if db == "" || sidecar != db {
			t.Errorf("sidecar.%d on %q, want with db.%d on %q", slot, sidecar, slot, db)
		}
	}
}

func TestStackSpreadPreferenceBalancesZones(t *testing.T) {
	// Four hosts in zone a, one in b, one in c.
	zones := func() *Snapshot {
		return testSnapshot(6, withLabel("zone", "a"), withLabel("zone", "b", 4), withLabel("zone", "c", 5))
	}
	zoneOf := func(snap *Snapshot, p Plan) map[string]int {
		m := map[string]int{}
		for _, pl := range p.Placements {
			m[snap.Host(pl.Host).Host.Labels["zone"]]++
		}
		return m
	}

	snap := zones()
	plan := mustPlace(t, NewStack(StackOptions{}), snap, testTasks("web", 6, withSpread("node.labels.zone")))
	if got, want := zoneOf(snap, plan), map[string]int{"a": 2, "b": 2, "c": 2}; !maps.Equal(got, want) {
		t.Errorf("with spread preference: zones %v, want %v", got, want)
	}

	// Without the preference, spreading over hosts puts 4 of 6 in zone a.
	snap = zones()
	plan = mustPlace(t, NewStack(StackOptions{}), snap, testTasks("web", 6))
	if got, want := zoneOf(snap, plan), map[string]int{"a": 4, "b": 1, "c": 1}; !maps.Equal(got, want) {
		t.Errorf("without spread preference: zones %v, want %v", got, want)
	}
}

func TestStackSpreadPreferenceFallsBackWhenZoneFull(t *testing.T) {
	// Zone b's only host is down: replicas still land, in zone a.
	snap := testSnapshot(3, withLabel("zone", "a", 0, 1), withLabel("zone", "b", 2), func(i int, h *HostState) {
		if i == 2 {
			h.Host.State = store.HostDown
		}
	})
	plan := mustPlace(t, NewStack(StackOptions{}), snap, testTasks("web", 2, withSpread("node.labels.zone")))
	if got := perHost(plan); !maps.Equal(got, map[string]int{"host1": 1, "host2": 1}) {
		t.Errorf("placements = %v, want one on each zone a host", got)
	}
}

func TestStackNestedSpreadPreferences(t *testing.T) {
	// Zone a: racks 1 and 2; zone b: rack 3. Four replicas: two per zone,
	// and zone a's two on different racks.
	snap := testSnapshot(6, withLabel("zone", "a", 0, 1, 2, 3), withLabel("zone", "b", 4, 5),
		withLabel("rack", "1", 0, 1, 2), withLabel("rack", "2", 3), withLabel("rack", "3", 4, 5))
	plan := mustPlace(t, NewStack(StackOptions{}), snap, testTasks("web", 4, withSpread("node.labels.zone", "node.labels.rack")))
	racks := map[string]int{}
	for _, pl := range plan.Placements {
		l := snap.Host(pl.Host).Host.Labels
		racks[l["zone"]+"/"+l["rack"]]++
	}
	if want := map[string]int{"a/1": 1, "a/2": 1, "b/3": 2}; !maps.Equal(racks, want) {
		t.Errorf("racks = %v, want %v", racks, want)
	}
}

func TestStackSeededRandIsDeterministic(t *testing.T) {
	run := func(seed uint64) []Placement {
		s := NewStack(StackOptions{Rand: rand.New(rand.NewPCG(seed, seed))})
		return mustPlace(t, s, testSnapshot(50), testTasks("web", 20)).Placements
	}
	if a, b := run(7), run(7); !reflect.DeepEqual(a, b) {
		t.Errorf("same seed, different plans:\n%v\n%v", a, b)
	}
	distinct := map[string]bool{}
	for seed := range uint64(5) {
		distinct[hostsString(run(seed))] = true
	}
	if len(distinct) < 2 {
		t.Errorf("5 seeds gave %d distinct plans: the shuffle does nothing", len(distinct))
	}
}

func hostsString(ps []Placement) string {
	var hosts []string
	for _, p := range ps {
		hosts = append(hosts, p.Host)
	}
	return strings.Join(hosts, ",")
}

func TestStackLaterCallsSeeEarlierOnes(t *testing.T) {
	snap := testSnapshot(2)
	s := NewStack(StackOptions{})
	mustPlace(t, s, snap, testTasks("web", 2, withPort(80, "")))
	plan := s.Place(snap, []TaskSpec{testTask("web", 3, withPort(80, ""))})
	want := "web.3: no host fits: 2 hosts: port 80/tcp in use"
	if got := failureReasons(plan); !slices.Equal(got, []string{want}) {
		t.Errorf("failures = %q, want %q", got, want)
	}
	if st := s.Stats(); st.Placed != 2 || st.Failed != 1 {
		t.Errorf("stats = %+v, want 2 placed, 1 failed", st)
	}
}

func TestStackFailureLeavesSnapshotAlone(t *testing.T) {
	snap := testSnapshot(1)
	plan := NewStack(StackOptions{}).Place(snap, []TaskSpec{
		testTask("big", 1, withCPUs(8)),
		testTask("small", 1, withCPUs(4)),
	})
	if len(plan.Failures) != 1 || hostOf(plan, "shop-small-1") != "host1" {
		t.Errorf("plan = %+v, want big to fail and small to fit", plan)
	}
	if got := snap.Hosts[0].UsedCPUs; got != 4 {
		t.Errorf("UsedCPUs = %v, want 4 (the failed task reserves nothing)", got)
	}
}

func TestStackInvalidTask(t *testing.T) {
	plan := NewStack(StackOptions{}).Place(testSnapshot(2), []TaskSpec{testTask("web", 1, withSpread("zone"))})
	want := `web.1: invalid task: spread preference "zone": "zone": unknown key (want node.hostname, node.id, node.role or node.labels.NAME)`
	if got := failureReasons(plan); !slices.Equal(got, []string{want}) {
		t.Errorf("failures = %q, want %q", got, want)
	}
}

func TestStackNoHosts(t *testing.T) {
	plan := NewStack(StackOptions{}).Place(NewSnapshot(nil), testTasks("web", 1))
	if got, want := failureReasons(plan), []string{"web.1: no host fits: no hosts"}; !slices.Equal(got, want) {
		t.Errorf("failures = %q, want %q", got, want)
	}
}

func TestSnapshotCloneIsIndependent(t *testing.T) {
	snap := testSnapshot(2)
	dry := snap.Clone()
	mustPlace(t, NewStack(StackOptions{}), dry, testTasks("web", 2, withPort(80, ""), withCPUs(1)))
	for _, h := range snap.Hosts {
		if h.UsedCPUs != 0 || len(h.UsedPorts) != 0 || len(h.Tasks) != 0 {
			t.Errorf("%s changed by a plan on its clone: %+v", h.Host.Name, h)
		}
	}
	if snap.Host("host2") != snap.Hosts[1] || snap.Host("nope") != nil {
		t.Error("Snapshot.Host does not find hosts by name")
	}
}

func TestStackOptionsValidate(t *testing.T) {
	if err := (StackOptions{Ranker: "random"}).Validate(); err == nil ||
		err.Error() != `ranker "random": want spread or binpack` {
		t.Errorf("Validate = %v", err)
	}
	if err := (StackOptions{Ranker: RankBinpack, SampleLimit: 3}).Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Error("NewStack accepted an unknown ranker")
		}
	}()
	NewStack(StackOptions{Ranker: "random"})
}

func TestSampleLimit(t *testing.T) {
	for _, tc := range []struct{ override, hosts, want int }{
		{0, 0, 2}, {0, 1, 2}, {0, 3, 2}, {0, 4, 2}, {0, 5, 3}, {0, 1000, 10}, {0, 5000, 13}, {7, 5000, 7},
	} {
		if got := sampleLimit(tc.override, tc.hosts); got != tc.want {
			t.Errorf("sampleLimit(%d, %d) = %d, want %d", tc.override, tc.hosts, got, tc.want)
		}
	}
}

func TestRingRotates(t *testing.T) {
	snap := testSnapshot(4)
	st := newState(snap, nil, 0)
	limit := &limitIterator{src: st.ring, limit: 3}
	var passes [][]string
	for range 3 {
		limit.Reset()
		var names []string
		for h := limit.Next(); h != nil; h = limit.Next() {
			names = append(names, h.Host.Name)
		}
		passes = append(passes, names)
	}
	want := [][]string{{"host1", "host2", "host3"}, {"host4", "host1", "host2"}, {"host3", "host4", "host1"}}
	if !reflect.DeepEqual(passes, want) {
		t.Errorf("passes = %v, want %v", passes, want)
	}
}

func TestFitsNamesTheRuleAHostBreaks(t *testing.T) {
	hosts := mock.Hosts(2)
	hosts[1].Draining = true
	snap := NewSnapshot([]*HostState{NewHostState(hosts[0], RoleWorker), NewHostState(hosts[1], RoleWorker)})
	s := NewStack(StackOptions{})
	task := TaskSpec{ID: "t1", App: "shop", Service: "db", Slot: 1}
	if err := s.Fits(snap, task, hosts[0].Name); err != nil {
		t.Errorf("host1: %v, want it to fit", err)
	}
	if err := s.Fits(snap, task, hosts[1].Name); err == nil || err.Error() != "host is draining" {
		t.Errorf("host2: %v, want \"host is draining\"", err)
	}
	if err := s.Fits(snap, task, "host9"); err == nil {
		t.Error("an unknown host fits")
	}
}
