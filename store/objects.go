package store

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"time"
)

// Server is a manager (a raft voter) as the cluster knows it, so that clients
// and agents can find every manager's API and the leader its raft peers.
type Server struct {
	Name     string `json:"name"`
	RaftAddr string `json:"raft_addr"`
	APIAddr  string `json:"api_addr"` // like "10.99.0.11:7400"
}

// HostState is whether the managers believe a host is alive.
type HostState string

// Host states.
const (
	// HostUp means the host registered or heartbeated recently.
	HostUp HostState = "up"
	// HostDown means the managers stopped hearing from the host.
	HostDown HostState = "down"
)

// Container is a container a host's agent reports as running on its Docker
// engine, so managers can compare what runs with what should.
type Container struct {
	ID     string            `json:"id"`
	Name   string            `json:"name"`
	Image  string            `json:"image"`
	State  string            `json:"state"`
	Labels map[string]string `json:"labels"`
	// Health is "healthy", "unhealthy", "starting", or "" without a
	// healthcheck, so managers can wait for service_healthy dependencies.
	Health string `json:"health,omitempty"`
	// ExitCode is the exit code of an exited container, for restart
	// policies and service_completed_successfully.
	ExitCode int `json:"exit_code,omitempty"`
	// Volumes are the cluster volumes the container mounts, so managers
	// know which volumes are in use and where.
	Volumes []string `json:"volumes,omitempty"`
}

// Host is a Docker host that runs an agent and takes tasks.
type Host struct {
	Name          string            `json:"name"`
	Addr          string            `json:"addr"`
	Docker        string            `json:"docker"` // engine endpoint
	DockerVersion string            `json:"docker_version"`
	Labels        map[string]string `json:"labels"`
	CPUs          int               `json:"cpus"`
	MemoryBytes   int64             `json:"memory_bytes"`
	State         HostState         `json:"state"`
	LastHeartbeat time.Time         `json:"last_heartbeat"`
	Containers    []Container       `json:"containers"`
	Registered    time.Time         `json:"registered"`
	// AgentAPI is the agent's own endpoint (https://addr:port), where
	// managers drive volume operations and agents send volume data.
	AgentAPI string `json:"agent_api,omitempty"`
	// Usage is what the host used when last sampled (every
	// persistEvery), for display.
	Usage *HostUsage `json:"usage,omitempty"`
	// LiveReady says the host can checkpoint and restore containers
	// (CRIU, dockerd --experimental); LiveRefusal says why not, as its
	// agent found when it registered.
	LiveReady   bool   `json:"live_ready,omitempty"`
	LiveRefusal string `json:"live_refusal,omitempty"`
	// Draining hosts take no new tasks (clusterctl drain; activate ends
	// it); a registration keeps it.
	Draining bool `json:"draining,omitempty"`
	// ModifyIndex is the raft index of the last change, set by the FSM. A
	// heartbeat that only advances LastHeartbeat does not bump it.
	ModifyIndex uint64 `json:"modify_index"`
}

// HostUsage is a host's CPU and memory use, as its agent sampled it.
type HostUsage struct {
	CPUCores    float64   `json:"cpu_cores"` // cores busy, on average, since the previous sample
	MemoryBytes int64     `json:"memory_bytes"`
	At          time.Time `json:"at"`
}

// App is a deployed Compose application, the unit users create and remove.
type App struct {
	Name    string    `json:"name"`
	Compose string    `json:"compose"`
	Created time.Time `json:"created"`
	// Spec is the app as deployed (a spec.App as JSON): its networks,
	// volumes and service order; each service's own spec is in Service.
	Spec json.RawMessage `json:"spec,omitempty"`
	// Removing is set by `down`: the reconciler removes the app's
	// containers (and its volumes if RemoveVolumes), then the app.
	Removing      bool   `json:"removing,omitempty"`
	RemoveVolumes bool   `json:"remove_volumes,omitempty"`
	ModifyIndex   uint64 `json:"modify_index"`
}

// Service is one service of an App, with its spec as decided by the
// scheduler; its key is App/Name.
type Service struct {
	App  string          `json:"app"`
	Name string          `json:"name"`
	Spec json.RawMessage `json:"spec"`
	// Version identifies Spec (a hash): a task whose Version differs runs
	// an older spec and is replaced by a rolling update.
	Version     string `json:"version"`
	Replicas    int    `json:"replicas"`
	ModifyIndex uint64 `json:"modify_index"`
}

