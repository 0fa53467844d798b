package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// Event types of the fixed (non put/delete) commands, for watchers to switch
// on.
const (
	EventClusterInit      = "cluster.init"      // the cluster ID was set
	EventServerRegistered = "server.registered" // a manager was added or changed
	EventServerRemoved    = "server.removed"    // a manager was removed
	EventHostRegistered   = "host.registered"   // a host (re-)registered
	EventHostHeartbeat    = "host.heartbeat"    // a heartbeat changed the containers
	EventHostState        = "host.state"        // up/down changed (also by a heartbeat)
	EventHostDeleted      = "host.deleted"      // a host was deleted
	EventHostDrain        = "host.drain"        // draining or active again
	EventVarSet           = "var.set"           // a variable was set
	EventVarDeleted       = "var.deleted"       // a variable was deleted
	EventSecurity         = "cluster.security"  // the CA or a join token changed
)

// dispatchTable maps every command type to its handler.
func (s *Store) dispatchTable() map[CommandType]handler {
	return map[CommandType]handler{
		CmdInitCluster:    typed(applyInitCluster),
		CmdSetSecurity:    typed(applySetSecurity),
		CmdRegisterServer: typed(applyRegisterServer),
		CmdRemoveServer:   typed(applyRemoveServer),
		CmdRegisterHost:   typed(applyRegisterHost),
		CmdSetHostDrain:   typed(applySetHostDrain),
		CmdHostHeartbeat:  typed(applyHeartbeat),
		CmdSetHostState:   typed(applySetHostState),
		CmdDeleteHost:     deleteHandler(hostKind),
		CmdSetVar:         typed(applySetVar),
		CmdDeleteVar:      deleteHandler(varKind),
		CmdPutApp:         putHandler(appKind),
		CmdDeleteApp:      deleteHandler(appKind),
		CmdPutService:     putHandler(serviceKind),
		CmdDeleteService:  deleteHandler(serviceKind),
		CmdPutTask:        putHandler(taskKind),
		CmdDeleteTask:     deleteHandler(taskKind),
		CmdPutVolume:      putHandler(volumeKind),
		CmdDeleteVolume:   deleteHandler(volumeKind),
		CmdPutNetwork:     putHandler(networkKind),
		CmdDeleteNetwork:  deleteHandler(networkKind),
		CmdPutLease:       putHandler(leaseKind),
		CmdDeleteLease:    deleteHandler(leaseKind),
		CmdPutMove:        putHandler(moveKind),
		CmdDeleteMove:     deleteHandler(moveKind),
		CmdBatch:          s.batchHandler(),
		CmdCheck:          typed(applyCheck),
	}
}

// typed adapts a handler of a decoded payload P to a handler; a payload that
// does not decode is fatal.
func typed[P any](fn func(txn *tx, e entry, p *P) ([]Event, error)) handler {
	return func(txn *tx, e entry, payload json.RawMessage) ([]Event, error) {
		p, err := decodePayload[P](payload)
		if err != nil {
			return nil, err
		}
		return fn(txn, e, p)
	}
}

// decodePayload decodes a JSON payload; failure is a fatalError.
func decodePayload[P any](payload json.RawMessage) (*P, error) {
	var p P
	if err := json.Unmarshal(payload, &p); err != nil {
		return nil, &fatalError{fmt.Errorf("decode %T payload: %w", p, err)}
	}
	return &p, nil
}

// newEvent returns an event about obj (stamped with index and time later).
// obj is encoded when a watcher reads the event (see Store.Events), not
// here: every replica applies every entry, few events are ever read, and
// encoding each one was a tenth of the cost of applying a large batch.
// obj must not change afterwards, which holds because the store never
// modifies an object it stored or a payload it applied.
func newEvent(typ, key string, obj any) Event {
	return Event{Type: typ, Key: key, obj: obj}
}

// oneEvent returns a single-event list about obj, with a nil error so
// handlers can return it directly.
func oneEvent(typ, key string, obj any) ([]Event, error) {
	return []Event{newEvent(typ, key, obj)}, nil
}

// insert stores obj in table, wrapping the error.
func insert(txn *tx, table, key string, obj any) error {
	if err := txn.Insert(table, obj); err != nil {
		return fmt.Errorf("insert %s %q: %w", table, key, err)
	}
	return nil
}

// lookup returns the object of table with the given id index args, or nil.
func lookup[T any](txn *tx, table string, args ...any) (*T, error) {
	raw, err := txn.First(table, indexID, args...)
	if err != nil {
		return nil, fmt.Errorf("look up %s %v: %w", table, args, err)
	}
	if raw == nil {
		return nil, nil
	}
	return raw.(*T), nil
}

// applyInitCluster sets the cluster ID once; the same ID again is a no-op.
func applyInitCluster(txn *tx, _ entry, p *InitCluster) ([]Event, error) {
	if p.ClusterID == "" {
		return nil, fmt.Errorf("init cluster: empty cluster id: %w", ErrInvalid)
	}
	m := readMeta(txn.Txn)
	switch m.ClusterID {
	case p.ClusterID:
		return nil, nil
	case "":
	default:
		return nil, fmt.Errorf("init cluster %q: cluster id already %q: %w", p.ClusterID, m.ClusterID, ErrConflict)
	}
	m.ClusterID = p.ClusterID
	if err := writeMeta(txn.Txn, m); err != nil {
		return nil, err
	}
	return oneEvent(EventClusterInit, p.ClusterID, p)
}

