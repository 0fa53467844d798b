package scheduler

import (
	"fmt"
	"testing"

	"github.com/clusterctl/clusterctl/store/mock"
)

// testHosts returns n up worker hosts built from store/mock: host1..hostN,
// 4 CPUs, 8 GiB, label zone=lab, nothing placed yet.
func testHosts(n int) []*HostState {
	hosts := make([]*HostState, n)
	for i, h := range mock.Hosts(n) {
		hosts[i] = NewHostState(h, RoleWorker)
	}
	return hosts
}

// testSnapshot returns a snapshot of n mock hosts, each passed to tweak
// (with its index) to say what the test needs.
func testSnapshot(n int, tweak ...func(i int, h *HostState)) *Snapshot {
	hosts := testHosts(n)
	for i, h := range hosts {
		for _, f := range tweak {
			f(i, h)
		}
	}
	return NewSnapshot(hosts)
}

// testTask returns slot of service in the shop app, reserving nothing.
func testTask(service string, slot int, opts ...func(*TaskSpec)) TaskSpec {
	t := TaskSpec{ID: fmt.Sprintf("shop-%s-%d", service, slot), App: "shop", Service: service, Slot: slot}
	for _, o := range opts {
		o(&t)
	}
	return t
}

// testTasks returns slots 1..n of service.
func testTasks(service string, n int, opts ...func(*TaskSpec)) []TaskSpec {
	ts := make([]TaskSpec, n)
	for i := range ts {
		ts[i] = testTask(service, i+1, opts...)
	}
	return ts
}

func withPort(port uint16, proto string) func(*TaskSpec) {
	return func(t *TaskSpec) { t.Ports = append(t.Ports, Port{HostPort: port, Protocol: proto}) }
}

func withCPUs(cpus float64) func(*TaskSpec) { return func(t *TaskSpec) { t.CPUs = cpus } }

func withMemory(bytes int64) func(*TaskSpec) { return func(t *TaskSpec) { t.MemoryBytes = bytes } }

func withVolume(name string) func(*TaskSpec) {
	return func(t *TaskSpec) { t.Volumes = append(t.Volumes, name) }
}

func withColocate(service string) func(*TaskSpec) {
	return func(t *TaskSpec) { t.ColocateWith = service }
}

func withSpread(keys ...string) func(*TaskSpec) { return func(t *TaskSpec) { t.Spread = keys } }

// withConstraint parses s, panicking on a typo in the test itself.
func withConstraint(s string) func(*TaskSpec) {
	c, err := ParseConstraint(s)
	if err != nil {
		panic(err)
	}
	return func(t *TaskSpec) { t.Constraints = append(t.Constraints, c) }
}

// withLabel sets a label on the hosts whose index is in idx (all if none).
func withLabel(key, value string, idx ...int) func(int, *HostState) {
	return func(i int, h *HostState) {
		if len(idx) == 0 || contains(idx, i) {
			h.Host.Labels[key] = value
		}
	}
}

func contains(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// newTestContext indexes snap and makes t the task being placed, for
// testing checkers and rankers on their own.
func newTestContext(tb testing.TB, snap *Snapshot, t TaskSpec) *evalContext {
	tb.Helper()
	ctx := newEvalContext()
	ctx.st = newState(snap, nil, 0)
	if err := ctx.setTask(&t); err != nil {
		tb.Fatalf("setTask: %v", err)
	}
	return ctx
}

// perHost counts a plan's placements by host.
func perHost(p Plan) map[string]int {
	m := map[string]int{}
	for _, pl := range p.Placements {
		m[pl.Host]++
	}
	return m
}

// hostOf returns the host a plan puts a task on, or "".
func hostOf(p Plan, taskID string) string {
	for _, pl := range p.Placements {
		if pl.TaskID == taskID {
			return pl.Host
		}
	}
	return ""
}

// failureReasons returns the reasons of a plan's failures.
func failureReasons(p Plan) []string {
	var rs []string
	for _, f := range p.Failures {
		rs = append(rs, f.Reason)
	}
	return rs
}
