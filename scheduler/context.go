package scheduler

import (
	"strconv"

	units "github.com/docker/go-units"
)

// evalContext is what the checkers and rankers of one placement share: the
// indexed snapshot, the task compiled once (so checking a host is a few
// lookups with the refusal reasons already built), and the refusals seen.
type evalContext struct {
	st   *state
	task *TaskSpec
	svc  string  // ServiceKey of the task
	svcN []int32 // the service's tasks by HostState.idx, if the state keeps them

	cons      []match
	ports     []portReq
	volumes   []volumeReq
	colocate  colocation
	spread    []attr
	pref      *prefIndex // nil without spread preferences
	cpuReason string
	memReason string
	one       [1]*HostState // backs a single pinned host

	// rejected counts hosts by the reason they refused the task.
	rejected map[string]int
	// hostsExamined and checkerCalls count the work of all placements.
	hostsExamined int
	checkerCalls  int
}

// portReq is one published port of the task and the reason a host that
// already uses it gives.
type portReq struct {
	port   Port
	reason string
}

// volumeReq is one cluster volume of the task, the host it is attached to
// (nil if none yet) and the reason any other host gives.
type volumeReq struct {
	name   string
	owner  *HostState
	reason string
}

// colocation is where the task's partner service runs.
type colocation struct {
	svc    string       // partner's service key, "" if the task has none
	host   *HostState   // host of the partner's task with the same slot
	hosts  []*HostState // hosts running any task of the partner
	reason string       // what a host that is not one of those says
}

// newEvalContext returns a context with no task yet.
func newEvalContext() *evalContext {
	return &evalContext{rejected: map[string]int{}}
}

// setTask makes t the task being placed, compiling what checkers need.
func (c *evalContext) setTask(t *TaskSpec) error {
	if err := t.Validate(); err != nil {
		return err
	}
	c.task, c.svc = t, ServiceKey(t.App, t.Service)
	c.svcN = c.st.svcDense[c.svc]
	clear(c.rejected)
	c.compileConstraints()
	c.compileResources()
	c.compilePorts()
	c.compileVolumes()
	c.compileColocation()
	c.compileSpread()
	return nil
}

// compileConstraints compiles the task's constraints; Validate has already
// rejected any that do not compile.
func (c *evalContext) compileConstraints() {
	c.cons = c.cons[:0]
	for _, k := range c.task.Constraints {
		m, _ := compileConstraint(k)
		c.cons = append(c.cons, m)
	}
}

// compileResources builds the reasons for missing CPU or memory.
func (c *evalContext) compileResources() {
	c.cpuReason, c.memReason = "", ""
	if t := c.task; t.CPUs > 0 {
		c.cpuReason = "not enough CPU (needs " + strconv.FormatFloat(t.CPUs, 'g', -1, 64) + ")"
	}
	if t := c.task; t.MemoryBytes > 0 {
		c.memReason = "not enough memory (needs " + units.BytesSize(float64(t.MemoryBytes)) + ")"
	}
}

// compilePorts normalizes the task's fixed host ports.
func (c *evalContext) compilePorts() {
	c.ports = c.ports[:0]
	for _, p := range c.task.Ports {
		if p.HostPort != 0 {
			p = p.normal()
			c.ports = append(c.ports, portReq{port: p, reason: "port " + p.String() + " in use"})
		}
	}
}

// compileVolumes looks up where the task's volumes are attached.
func (c *evalContext) compileVolumes() {
	c.volumes = c.volumes[:0]
	for _, v := range c.task.Volumes {
		req := volumeReq{name: v, owner: c.st.volumeOwner[v]}
		if req.owner != nil {
			req.reason = "volume " + v + " is attached to " + req.owner.Host.Name
		}
		c.volumes = append(c.volumes, req)
	}
}

// compileColocation finds where the task's partner service runs: the same
// slot if the partner has it (sidecar N goes with main N), else any task.
func (c *evalContext) compileColocation() {
	t := c.task
	c.colocate = colocation{}
	if t.ColocateWith == "" {
		return
	}
	co := ServiceKey(t.App, t.ColocateWith)
	c.colocate.svc = co
	if h := c.st.slotHosts(co)[t.Slot]; h != nil && h.Tasks[co] > 0 {
		c.colocate.host = h
		c.colocate.reason = "must run with " + t.ColocateWith + "." + strconv.Itoa(t.Slot) + " on " + h.Host.Name
		return
	}
	c.colocate.hosts = c.st.serviceHosts[co]
	if len(c.colocate.hosts) > 0 {
		c.colocate.reason = "must run with a " + t.ColocateWith + " task"
		return
	}
	c.colocate.reason = "no " + t.ColocateWith + " task to run with"
}

// compileSpread parses the spread keys and finds their index.
func (c *evalContext) compileSpread() {
	c.spread, c.pref = c.spread[:0], nil
	if len(c.task.Spread) == 0 {
		return
	}
	for _, key := range c.task.Spread {
		a, _ := parseAttr(key)
		c.spread = append(c.spread, a)
	}
	c.pref = c.st.prefIndex(c.svc, c.task.Spread, c.spread)
}

// pinned returns the only hosts the task may go to, or nil if it may go
// anywhere: the owner of a volume it mounts, or where its partner runs.
// Visiting just those makes a pinned placement O(1) however big the
// cluster; the checkers still verify every other rule.
func (c *evalContext) pinned() []*HostState {
	for _, v := range c.volumes {
		if v.owner != nil {
			c.one[0] = v.owner
			return c.one[:]
		}
	}
	if c.colocate.host != nil {
		c.one[0] = c.colocate.host
		return c.one[:]
	}
	if len(c.colocate.hosts) > 0 {
		return c.colocate.hosts
	}
	return nil
}

// reject records that a host refused the task, and why.
func (c *evalContext) reject(reason string) { c.rejected[reason]++ }
