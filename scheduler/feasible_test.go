package scheduler

import (
	"maps"
	"testing"

	"github.com/clusterctl/clusterctl/store"
)

// checkHost runs one checker on one host and compares the verdict and the
// recorded reason ("" when the host is accepted).
func checkHost(t *testing.T, ctx *evalContext, c checker, h *HostState, wantReason string) {
	t.Helper()
	clear(ctx.rejected)
	ok := c.Feasible(h)
	want := map[string]int{}
	if wantReason != "" {
		want[wantReason] = 1
	}
	if ok != (wantReason == "") || !maps.Equal(ctx.rejected, want) {
		t.Errorf("%T on %s: feasible=%v reasons=%v, want feasible=%v reason %q",
			c, h.Host.Name, ok, ctx.rejected, wantReason == "", wantReason)
	}
}

func TestReadyChecker(t *testing.T) {
	snap := testSnapshot(4, func(i int, h *HostState) {
		switch i {
		case 1:
			h.Host.State = store.HostDown
		case 2:
			h.Draining = true
		case 3:
			h.Host.State = ""
		}
	})
	ctx := newTestContext(t, snap, testTask("web", 1))
	c := readyChecker{ctx}
	checkHost(t, ctx, c, snap.Hosts[0], "")
	checkHost(t, ctx, c, snap.Hosts[1], "host is down")
	checkHost(t, ctx, c, snap.Hosts[2], "host is draining")
	checkHost(t, ctx, c, snap.Hosts[3], "host is not up")
}

func TestConstraintChecker(t *testing.T) {
	snap := testSnapshot(2, withLabel("disk", "ssd", 0), func(i int, h *HostState) {
		if i == 0 {
			h.Role = RoleManager
		}
	})
	h1, h2 := snap.Hosts[0], snap.Hosts[1]
	cases := []struct {
		constraint string
		host       *HostState
		wantReason string
	}{
		{"node.hostname == host1", h1, ""},
		{"node.hostname == host1", h2, "constraint node.hostname == host1 not met"},
		{"node.hostname == HOST1", h1, ""}, // values compare case-insensitively, as in Swarm
		{"node.id != host1", h2, ""},
		{"node.id != host1", h1, "constraint node.id != host1 not met"},
		{"node.role == manager", h1, ""},
		{"node.role == manager", h2, "constraint node.role == manager not met"},
		{"node.role == worker", h2, ""}, // no role counts as worker
		{"node.labels.disk == ssd", h1, ""},
		{"node.labels.disk == ssd", h2, "constraint node.labels.disk == ssd not met"}, // missing label fails ==
		{"node.labels.disk != ssd", h2, ""},                                           // and passes !=
		{"node.labels.disk != ssd", h1, "constraint node.labels.disk != ssd not met"},
	}
	for _, tc := range cases {
		ctx := newTestContext(t, snap, testTask("web", 1, withConstraint(tc.constraint)))
		checkHost(t, ctx, constraintChecker{ctx}, tc.host, tc.wantReason)
	}
}

func TestResourceChecker(t *testing.T) {
	snap := testSnapshot(2, func(i int, h *HostState) {
		if i == 1 {
			h.UsedCPUs, h.UsedMemory = 3, 7<<30+600<<20
		}
	})
	free, busy := snap.Hosts[0], snap.Hosts[1]

	ctx := newTestContext(t, snap, testTask("web", 1, withCPUs(2), withMemory(512<<20)))
	c := resourceChecker{ctx}
	checkHost(t, ctx, c, free, "")
	checkHost(t, ctx, c, busy, "not enough CPU (needs 2)")

	ctx = newTestContext(t, snap, testTask("web", 1, withCPUs(1), withMemory(512<<20)))
	c = resourceChecker{ctx}
	checkHost(t, ctx, c, busy, "not enough memory (needs 512MiB)")

	// Float sums must not refuse the last tenth of a CPU.
	frac := testSnapshot(1, func(_ int, h *HostState) { h.Host.CPUs = 1 })
	for range 9 {
		frac.Hosts[0].AddTask(testTask("web", 1, withCPUs(0.1)))
	}
	ctx = newTestContext(t, frac, testTask("web", 10, withCPUs(0.1)))
	checkHost(t, ctx, resourceChecker{ctx}, frac.Hosts[0], "")
}