// applySetSecurity records the CA and the tokens. The CA certificate is
// set once: a new one would orphan every certificate issued. The event
// carries no secret, sealed or not.
func applySetSecurity(txn *tx, _ entry, p *Security) ([]Event, error) {
	if len(p.CACert) == 0 || len(p.SealedCAKey) == 0 {
		return nil, fmt.Errorf("set security: no CA: %w", ErrInvalid)
	}
	m := readMeta(txn.Txn)
	if m.Security != nil && !bytes.Equal(m.Security.CACert, p.CACert) {
		return nil, fmt.Errorf("set security: the cluster has another CA: %w", ErrConflict)
	}
	m.Security = p
	if err := writeMeta(txn.Txn, m); err != nil {
		return nil, err
	}
	return oneEvent(EventSecurity, "tokens", nil)
}

// applyRegisterServer upserts a manager; a name may not change address.
func applyRegisterServer(txn *tx, _ entry, p *Server) ([]Event, error) {
	if p.Name == "" || p.RaftAddr == "" {
		return nil, fmt.Errorf("register server: name and raft address required: %w", ErrInvalid)
	}
	old, err := lookup[Server](txn, tableServers, p.Name)
	if err != nil {
		return nil, err
	}
	if old != nil && old.RaftAddr != p.RaftAddr {
		return nil, fmt.Errorf("server name %s already used by %s: %w", p.Name, old.RaftAddr, ErrConflict)
	}
	if old != nil && *old == *p {
		return nil, nil
	}
	if err := insert(txn, tableServers, p.Name, p); err != nil {
		return nil, err
	}
	return oneEvent(EventServerRegistered, p.Name, p)
}

// applyRemoveServer deletes a manager; an unknown name is a no-op.
func applyRemoveServer(txn *tx, _ entry, p *NameRef) ([]Event, error) {
	old, err := lookup[Server](txn, tableServers, p.Name)
	if err != nil || old == nil {
		return nil, err
	}
	if err := txn.Delete(tableServers, old); err != nil {
		return nil, fmt.Errorf("remove server %s: %w", p.Name, err)
	}
	return oneEvent(EventServerRemoved, p.Name, old)
}

// applyRegisterHost upserts a host as up, keeping the first registration
// time. Missing times default to the entry's append time.
func applyRegisterHost(txn *tx, e entry, p *Host) ([]Event, error) {
	if p.Name == "" {
		return nil, fmt.Errorf("register host: name required: %w", ErrInvalid)
	}
	old, err := lookup[Host](txn, tableHosts, p.Name)
	if err != nil {
		return nil, err
	}
	h := cloneHost(*p)
	h.State = HostUp
	h.Registered = firstSet(utc(p.Registered), e.at)
	if old != nil && !old.Registered.IsZero() {
		h.Registered = old.Registered
	}
	if old != nil {
		h.Draining = old.Draining // set only by CmdSetHostDrain
	}
	h.LastHeartbeat = firstSet(utc(p.LastHeartbeat), e.at)
	h.ModifyIndex = e.index
	if err := insert(txn, tableHosts, h.Name, &h); err != nil {
		return nil, err
	}
	return oneEvent(EventHostRegistered, h.Name, &h)
}

// applyHeartbeat records that a host is alive; it bumps ModifyIndex and
// emits an event only when the state or the containers change.
func applyHeartbeat(txn *tx, e entry, p *HostHeartbeat) ([]Event, error) {
	old, err := lookup[Host](txn, tableHosts, p.Name)
	if err != nil {
		return nil, err
	}
	if old == nil {
		return nil, fmt.Errorf("heartbeat of unknown host %q: %w", p.Name, ErrNotFound)
	}
	h := cloneHost(*old)
	h.LastHeartbeat = firstSet(utc(p.At), e.at, h.LastHeartbeat)
	if p.Usage != nil {
		u := *p.Usage
		u.At = utc(u.At)
		h.Usage = &u
	}
	evType := ""
	if p.ContainersChanged && !containersEqual(h.Containers, p.Containers) {
		h.Containers = cloneContainers(p.Containers)
		evType = EventHostHeartbeat
	}
	if h.State != HostUp {
		h.State = HostUp
		evType = EventHostState
	}
	if evType != "" {
		h.ModifyIndex = e.index
	}
	if err := insert(txn, tableHosts, h.Name, &h); err != nil || evType == "" {
		return nil, err
	}
	return oneEvent(evType, h.Name, &h)
}

// applySetHostState sets the state of several hosts; all must exist.
func applySetHostState(txn *tx, e entry, p *SetHostState) ([]Event, error) {
	if p.State != HostUp && p.State != HostDown {
		return nil, fmt.Errorf("set host state: unknown state %q: %w", p.State, ErrInvalid)
	}
	var events []Event
	for _, name := range p.Names {
		ev, err := setHostState(txn, e, name, p.State)
		if err != nil {
			return nil, err
		}
		events = append(events, ev...)
	}
	return events, nil
}

