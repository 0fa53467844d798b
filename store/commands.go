package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// CommandType is the first byte of a log entry: it says which change the
// JSON payload that follows describes.
type CommandType uint8

// Command types. Values are persisted in the raft log: never renumber them,
// only append new ones at the end.
const (
	CmdInitCluster    CommandType = iota + 1 // InitCluster: set the cluster ID once
	CmdRegisterServer                        // Server: add or update a manager
	CmdRemoveServer                          // NameRef (server name): forget a manager
	CmdRegisterHost                          // Host: add or update a host, as up
	CmdHostHeartbeat                         // HostHeartbeat: a host is alive
	CmdSetHostState                          // SetHostState: mark hosts up or down
	CmdSetVar                                // Var: set a cluster variable
	CmdDeleteVar                             // NameRef (key): delete a variable
	CmdPutApp                                // App: create or replace an app
	CmdDeleteApp                             // NameRef (app name): delete an app
	CmdPutService                            // Service: create or replace a service
	CmdDeleteService                         // NameRef ("app/name"): delete a service
	CmdPutTask                               // Task: create or replace a task
	CmdDeleteTask                            // NameRef (task ID): delete a task
	CmdPutVolume                             // Volume: create or replace a volume
	CmdDeleteVolume                          // NameRef (volume name): delete a volume
	CmdPutNetwork                            // Network: create or replace a network
	CmdDeleteNetwork                         // NameRef (network name): delete a network
	CmdPutLease                              // IPLease: reserve an address
	CmdDeleteLease                           // NameRef ("network/addr"): release it
	CmdPutMove                               // Move: record a move's progress
	CmdDeleteMove                            // NameRef (move ID): forget a move
	CmdBatch                                 // Batch: several commands, all or nothing
	CmdDeleteHost                            // NameRef (host name): forget a host
	CmdCheck                                 // Check: refuse (a batch) unless the state is as expected
	CmdSetHostDrain                          // SetHostDrain: a host takes new tasks or not
	CmdSetSecurity                           // Security: the CA and the join tokens, sealed
)

// commandNames names each command type for logs and panics.
var commandNames = map[CommandType]string{
	CmdInitCluster:    "init-cluster",
	CmdRegisterServer: "register-server",
	CmdRemoveServer:   "remove-server",
	CmdRegisterHost:   "register-host",
	CmdHostHeartbeat:  "host-heartbeat",
	CmdSetHostState:   "set-host-state",
	CmdSetVar:         "set-var",
	CmdDeleteVar:      "delete-var",
	CmdPutApp:         "put-app",
	CmdDeleteApp:      "delete-app",
	CmdPutService:     "put-service",
	CmdDeleteService:  "delete-service",
	CmdPutTask:        "put-task",
	CmdDeleteTask:     "delete-task",
	CmdPutVolume:      "put-volume",
	CmdDeleteVolume:   "delete-volume",
	CmdPutNetwork:     "put-network",
	CmdDeleteNetwork:  "delete-network",
	CmdPutLease:       "put-lease",
	CmdDeleteLease:    "delete-lease",
	CmdPutMove:        "put-move",
	CmdDeleteMove:     "delete-move",
	CmdBatch:          "batch",
	CmdDeleteHost:     "delete-host",
	CmdCheck:          "check",
	CmdSetHostDrain:   "set-host-drain",
	CmdSetSecurity:    "set-security",
}

// String names the command type for logs and errors; an unknown type reads
// as "unknown(N)".
func (t CommandType) String() string {
	if name, ok := commandNames[t]; ok {
		return name
	}
	return fmt.Sprintf("unknown(%d)", uint8(t))
}

// InitCluster is the payload of CmdInitCluster: it fixes the cluster's ID
// once, so that managers of different clusters cannot be joined by mistake.
type InitCluster struct {
	ClusterID string `json:"cluster_id"`
}

