package store

import (
	"fmt"

	"iter"
)

// View is a consistent, point-in-time, read-only view of the state: every
// read through one View sees the same applied index. Views are cheap; take a
// new one to see later changes. All returned objects are copies the caller
// may modify. Lists are sorted by key.
type View struct {
	txn *tx
}

// View returns a read-only view of the current state.
func (s *Store) View() *View {
	return &View{txn: s.readTxn()}
}

// Index returns the raft index of the last entry applied in this view.
func (v *View) Index() uint64 { return readMeta(v.txn.Txn).AppliedIndex }

// ClusterID returns the cluster's ID, empty before CmdInitCluster.
func (v *View) ClusterID() string { return readMeta(v.txn.Txn).ClusterID }

// Security is the cluster's CA and sealed tokens, once the bootstrapping
// manager recorded them.
func (v *View) Security() (Security, bool) {
	s := readMeta(v.txn.Txn).Security
	if s == nil {
		return Security{}, false
	}
	return *s, true
}

// Servers returns the managers, by name.
func (v *View) Servers() []Server { return list(v, tableServers, indexID, same[Server]) }

// Server returns the manager of that name.
func (v *View) Server(name string) (Server, bool) { return get(v, tableServers, same[Server], name) }

// Hosts returns the hosts, by name.
func (v *View) Hosts() []Host { return list(v, tableHosts, indexID, cloneHost) }

// Host returns the host of that name.
func (v *View) Host(name string) (Host, bool) { return get(v, tableHosts, cloneHost, name) }

// Var returns the cluster variable of that key.
func (v *View) Var(key string) (Var, bool) { return get(v, tableVars, same[Var], key) }

// Vars returns the cluster variables whose key starts with prefix ("" for
// all), by key.
func (v *View) Vars(prefix string) []Var {
	return list(v, tableVars, indexIDPfx, same[Var], prefix)
}

// Apps returns the apps, by name.
func (v *View) Apps() []App { return list(v, tableApps, indexID, cloneApp) }

// App returns the app of that name.
func (v *View) App(name string) (App, bool) { return get(v, tableApps, cloneApp, name) }

// Services returns the services of an app ("" for all apps), by app and name.
func (v *View) Services(app string) []Service {
	if app == "" {
		return list(v, tableServices, indexID, cloneService)
	}
	return list(v, tableServices, indexApp, cloneService, app)
}

// Service returns one service of an app.
func (v *View) Service(app, name string) (Service, bool) {
	return get(v, tableServices, cloneService, app, name)
}

// Tasks returns the tasks of an app ("" for all apps), by ID.
func (v *View) Tasks(app string) []Task {
	if app == "" {
		return cloneTasks(v.txn.tasks.all())
	}
	return cloneTasks(v.txn.tasks.ofApp(app))
}

// Task returns the task of that ID.
func (v *View) Task(id string) (Task, bool) {
	t := v.txn.tasks.get(id)
	if t == nil {
		return Task{}, false
	}
	return cloneTask(*t), true
}

// Volumes returns the volumes, by name.
func (v *View) Volumes() []Volume { return list(v, tableVolumes, indexID, cloneVolume) }

// Volume returns the volume of that name.
func (v *View) Volume(name string) (Volume, bool) { return get(v, tableVolumes, cloneVolume, name) }

// Networks returns the networks, by name.
func (v *View) Networks() []Network { return list(v, tableNetworks, indexID, cloneNetwork) }

// Network returns the network of that name.
func (v *View) Network(name string) (Network, bool) {
	return get(v, tableNetworks, cloneNetwork, name)
}

// Leases returns the IP leases of a network ("" for all networks), by
// network and address (as strings).
func (v *View) Leases(network string) []IPLease {
	if network == "" {
		return list(v, tableLeases, indexID, same[IPLease])
	}
	return list(v, tableLeases, indexNetwork, same[IPLease], network)
}

// Lease returns the lease of an address of a network.
func (v *View) Lease(network, addr string) (IPLease, bool) {
	return get(v, tableLeases, same[IPLease], network, addr)
}

// Moves returns the moves, by ID.
func (v *View) Moves() []Move { return list(v, tableMoves, indexID, cloneMove) }

// Move returns the move of that ID.
func (v *View) Move(id string) (Move, bool) { return get(v, tableMoves, cloneMove, id) }

// list returns copies of the objects of a table matching index args.
func list[T any](v *View, table, index string, clone func(T) T, args ...any) []T {
	it, err := v.txn.Get(table, index, args...)
	if err != nil {
		panic(fmt.Sprintf("store: list %s by %s: %v", table, index, err)) // schema bug
	}
	out := []T{}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, clone(*raw.(*T)))
	}
	return out
}

// get returns a copy of the object of a table with the given id args.
func get[T any](v *View, table string, clone func(T) T, args ...any) (T, bool) {
	obj, err := lookup[T](v.txn, table, args...)
	if err != nil {
		panic(fmt.Sprintf("store: %v", err)) // schema bug
	}
	if obj == nil {
		var zero T
		return zero, false
	}
	return clone(*obj), true
}

// TaskCount returns how many tasks there are, without copying them, so
// a caller checking a large store's size does not pay for a list.
func (v *View) TaskCount() int { return v.txn.tasks.len() }

// cloneTasks returns copies of the tasks of seq.
func cloneTasks(seq iter.Seq[*Task]) []Task {
	out := []Task{}
	for t := range seq {
		out = append(out, cloneTask(*t))
	}
	return out
}
