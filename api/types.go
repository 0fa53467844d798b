// Package api holds the managers' HTTP/JSON API: the request and response
// types, and the client that the CLI, the agents and the other managers use.
// Every path is versioned under /v1/.
package api

import "github.com/clusterctl/clusterctl/store"

// ServerSelf is what a manager says about itself (GET /v1/cluster/self):
// enough for another manager to bootstrap with it, join through it, or
// report it in `clusterctl status`.
type ServerSelf struct {
	Name         string `json:"name"`
	RaftAddr     string `json:"raft"`
	APIAddr      string `json:"api"`
	ClusterID    string `json:"cluster_id,omitempty"`
	State        string `json:"state"` // leader, follower, candidate, shutdown
	Term         uint64 `json:"term"`
	LeaderName   string `json:"leader,omitempty"`
	LeaderAddr   string `json:"leader_raft,omitempty"`
	HasState     bool   `json:"has_state"` // bootstrapped or joined before
	AppliedIndex uint64 `json:"applied_index"`
}

// JoinRequest asks the cluster to add a manager (POST /v1/cluster/join).
type JoinRequest struct {
	Name      string `json:"name"`
	RaftAddr  string `json:"raft"`
	APIAddr   string `json:"api"`
	ClusterID string `json:"cluster_id,omitempty"` // the cluster the joiner expects, if any
}

// JoinResponse tells a joiner which cluster it joined.
type JoinResponse struct {
	ClusterID string `json:"cluster_id"`
}

// Status is the control plane at a glance (GET /v1/status).
type Status struct {
	ClusterID string         `json:"cluster_id"`
	Leader    string         `json:"leader"`
	Term      uint64         `json:"term"`
	Index     uint64         `json:"index"`
	Servers   []ServerStatus `json:"servers"`
}

// ServerStatus is one manager in Status.
type ServerStatus struct {
	Name  string `json:"name"`
	API   string `json:"api"`
	Raft  string `json:"raft"`
	State string `json:"state"` // leader, follower, candidate, unreachable
}

// HostsResponse lists the hosts in the store (GET /v1/hosts).
type HostsResponse struct {
	Index uint64       `json:"index"`
	Hosts []store.Host `json:"hosts"`
}

// RegisterHost is an agent announcing its host (POST /v1/hosts).
type RegisterHost struct {
	Name          string            `json:"name"`
	Addr          string            `json:"addr"`
	Docker        string            `json:"docker"`
	DockerVersion string            `json:"docker_version"`
	Labels        map[string]string `json:"labels,omitempty"`
	CPUs          int               `json:"cpus"`
	MemoryBytes   int64             `json:"memory_bytes"`
	// AgentAPI is the agent's own endpoint (https://addr:port) for volume
	// operations and volume data.
	AgentAPI string `json:"agent_api,omitempty"`
	// LiveRefusal says why the host cannot checkpoint containers, ""
	// if it can (see package migrate/live).
	LiveRefusal string `json:"live_refusal,omitempty"`
}

// Heartbeat is an agent saying its host is alive, with the containers it
// runs (POST /v1/hosts/{name}/heartbeat).
type Heartbeat struct {
	Containers []store.Container `json:"containers"`
	// Usage is the host's CPU and memory use since the last heartbeat.
	Usage *store.HostUsage `json:"usage,omitempty"`
}

// SetVars writes several variables in one log entry (PUT /v1/vars).
type SetVars struct {
	Vars []store.Var `json:"vars"`
}

// WriteResponse is the answer to a write: the log index it committed at.
type WriteResponse struct {
	Index uint64 `json:"index"`
}

// Error is the body of every error answer.
type Error struct {
	Error string `json:"error"`
}