// Security is the payload of CmdSetSecurity: the cluster's CA and join
// tokens. The CA's key and the tokens are sealed (pki.SealBytes) with a key
// that only the managers hold, outside the store, so that the Raft log,
// its snapshots and their backups give neither away.
type Security struct {
	CACert      []byte            `json:"ca_cert"`       // PEM
	SealedCAKey []byte            `json:"sealed_ca_key"` // sealed DER
	LeafTTL     time.Duration     `json:"leaf_ttl"`      // of the certificates it signs
	Tokens      map[string][]byte `json:"tokens"`        // role -> sealed token text
}

// NameRef is the payload of every delete or remove command: the key of the
// object (a name, an ID, "app/name" for a service, "network/addr" for a lease).
type NameRef struct {
	Name string `json:"name"`
}

// HostHeartbeat is the payload of CmdHostHeartbeat: an agent saying it is
// alive, with its containers when they changed since its last report.
type HostHeartbeat struct {
	Name              string      `json:"name"`
	At                time.Time   `json:"at"`
	Containers        []Container `json:"containers"`
	ContainersChanged bool        `json:"containers_changed"`
	// Usage, if sampled, replaces the host's (no event: it is for display).
	Usage *HostUsage `json:"usage,omitempty"`
}

// SetHostState is the payload of CmdSetHostState: the leader marking hosts up
// or down, several at once.
type SetHostState struct {
	Names []string  `json:"names"`
	State HostState `json:"state"`
}

// SetHostDrain is the payload of CmdSetHostDrain: Draining hosts take no
// new tasks (clusterctl drain), the others do (clusterctl activate).
type SetHostDrain struct {
	Name     string `json:"name"`
	Draining bool   `json:"draining"`
}

// Check is the payload of CmdCheck: preconditions that make the batch it
// opens all-or-nothing against concurrent changes. The leader plans from a
// view, then commits [Check, puts...]: if anything the plan relied on
// changed meanwhile, the batch is refused with ErrConflict and the leader
// plans again (optimistic concurrency, as Nomad's plan applier).
type Check struct {
	// Tasks maps task IDs to the ModifyIndex they must still have; 0 means
	// the task must not exist.
	Tasks map[string]uint64 `json:"tasks,omitempty"`
	// Services maps "app/name" to the ModifyIndex the service must have;
	// 0 means it must not exist.
	Services map[string]uint64 `json:"services,omitempty"`
	// HostsUp must all exist and be up.
	HostsUp []string `json:"hosts_up,omitempty"`
	// Volumes maps volume names to the ModifyIndex they must still have;
	// 0 means the volume must not exist. Racing attaches read the same
	// index: exactly one commits.
	Volumes map[string]uint64 `json:"volumes,omitempty"`
}

// Batch is the payload of CmdBatch: several encoded commands (each from
// Encode) applied in order in one log entry, all or nothing.
type Batch struct {
	Commands [][]byte `json:"commands"`
}

// Command is a decoded log entry: its type and its still-encoded payload.
type Command struct {
	Type    CommandType
	Payload json.RawMessage
}

// Encode returns the bytes of a log entry for raft.Apply: the type byte
// followed by payload as JSON.
func Encode(t CommandType, payload any) ([]byte, error) {
	body, err := json.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("encode %s command: %w", t, err)
	}
	out := make([]byte, 0, 1+len(body))
	out = append(out, byte(t))
	return append(out, body...), nil
}

// EncodeBatch returns the bytes of one log entry that applies the given
// encoded commands in order, all or nothing.
func EncodeBatch(commands ...[]byte) ([]byte, error) {
	return Encode(CmdBatch, Batch{Commands: commands})
}

// Decode splits a log entry into its type and payload. It does not check that
// the type is known or that the payload fits it: Apply does.
func Decode(data []byte) (Command, error) {
	if len(data) == 0 {
		return Command{}, errors.New("decode command: empty log entry")
	}
	return Command{Type: CommandType(data[0]), Payload: json.RawMessage(data[1:])}, nil
}
