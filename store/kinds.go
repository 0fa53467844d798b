package store

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
)

// kind describes a table whose objects are put and deleted whole, so one
// generic put handler and one delete handler serve them all.
type kind[T any] struct {
	name string                          // event prefix: "<name>.put", "<name>.deleted"
	rows rows[T]                         // where the objects live
	key  func(*T) string                 // the object's key, as in NameRef
	args func(key string) ([]any, error) // NameRef key to id index args
	// check validates and normalizes an object before it is stored; it may
	// read txn to refuse a clash with other objects.
	check    func(txn *tx, obj *T) error
	setIndex func(obj *T, index uint64)
	// intern, if set, shares the object's repeated strings (see interner).
	intern func(in *interner, obj *T)
}

// putHandler returns the handler that upserts objects of k.
func putHandler[T any](k kind[T]) handler {
	return typed(func(txn *tx, e entry, obj *T) ([]Event, error) {
		if err := k.check(txn, obj); err != nil {
			return nil, fmt.Errorf("put %s: %w", k.name, err)
		}
		k.setIndex(obj, e.index)
		if k.intern != nil {
			k.intern(e.strings, obj)
		}
		key := k.key(obj)
		if err := k.rows.insert(txn, key, obj); err != nil {
			return nil, err
		}
		return oneEvent(k.name+".put", key, obj)
	})
}

// deleteHandler returns the handler that deletes objects of k by key; a
// missing object is a no-op.
func deleteHandler[T any](k kind[T]) handler {
	return typed(func(txn *tx, _ entry, ref *NameRef) ([]Event, error) {
		args, err := k.args(ref.Name)
		if err != nil {
			return nil, fmt.Errorf("delete %s: %w", k.name, err)
		}
		old, err := k.rows.lookup(txn, args)
		if err != nil || old == nil {
			return nil, err
		}
		if err := k.rows.remove(txn, old); err != nil {
			return nil, fmt.Errorf("delete %s %q: %w", k.name, ref.Name, err)
		}
		return oneEvent(k.name+".deleted", ref.Name, old)
	})
}

// rows is where the objects of a kind live: a memdb table or the task
// table.
type rows[T any] interface {
	lookup(txn *tx, args []any) (*T, error)
	insert(txn *tx, key string, obj *T) error
	remove(txn *tx, obj *T) error
}

// memdbRows keeps objects in a memdb table.
type memdbRows[T any] struct{ table string }

func (r memdbRows[T]) lookup(txn *tx, args []any) (*T, error) {
	return lookup[T](txn, r.table, args...)
}

func (r memdbRows[T]) insert(txn *tx, key string, obj *T) error {
	return insert(txn, r.table, key, obj)
}

func (r memdbRows[T]) remove(txn *tx, obj *T) error { return txn.Delete(r.table, obj) }

// taskRows keeps tasks in the transaction's task table.
type taskRows struct{}

func (taskRows) lookup(txn *tx, args []any) (*Task, error) {
	return txn.tasks.get(args[0].(string)), nil
}

func (taskRows) insert(txn *tx, _ string, t *Task) error {
	txn.tasks.put(t)
	return nil
}

func (taskRows) remove(txn *tx, t *Task) error {
	txn.tasks.delete(t)
	return nil
}

// Event types of the put/delete commands, for watchers to switch on: the
// object was created or replaced (".put") or deleted (".deleted").
const (
	EventAppPut         = "app.put"         // an app was put
	EventAppDeleted     = "app.deleted"     // an app was deleted
	EventServicePut     = "service.put"     // a service was put
	EventServiceDeleted = "service.deleted" // a service was deleted
	EventTaskPut        = "task.put"        // a task was put
	EventTaskDeleted    = "task.deleted"    // a task was deleted
	EventVolumePut      = "volume.put"      // a volume was put
	EventVolumeDeleted  = "volume.deleted"  // a volume was deleted
	EventNetworkPut     = "network.put"     // a network was put
	EventNetworkDeleted = "network.deleted" // a network was deleted
	EventLeasePut       = "lease.put"       // an IP lease was put
	EventLeaseDeleted   = "lease.deleted"   // an IP lease was deleted
	EventMovePut        = "move.put"        // a move was put
	EventMoveDeleted    = "move.deleted"    // a move was deleted
)

