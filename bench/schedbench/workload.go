package schedbench

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/clusterctl/clusterctl/scheduler"
	"github.com/clusterctl/clusterctl/store"
)

// app is the one application every simulated task belongs to.
const app = "bench"

// zones are the values of the simulated hosts' zone label.
var zones = []string{"a", "b", "c"}

// simHost returns the i-th simulated host (0-based). Sizes vary (16, 32 or
// 64 CPUs, 4 GiB per CPU) so that the resource checker and the free-memory
// ranker see different hosts; zones a/b/c and racks give constraints and
// spread preferences something to work with.
func simHost(i int) store.Host {
	cpus := 16 << ((i / len(zones)) % 3)
	addr := fmt.Sprintf("10.%d.%d.%d", 100+i>>16, (i>>8)&0xff, i&0xff)
	return store.Host{
		Name:          "host" + strconv.Itoa(i+1),
		Addr:          addr,
		Docker:        "tcp://" + addr + ":2375",
		DockerVersion: "20.10.24",
		Labels:        map[string]string{"zone": zones[i%len(zones)], "rack": "r" + strconv.Itoa(i/len(zones)%20)},
		CPUs:          cpus,
		MemoryBytes:   int64(cpus) << 32,
		State:         store.HostUp,
	}
}

// workload is the tasks of a run: services of one app with the same
// number of replicas, whose tasks come service by service, slot by slot,
// as the orchestrator plans an app (orchestrator.planApp). A batch is then
// the replicas of one or a few services, like the plan of one deployment.
type workload struct {
	services []service
	replicas int     // tasks per service (the last one may have fewer)
	cpus     float64 // reserved by each task
	memory   int64   // reserved by each task
	updated  time.Time
}

// service is what the tasks of one service share.
type service struct {
	name    string
	version string
	cons    []scheduler.Constraint
	spread  []string
}

// newWorkload returns the workload for o. Reservations are sized so the
// cluster ends about a quarter full: every placement makes the resource
// checker work, and none fails for lack of room, whatever the sizes.
// One service in ten keeps out of zone c (a constraint to check), and one
// in ten spreads over zones (a spread preference to rank).
func newWorkload(o Options) *workload {
	var cpus int
	for i := range o.Hosts {
		cpus += simHost(i).CPUs
	}
	w := &workload{
		services: make([]service, o.Services),
		replicas: (o.Tasks + o.Services - 1) / o.Services,
		updated:  time.Now().UTC(),
	}
	w.cpus = float64(cpus) / 4 / float64(o.Tasks)
	w.memory = int64(float64(int64(cpus)<<32) / 4 / float64(o.Tasks))
	width := len(strconv.Itoa(o.Services - 1))
	for s := range w.services {
		sv := service{name: fmt.Sprintf("svc%0*d", width, s)}
		sum := sha256.Sum256([]byte(app + "/" + sv.name))
		sv.version = hex.EncodeToString(sum[:])[:16] // as spec.Service.Version
		switch s % 10 {
		case 9:
			sv.cons = []scheduler.Constraint{{Key: "node.labels.zone", Op: "!=", Value: "c"}}
		case 0:
			sv.spread = []string{"node.labels.zone"}
		}
		w.services[s] = sv
	}
	return w
}

// spec returns the scheduler's view of task n.
func (w *workload) spec(n int) scheduler.TaskSpec {
	sv := &w.services[n/w.replicas]
	slot := n%w.replicas + 1
	return scheduler.TaskSpec{
		ID:          taskID(sv.name, slot, n),
		App:         app,
		Service:     sv.name,
		Slot:        slot,
		Constraints: sv.cons,
		Spread:      sv.spread,
		CPUs:        w.cpus,
		MemoryBytes: w.memory,
	}
}

// taskID names task n as the orchestrator does (app.service.slot.random),
// with the random part derived from n so runs are repeatable.
func taskID(service string, slot, n int) string {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(n))
	sum := sha256.Sum256(b[:])
	return app + "." + service + "." + strconv.Itoa(slot) + "." + hex.EncodeToString(sum[:4])
}

// task returns the store object of task n placed on host, as the
// orchestrator commits a new task.
func (w *workload) task(n int, t *scheduler.TaskSpec, host string) store.Task {
	return store.Task{
		ID:            t.ID,
		App:           t.App,
		Service:       t.Service,
		Slot:          t.Slot,
		DesiredState:  store.TaskRunning,
		DesiredHost:   host,
		Version:       w.services[n/w.replicas].version,
		ObservedState: store.TaskPending,
		Updated:       w.updated,
	}
}

// simHosts returns the scheduler's snapshot of hosts, as a manager builds
// it from its store.View: every host up, nothing placed yet.
func simHosts(hosts []store.Host) *scheduler.Snapshot {
	states := make([]*scheduler.HostState, len(hosts))
	for i, h := range hosts {
		states[i] = scheduler.NewHostState(h, scheduler.RoleWorker)
	}
	return scheduler.NewSnapshot(states)
}

// encodeBatch returns the raft entry that commits a planned batch of the
// tasks first, first+1...:
// a Check that the batch's hosts are up and its tasks do not exist yet,
// then one PutTask per task, all or nothing.
func (w *workload) encodeBatch(first int, specs []scheduler.TaskSpec, plan scheduler.Plan) ([]byte, error) {
	check := store.Check{Tasks: make(map[string]uint64, len(specs))}
	cmds := make([][]byte, 1, len(specs)+1)
	for i, p := range plan.Placements {
		t := &specs[i]
		if p.TaskID != t.ID {
			return nil, fmt.Errorf("plan out of order: placement %d is %s, want %s", i, p.TaskID, t.ID)
		}
		check.Tasks[t.ID] = 0
		check.HostsUp = append(check.HostsUp, p.Host)
		cmd, err := store.Encode(store.CmdPutTask, w.task(first+i, t, p.Host))
		if err != nil {
			return nil, err
		}
		cmds = append(cmds, cmd)
	}
	slices.Sort(check.HostsUp)
	check.HostsUp = slices.Compact(check.HostsUp)
	cmd, err := store.Encode(store.CmdCheck, check)
	if err != nil {
		return nil, err
	}
	cmds[0] = cmd
	return store.EncodeBatch(cmds...)
}
