package scheduler

import (
	"maps"
	"slices"

	"github.com/clusterctl/clusterctl/store"
)

// Host roles, for node.role constraints.
const (
	RoleManager = "manager"
	RoleWorker  = "worker"
)

// Snapshot is the cluster as the scheduler sees it: every host with what
// already runs there. The caller builds it from a store.View; Stack.Place
// then adds each placement to it, so the snapshot always reflects the plan
// so far and later tasks see earlier ones.
//
// A Stack indexes a snapshot on first use and keeps the index current as it
// places tasks. Between Place calls on the same snapshot, change it only
// through Place, or build a new one: the index would not see other edits.
type Snapshot struct {
	Hosts []*HostState

	byName map[string]*HostState // for Host
	named  int                   // len(Hosts) when byName was built
}

// NewSnapshot returns a snapshot of hosts, for callers that then look hosts
// up by name to add the tasks and volumes the store says are there.
func NewSnapshot(hosts []*HostState) *Snapshot { return &Snapshot{Hosts: hosts} }

// Host returns the host of that name, or nil, so a caller can add the
// store's tasks and volume owners without a scan per object.
func (s *Snapshot) Host(name string) *HostState {
	h := s.byName[name]
	if s.byName == nil || s.named != len(s.Hosts) || (h != nil && h.Host.Name != name) {
		s.indexNames()
		h = s.byName[name]
	}
	return h
}

// indexNames (re)builds the by-name index, first host winning on a clash.
func (s *Snapshot) indexNames() {
	s.byName = make(map[string]*HostState, len(s.Hosts))
	for _, h := range s.Hosts {
		if _, dup := s.byName[h.Host.Name]; !dup {
			s.byName[h.Host.Name] = h
		}
	}
	s.named = len(s.Hosts)
}

// Clone returns a copy whose usage can change without touching s, so a
// caller can plan against the same state twice (a dry run, then a retry).
// The store.Host values are shared: the scheduler never writes them.
func (s *Snapshot) Clone() *Snapshot {
	out := &Snapshot{Hosts: make([]*HostState, len(s.Hosts))}
	for i, h := range s.Hosts {
		out.Hosts[i] = h.clone()
	}
	return out
}

// HostState is one host and what is placed on it: the store's view plus
// the placements made so far in the same plan.
type HostState struct {
	Host store.Host
	// Role is RoleManager or RoleWorker; "" counts as a worker.
	Role string
	// Draining hosts take no new tasks; what runs there is being moved.
	Draining   bool
	UsedCPUs   float64
	UsedMemory int64
	// UsedPorts holds published host ports in use (normalized: see Port).
	UsedPorts map[Port]bool
	// Tasks counts the tasks on the host by ServiceKey(app, service).
	Tasks map[string]int
	// Volumes holds the cluster volumes attached (owned) here: a task that
	// mounts one of them must come here.
	Volumes map[string]bool

	// slots records which slot of which service runs here, so a co-located
	// task can join the same slot of its partner service.
	slots []slotKey
	// idx is the host's position in its Snapshot, set when it is indexed.
	idx int
}

// slotKey names one slot of a service.
type slotKey struct {
	svc  string
	slot int
}

// NewHostState returns h with nothing placed on it yet, ready for AddTask.
func NewHostState(h store.Host, role string) *HostState {
	hs := &HostState{Host: h, Role: role, Draining: h.Draining}
	hs.init()
	return hs
}

// init makes the maps, so hosts built as literals work too.
func (h *HostState) init() {
	if h.UsedPorts == nil {
		h.UsedPorts = map[Port]bool{}
	}
	if h.Tasks == nil {
		h.Tasks = map[string]int{}
	}
	if h.Volumes == nil {
		h.Volumes = map[string]bool{}
	}
}

// AddTask records that t runs (or will run) on h: its reservations, ports,
// volumes and slot. Callers use it to load what the store says runs where;
// Place uses it for each placement.
func (h *HostState) AddTask(t TaskSpec) {
	h.init()
	key := ServiceKey(t.App, t.Service)
	h.UsedCPUs += t.CPUs
	h.UsedMemory += t.MemoryBytes
	for _, p := range t.Ports {
		if p.HostPort != 0 {
			h.UsedPorts[p.normal()] = true
		}
	}
	h.Tasks[key]++
	for _, v := range t.Volumes {
		h.Volumes[v] = true
	}
	h.slots = append(h.slots, slotKey{svc: key, slot: t.Slot})
}

// AttachVolume records that a cluster volume is owned by h (from
// store.Volume.OwnerHost), so tasks that mount it are placed here.
func (h *HostState) AttachVolume(name string) {
	h.init()
	h.Volumes[name] = true
}

// role returns the host's role, defaulting to worker.
func (h *HostState) role() string {
	if h.Role == "" {
		return RoleWorker
	}
	return h.Role
}

// clone returns a copy of h with its own maps.
func (h *HostState) clone() *HostState {
	c := *h
	c.UsedPorts = maps.Clone(h.UsedPorts)
	c.Tasks = maps.Clone(h.Tasks)
	c.Volumes = maps.Clone(h.Volumes)
	c.slots = slices.Clone(h.slots)
	c.init()
	return &c
}