// Task is one replica (slot) of a service: where it should run and where and
// how it actually runs.
type Task struct {
	ID           string `json:"id"`
	App          string `json:"app"`
	Service      string `json:"service"`
	Slot         int    `json:"slot"`
	DesiredState string `json:"desired_state"` // TaskRunning or TaskShutdown
	DesiredHost  string `json:"desired_host"`  // "" until placed
	// Version is the service spec version the task should run; the
	// container's label says which it does run.
	Version       string   `json:"version"`
	ObservedState string   `json:"observed_state"` // see the Task* states
	Host          string   `json:"host,omitempty"` // where its container is
	ContainerID   string   `json:"container_id,omitempty"`
	IPs           []string `json:"ips,omitempty"`
	Health        string   `json:"health,omitempty"`
	ExitCode      int      `json:"exit_code,omitempty"`
	Restarts      int      `json:"restarts,omitempty"`
	// Message says why the task is not running as desired ("waiting for
	// db", "no host fits: ..."), in one line for `clusterctl ps`.
	Message     string    `json:"message,omitempty"`
	Updated     time.Time `json:"updated,omitzero"`
	ModifyIndex uint64    `json:"modify_index,omitempty"`
}

// Task states: desired states are TaskRunning and TaskShutdown; observed
// states are all of them.
const (
	TaskPending  = "pending"  // not placed, or waiting for its dependencies
	TaskCreated  = "created"  // its container exists, not started
	TaskRunning  = "running"  // its container runs
	TaskExited   = "exited"   // its container stopped
	TaskShutdown = "shutdown" // to be removed (desired) / removed (observed)
	TaskLost     = "lost"     // its host is down
)

// Volume is a cluster volume: which host holds its lease (the only host
// that may mount it), under which lease generation (bumped on every attach:
// a fence against a host that lost the lease) and on which backend.
type Volume struct {
	Name    string `json:"name"`
	Backend string `json:"backend"` // VolumeCopy or VolumeBlock
	// OwnerHost holds the lease, "" when the volume is attached nowhere.
	// A copy volume's data lives on its owner, so it only changes owner
	// by a move; a block volume's image is on shared storage.
	OwnerHost  string `json:"owner_host"`
	Generation uint64 `json:"generation"`
	// MovingTo is the host a move is handing the volume to: until the
	// lease changes hands no host may mount the volume anew.
	MovingTo string `json:"moving_to,omitempty"`
	// SizeBytes is a block volume's image size, a copy volume's data
	// size when last measured.
	SizeBytes   int64             `json:"size_bytes"`
	Options     map[string]string `json:"options,omitempty"` // driver options as created
	Created     time.Time         `json:"created,omitzero"`
	ModifyIndex uint64            `json:"modify_index"`
}

// Volume backends.
const (
	VolumeCopy  = "copy"  // data on the owner's disk, streamed on a move
	VolumeBlock = "block" // a filesystem image on storage every host reaches
)

// Network is a cluster overlay network (one VXLAN segment).
type Network struct {
	Name    string `json:"name"`
	Subnet  string `json:"subnet"`
	Gateway string `json:"gateway,omitempty"` // the bridges' address on every host
	VNI     int    `json:"vni"`
	// Labels are the network's labels as created (Compose's project
	// label among them), for listing and removal.
	Labels      map[string]string `json:"labels,omitempty"`
	Created     time.Time         `json:"created,omitzero"`
	ModifyIndex uint64            `json:"modify_index"`
}

// IPLease reserves an address of a network for a task, so the task keeps its
// IP (and MAC) when it moves; its key is Network/Addr.
type IPLease struct {
	Network string `json:"network"`
	Addr    string `json:"addr"`
	TaskID  string `json:"task_id"`
	MAC     string `json:"mac"`
	// Host is where the address's endpoint is now, "" while it has none
	// (its container stopped, or moving): peers send its traffic there.
	Host        string `json:"host,omitempty"`
	ModifyIndex uint64 `json:"modify_index"`
}