// oneArg is the args of a table keyed by one string field.
func oneArg(key string) ([]any, error) { return []any{key}, nil }

// twoArgs splits an "a/b" key at its first slash for a compound index.
func twoArgs(key string) ([]any, error) {
	a, b, ok := strings.Cut(key, "/")
	if !ok || a == "" || b == "" {
		return nil, fmt.Errorf("key %q is not of the form a/b: %w", key, ErrInvalid)
	}
	return []any{a, b}, nil
}

// required refuses empty key fields.
func required(what string, values ...string) error {
	for _, v := range values {
		if v == "" {
			return fmt.Errorf("%s required: %w", what, ErrInvalid)
		}
	}
	return nil
}

// prefixName refuses names that are the first part of an "a/b" key and so
// may not hold a slash.
func prefixName(what, name string) error {
	if err := required(what, name); err != nil {
		return err
	}
	if strings.Contains(name, "/") {
		return fmt.Errorf("%s %q contains a slash: %w", what, name, ErrInvalid)
	}
	return nil
}

// hostKind serves host deletes only (hosts are put by register/heartbeat).
var hostKind = kind[Host]{
	name: "host", rows: memdbRows[Host]{tableHosts}, args: oneArg,
	key: func(h *Host) string { return h.Name },
}

// varKind serves var deletes only (vars are put by applySetVar).
var varKind = kind[Var]{
	name: "var", rows: memdbRows[Var]{tableVars}, args: oneArg,
	key: func(v *Var) string { return v.Key },
}

var appKind = kind[App]{
	name: "app", rows: memdbRows[App]{tableApps}, args: oneArg,
	key: func(a *App) string { return a.Name },
	check: func(_ *tx, a *App) error {
		a.Created = utc(a.Created)
		return prefixName("app name", a.Name)
	},
	setIndex: func(a *App, i uint64) { a.ModifyIndex = i },
}

var serviceKind = kind[Service]{
	name: "service", rows: memdbRows[Service]{tableServices}, args: twoArgs,
	key: func(s *Service) string { return s.App + "/" + s.Name },
	check: func(_ *tx, s *Service) error {
		if err := prefixName("service app", s.App); err != nil {
			return err
		}
		return required("service name", s.Name)
	},
	setIndex: func(s *Service, i uint64) { s.ModifyIndex = i },
}

var taskKind = kind[Task]{
	name: "task", rows: taskRows{}, args: oneArg,
	key:      func(t *Task) string { return t.ID },
	check:    func(_ *tx, t *Task) error { return required("task id and app", t.ID, t.App) },
	setIndex: func(t *Task, i uint64) { t.ModifyIndex = i },
	intern:   internTask,
}

var volumeKind = kind[Volume]{
	name: "volume", rows: memdbRows[Volume]{tableVolumes}, args: oneArg,
	key:      func(v *Volume) string { return v.Name },
	check:    checkVolume,
	setIndex: func(v *Volume, i uint64) { v.ModifyIndex = i },
}

var networkKind = kind[Network]{
	name: "network", rows: memdbRows[Network]{tableNetworks}, args: oneArg,
	key:      func(n *Network) string { return n.Name },
	check:    checkNetwork,
	setIndex: func(n *Network, i uint64) { n.ModifyIndex = i },
}

var leaseKind = kind[IPLease]{
	name: "lease", rows: memdbRows[IPLease]{tableLeases}, args: twoArgs,
	key:      func(l *IPLease) string { return l.Network + "/" + l.Addr },
	check:    checkLease,
	setIndex: func(l *IPLease, i uint64) { l.ModifyIndex = i },
}

var moveKind = kind[Move]{
	name: "move", rows: memdbRows[Move]{tableMoves}, args: oneArg,
	key:      func(m *Move) string { return m.ID },
	check:    checkMove,
	setIndex: func(m *Move, i uint64) { m.ModifyIndex = i },
}

