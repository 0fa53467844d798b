package scheduler

import "github.com/clusterctl/clusterctl/store"

// checker decides whether one host can take the task being placed. When it
// says no it records why in its context, so a failure can explain itself.
type checker interface {
	Feasible(h *HostState) bool
}

// cpuEpsilon absorbs float rounding when summing fractional CPU
// reservations, so ten 0.1-CPU tasks fit on one CPU.
const cpuEpsilon = 1e-9

// readyChecker refuses hosts the managers cannot use now: a down host would
// never start the task, and a draining one is being emptied on purpose.
type readyChecker struct{ ctx *evalContext }

// Feasible reports whether h is up and not draining.
func (c readyChecker) Feasible(h *HostState) bool {
	switch {
	case h.Host.State == store.HostDown:
		c.ctx.reject("host is down")
	case h.Host.State != store.HostUp:
		c.ctx.reject("host is not up")
	case h.Draining:
		c.ctx.reject("host is draining")
	default:
		return true
	}
	return false
}

// constraintChecker enforces deploy.placement.constraints.
type constraintChecker struct{ ctx *evalContext }

// Feasible reports whether h meets every constraint of the task.
func (c constraintChecker) Feasible(h *HostState) bool {
	for i := range c.ctx.cons {
		if m := &c.ctx.cons[i]; !m.matches(h) {
			c.ctx.reject(m.reason)
			return false
		}
	}
	return true
}

// volumeChecker keeps a task with its data: a cluster volume is attached
// to one host at a time, and moving it is a migration, not a placement.
type volumeChecker struct{ ctx *evalContext }

// Feasible reports whether every attached volume of the task is on h.
func (c volumeChecker) Feasible(h *HostState) bool {
	for _, v := range c.ctx.volumes {
		if v.owner != nil && v.owner != h {
			c.ctx.reject(v.reason)
			return false
		}
	}
	return true
}

// colocateChecker puts a task on the host of the service it shares a
// network namespace or volumes with, which Docker only allows locally.
type colocateChecker struct{ ctx *evalContext }

// Feasible reports whether h runs the task's partner: the same slot if the
// partner has it, else any of its tasks.
func (c colocateChecker) Feasible(h *HostState) bool {
	co := &c.ctx.colocate
	switch {
	case co.svc == "":
		return true
	case co.host != nil && co.host == h:
		return true
	case co.host == nil && h.Tasks[co.svc] > 0:
		return true
	}
	c.ctx.reject(co.reason)
	return false
}

// resourceChecker keeps reservations honest: a host never promises more
// CPU or memory than it has.
type resourceChecker struct{ ctx *evalContext }

// Feasible reports whether h has the task's CPU and memory free.
func (c resourceChecker) Feasible(h *HostState) bool {
	t := c.ctx.task
	if t.CPUs > 0 && float64(h.Host.CPUs)-h.UsedCPUs < t.CPUs-cpuEpsilon {
		c.ctx.reject(c.ctx.cpuReason)
		return false
	}
	if t.MemoryBytes > 0 && h.Host.MemoryBytes-h.UsedMemory < t.MemoryBytes {
		c.ctx.reject(c.ctx.memReason)
		return false
	}
	return true
}

// portChecker refuses a host where a published port is already taken:
// Docker would fail to start the container there.
type portChecker struct{ ctx *evalContext }

// Feasible reports whether all of the task's host ports are free on h.
func (c portChecker) Feasible(h *HostState) bool {
	for _, p := range c.ctx.ports {
		if h.UsedPorts[p.port] {
			c.ctx.reject(p.reason)
			return false
		}
	}
	return true
}