// Move is the persisted state machine of one task moving between hosts, so
// that any manager that leads next can resume or roll it back. Step is the
// step to run next (or running now); every step is idempotent, so a new
// leader runs it again.
type Move struct {
	ID      string `json:"id"`
	TaskID  string `json:"task_id"`
	App     string `json:"app"`
	Service string `json:"service"`
	Slot    int    `json:"slot"`
	From    string `json:"from"`
	To      string `json:"to"`
	// Reason says who asked: "move", "drain host1", "host host1 down".
	Reason string `json:"reason,omitempty"`
	Step   string `json:"step"`
	State  string `json:"state"` // see the Move* states
	// Error is why a move rolled back or failed, in one line.
	Error string `json:"error,omitempty"`
	// Volumes are the task's cluster volumes, which follow it.
	Volumes []string `json:"volumes,omitempty"`
	// Live moves checkpoint the process instead of stopping it; the
	// checkpoint travels in a copy volume of its own, Checkpoint.
	Live       bool   `json:"live,omitempty"`
	Checkpoint string `json:"checkpoint,omitempty"`
	// Container is the task's container on the target, once created.
	Container string `json:"container,omitempty"`
	// Bytes and BytesSent are the volumes' size and what was sent so far;
	// Rate is the last reported transfer rate (bytes per second).
	Bytes     int64   `json:"bytes,omitempty"`
	BytesSent int64   `json:"bytes_sent,omitempty"`
	Rate      float64 `json:"rate,omitempty"`
	// Deadline ends a move that takes too long: it rolls back.
	Deadline time.Time `json:"deadline,omitzero"`
	Started  time.Time `json:"started"`
	Updated  time.Time `json:"updated"`
	// Stopped is when the source container stopped and Verified when the
	// target answered: the downtime is the time between.
	Stopped     time.Time `json:"stopped,omitzero"`
	Verified    time.Time `json:"verified,omitzero"`
	Finished    time.Time `json:"finished,omitzero"`
	ModifyIndex uint64    `json:"modify_index"`
}

// Move states.
const (
	MoveRunning     = "running"      // going forward
	MoveRollingBack = "rolling-back" // undoing, after a failure
	MoveDone        = "done"         // the task runs on To
	MoveRolledBack  = "rolled-back"  // the task runs on From again
	MoveFailed      = "failed"       // could not roll back: Error says what is left
)

// Active says whether a move still holds its task: the reconciler leaves
// such a task to the move.
func (m Move) Active() bool { return m.State == MoveRunning || m.State == MoveRollingBack }

// Var is a cluster variable: a small replicated key/value for tests and apps.
type Var struct {
	Key         string `json:"key"`
	Value       string `json:"value"`
	ModifyIndex uint64 `json:"modify_index"`
}

// cloneHost returns a deep copy of h.
func cloneHost(h Host) Host {
	h.Labels = maps.Clone(h.Labels)
	if h.Usage != nil {
		u := *h.Usage
		h.Usage = &u
	}
	h.Containers = cloneContainers(h.Containers)
	return h
}

// cloneContainers returns a deep copy of cs.
func cloneContainers(cs []Container) []Container {
	if cs == nil {
		return nil
	}
	out := make([]Container, len(cs))
	for i, c := range cs {
		c.Labels = maps.Clone(c.Labels)
		c.Volumes = slices.Clone(c.Volumes)
		out[i] = c
	}
	return out
}

// containersEqual reports whether two container lists are the same, treating
// nil and empty lists and maps alike.
func containersEqual(a, b []Container) bool {
	return slices.EqualFunc(a, b, func(x, y Container) bool {
		return x.ID == y.ID && x.Name == y.Name && x.Image == y.Image &&
			x.State == y.State && x.Health == y.Health && x.ExitCode == y.ExitCode &&
			maps.Equal(x.Labels, y.Labels) && slices.Equal(x.Volumes, y.Volumes)
	})
}

// cloneService returns a deep copy of s.
func cloneService(s Service) Service {
	s.Spec = bytes.Clone(s.Spec)
	return s
}

// cloneApp returns a deep copy of a.
func cloneApp(a App) App {
	a.Spec = bytes.Clone(a.Spec)
	return a
}

// cloneVolume returns a deep copy of v.
func cloneVolume(v Volume) Volume {
	v.Options = maps.Clone(v.Options)
	return v
}

// cloneNetwork returns a deep copy of n.
func cloneNetwork(n Network) Network {
	n.Labels = maps.Clone(n.Labels)
	return n
}

// cloneMove returns a deep copy of m.
func cloneMove(m Move) Move {
	m.Volumes = slices.Clone(m.Volumes)
	return m
}

// cloneTask returns a deep copy of t.
func cloneTask(t Task) Task {
	t.IPs = slices.Clone(t.IPs)
	return t
}

// same returns v: the clone of an object without references.
func same[T any](v T) T { return v }

// utc returns t in UTC, leaving the zero time alone.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}