// checkMove refuses a second active move of a task: a task moves to one
// place at a time.
func checkMove(txn *tx, m *Move) error {
	m.Started, m.Updated, m.Deadline = utc(m.Started), utc(m.Updated), utc(m.Deadline)
	m.Stopped, m.Verified, m.Finished = utc(m.Stopped), utc(m.Verified), utc(m.Finished)
	if err := required("move id", m.ID); err != nil {
		return err
	}
	if err := required("move task", m.TaskID); err != nil {
		return err
	}
	if !m.Active() {
		return nil
	}
	it, err := txn.Get(tableMoves, indexID)
	if err != nil {
		return fmt.Errorf("list moves: %w", err)
	}
	for o := it.Next(); o != nil; o = it.Next() {
		other := o.(*Move)
		if other.ID != m.ID && other.TaskID == m.TaskID && other.Active() {
			return Refuse(ErrConflict, "task %s is already moving (%s to %s, move %s)", m.TaskID, other.From, other.To, other.ID)
		}
	}
	return nil
}

// checkVolume refuses a put that would move a volume's lease generation
// backwards: the generation fences stale owners.
func checkVolume(txn *tx, v *Volume) error {
	if err := required("volume name", v.Name); err != nil {
		return err
	}
	v.Created = utc(v.Created)
	old, err := lookup[Volume](txn, tableVolumes, v.Name)
	if err != nil {
		return err
	}
	if old != nil && v.Generation < old.Generation {
		return fmt.Errorf("volume %s generation %d is older than current %d: %w",
			v.Name, v.Generation, old.Generation, ErrConflict)
	}
	return nil
}

// checkNetwork refuses a network whose VNI another network already uses
// (the two would share one VXLAN segment) or whose subnet overlaps
// another's (an address would belong to both): checked here, in the log's
// order, two racing creates cannot both win.
func checkNetwork(txn *tx, n *Network) error {
	if err := prefixName("network name", n.Name); err != nil {
		return err
	}
	n.Created = utc(n.Created)
	subnet, err := parseSubnet(n.Subnet)
	if err != nil {
		return fmt.Errorf("network %s: %w", n.Name, err)
	}
	it, err := txn.Get(tableNetworks, indexID)
	if err != nil {
		return fmt.Errorf("list networks: %w", err)
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		other := raw.(*Network)
		if other.Name == n.Name {
			continue
		}
		if n.VNI != 0 && other.VNI == n.VNI {
			return fmt.Errorf("network %s: vni %d already used by network %s: %w", n.Name, n.VNI, other.Name, ErrConflict)
		}
		if o, err := parseSubnet(other.Subnet); err == nil && subnet.IsValid() && o.IsValid() && o.Overlaps(subnet) {
			return fmt.Errorf("network %s: subnet %s overlaps %s of network %s: %w", n.Name, n.Subnet, other.Subnet, other.Name, ErrConflict)
		}
	}
	return nil
}

// parseSubnet reads a network's subnet; "" is none (the zero prefix).
func parseSubnet(s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, fmt.Errorf("subnet %q: %w", s, ErrInvalid)
	}
	return p.Masked(), nil
}

// checkLease refuses to hand a leased address to another task; to reassign
// an address, delete the lease first (both may go in one batch).
func checkLease(txn *tx, l *IPLease) error {
	if err := prefixName("lease network", l.Network); err != nil {
		return err
	}
	if err := required("lease address", l.Addr); err != nil {
		return err
	}
	old, err := lookup[IPLease](txn, tableLeases, l.Network, l.Addr)
	if err != nil {
		return err
	}
	if old != nil && old.TaskID != "" && l.TaskID != "" && old.TaskID != l.TaskID {
		return fmt.Errorf("address %s/%s is leased to task %s: %w", l.Network, l.Addr, old.TaskID, ErrConflict)
	}
	return nil
}

// decodeObject decodes a snapshot record's object of type T.
func decodeObject[T any](raw json.RawMessage) (any, error) {
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("decode %T: %w", v, err)
	}
	return &v, nil
}