// applySetHostDrain marks a host draining or active.
func applySetHostDrain(txn *tx, e entry, p *SetHostDrain) ([]Event, error) {
	old, err := lookup[Host](txn, tableHosts, p.Name)
	if err != nil {
		return nil, err
	}
	if old == nil {
		return nil, Refuse(ErrNotFound, "no host %q in the cluster", p.Name)
	}
	if old.Draining == p.Draining {
		return nil, nil
	}
	h := cloneHost(*old)
	h.Draining = p.Draining
	h.ModifyIndex = e.index
	if err := insert(txn, tableHosts, h.Name, &h); err != nil {
		return nil, err
	}
	return oneEvent(EventHostDrain, h.Name, &h)
}

// setHostState sets the state of one host, with an event if it changed.
func setHostState(txn *tx, e entry, name string, state HostState) ([]Event, error) {
	old, err := lookup[Host](txn, tableHosts, name)
	if err != nil {
		return nil, err
	}
	if old == nil {
		return nil, fmt.Errorf("set state of unknown host %q: %w", name, ErrNotFound)
	}
	if old.State == state {
		return nil, nil
	}
	h := cloneHost(*old)
	h.State = state
	h.ModifyIndex = e.index
	if err := insert(txn, tableHosts, name, &h); err != nil {
		return nil, err
	}
	return oneEvent(EventHostState, name, &h)
}

// applySetVar sets a cluster variable.
func applySetVar(txn *tx, e entry, p *Var) ([]Event, error) {
	if p.Key == "" {
		return nil, fmt.Errorf("set var: empty key: %w", ErrInvalid)
	}
	p.ModifyIndex = e.index
	if err := insert(txn, tableVars, p.Key, p); err != nil {
		return nil, err
	}
	return oneEvent(EventVarSet, p.Key, p)
}

// applyBatch applies encoded commands in order in the entry's transaction;
// the first refusal refuses the whole batch. Batches do not nest.
func (s *Store) applyBatch(txn *tx, e entry, p *Batch) ([]Event, error) {
	var events []Event
	for i, raw := range p.Commands {
		cmd, err := Decode(raw)
		if err != nil {
			return nil, &fatalError{fmt.Errorf("batch command %d: %w", i, err)}
		}
		if cmd.Type == CmdBatch {
			return nil, fmt.Errorf("batch command %d: nested batch: %w", i, ErrInvalid)
		}
		evs, err := s.dispatch(txn, e, cmd)
		if err != nil {
			return nil, fmt.Errorf("batch command %d (%s): %w", i, cmd.Type, err)
		}
		events = append(events, evs...)
	}
	return events, nil
}

// applyCheck refuses with ErrConflict unless every precondition holds; it
// changes nothing.
func applyCheck(txn *tx, _ entry, p *Check) ([]Event, error) {
	for id, want := range p.Tasks {
		t := txn.tasks.get(id)
		if err := expectIndex("task "+id, t, want, func(t *Task) uint64 { return t.ModifyIndex }); err != nil {
			return nil, err
		}
	}
	for key, want := range p.Services {
		args, err := twoArgs(key)
		if err != nil {
			return nil, fmt.Errorf("check service: %w", err)
		}
		s, err := lookup[Service](txn, tableServices, args...)
		if err != nil {
			return nil, err
		}
		if err := expectIndex("service "+key, s, want, func(s *Service) uint64 { return s.ModifyIndex }); err != nil {
			return nil, err
		}
	}
	for name, want := range p.Volumes {
		vol, err := lookup[Volume](txn, tableVolumes, name)
		if err != nil {
			return nil, err
		}
		if err := expectIndex("volume "+name, vol, want, func(v *Volume) uint64 { return v.ModifyIndex }); err != nil {
			return nil, err
		}
	}
	for _, name := range p.HostsUp {
		h, err := lookup[Host](txn, tableHosts, name)
		if err != nil {
			return nil, err
		}
		if h == nil || h.State != HostUp {
			return nil, fmt.Errorf("check: host %s is not up: %w", name, ErrConflict)
		}
	}
	return nil, nil
}

// expectIndex checks that obj (nil if absent) has the ModifyIndex want, 0
// meaning absent.
func expectIndex[T any](what string, obj *T, want uint64, index func(*T) uint64) error {
	switch {
	case obj == nil && want == 0:
		return nil
	case obj == nil:
		return fmt.Errorf("check: %s is gone: %w", what, ErrConflict)
	case index(obj) != want:
		return fmt.Errorf("check: %s changed (index %d, expected %d): %w", what, index(obj), want, ErrConflict)
	}
	return nil
}

// firstSet returns the first non-zero time of ts, or the zero time.
func firstSet(ts ...time.Time) time.Time {
	i := slices.IndexFunc(ts, func(t time.Time) bool { return !t.IsZero() })
	if i < 0 {
		return time.Time{}
	}
	return ts[i]
}