func TestPortChecker(t *testing.T) {
	snap := testSnapshot(2, func(i int, h *HostState) {
		if i == 1 {
			h.AddTask(testTask("old", 1, withPort(8080, "TCP"), withPort(53, "udp")))
		}
	})
	free, used := snap.Hosts[0], snap.Hosts[1]

	ctx := newTestContext(t, snap, testTask("web", 1, withPort(8080, "")))
	checkHost(t, ctx, portChecker{ctx}, free, "")
	checkHost(t, ctx, portChecker{ctx}, used, "port 8080/tcp in use")

	ctx = newTestContext(t, snap, testTask("dns", 1, withPort(53, "udp")))
	checkHost(t, ctx, portChecker{ctx}, used, "port 53/udp in use")

	// Another protocol on the same number, or a port Docker picks, is free.
	ctx = newTestContext(t, snap, testTask("dns", 1, withPort(8080, "udp"), withPort(0, "")))
	checkHost(t, ctx, portChecker{ctx}, used, "")
}

func TestVolumeChecker(t *testing.T) {
	snap := testSnapshot(3, func(i int, h *HostState) {
		if i == 1 {
			h.AttachVolume("db-data")
		}
	})
	ctx := newTestContext(t, snap, testTask("db", 1, withVolume("db-data"), withVolume("fresh")))
	c := volumeChecker{ctx}
	checkHost(t, ctx, c, snap.Hosts[1], "")
	checkHost(t, ctx, c, snap.Hosts[0], "volume db-data is attached to host2")
	checkHost(t, ctx, c, snap.Hosts[2], "volume db-data is attached to host2")

	// A volume attached nowhere yet does not restrict the task.
	ctx = newTestContext(t, snap, testTask("db", 1, withVolume("fresh")))
	checkHost(t, ctx, volumeChecker{ctx}, snap.Hosts[0], "")
}

func TestColocateChecker(t *testing.T) {
	snap := testSnapshot(3, func(i int, h *HostState) {
		switch i {
		case 1:
			h.AddTask(testTask("db", 1))
		case 2:
			h.AddTask(testTask("db", 2))
		}
	})
	h1, h2, h3 := snap.Hosts[0], snap.Hosts[1], snap.Hosts[2]

	// Same slot: sidecar.2 goes with db.2.
	ctx := newTestContext(t, snap, testTask("sidecar", 2, withColocate("db")))
	checkHost(t, ctx, colocateChecker{ctx}, h3, "")
	checkHost(t, ctx, colocateChecker{ctx}, h2, "must run with db.2 on host3")

	// db has no slot 3: any host running db will do.
	ctx = newTestContext(t, snap, testTask("sidecar", 3, withColocate("db")))
	checkHost(t, ctx, colocateChecker{ctx}, h2, "")
	checkHost(t, ctx, colocateChecker{ctx}, h3, "")
	checkHost(t, ctx, colocateChecker{ctx}, h1, "must run with a db task")

	// No cache task anywhere: nowhere to go.
	ctx = newTestContext(t, snap, testTask("sidecar", 1, withColocate("cache")))
	checkHost(t, ctx, colocateChecker{ctx}, h1, "no cache task to run with")

	// Without ColocateWith every host passes.
	ctx = newTestContext(t, snap, testTask("web", 1))
	checkHost(t, ctx, colocateChecker{ctx}, h1, "")
}

func TestSummarize(t *testing.T) {
	got := summarize(map[string]int{"b": 1, "a": 1, "c": 3, "host is down": 2})
	want := "3 hosts: c; 2 hosts: host is down; 1 host: a; 1 host: b"
	if got != want {
		t.Errorf("summarize = %q, want %q", got, want)
	}
	if got := summarize(nil); got != "no hosts" {
		t.Errorf("summarize(nil) = %q", got)
	}
}
