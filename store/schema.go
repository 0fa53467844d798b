package store

import (
	"fmt"

	memdb "github.com/hashicorp/go-memdb"
)

// Table names of the memdb schema; also the table names in snapshots.
const (
	tableMeta     = "meta"
	tableServers  = "servers"
	tableHosts    = "hosts"
	tableVars     = "vars"
	tableApps     = "apps"
	tableServices = "services"
	tableTasks    = "tasks" // in snapshots only: tasks live in a taskTable
	tableVolumes  = "volumes"
	tableNetworks = "networks"
	tableLeases   = "leases"
	tableMoves    = "moves"
)

// Index names used across tables.
const (
	indexID      = "id"
	indexIDPfx   = "id_prefix" // memdb's prefix form of the id index
	indexApp     = "app"
	indexNetwork = "network"
)

// metaKey is the ID of the single row of the meta table.
const metaKey = "state"

// metaRow holds the cluster-wide scalars: the cluster ID and the last
// applied raft index, kept in memdb so a View sees them consistent with the
// data.
type metaRow struct {
	ID           string
	ClusterID    string
	AppliedIndex uint64
	Security     *Security
}

// field indexes a string field.
func field(name string) memdb.Indexer { return &memdb.StringFieldIndex{Field: name} }

// idIndex is the unique primary index of a table.
func idIndex(indexer memdb.Indexer) *memdb.IndexSchema {
	return &memdb.IndexSchema{Name: indexID, Unique: true, Indexer: indexer}
}

// secondary is a non-unique index on one string field that may be empty.
func secondary(name, fieldName string) *memdb.IndexSchema {
	return &memdb.IndexSchema{Name: name, AllowMissing: true, Indexer: field(fieldName)}
}

// compound indexes two string fields together, for keys like App/Name.
func compound(a, b string) memdb.Indexer {
	return &memdb.CompoundIndex{Indexes: []memdb.Indexer{field(a), field(b)}}
}

// table builds a table schema from its indexes.
func table(name string, indexes ...*memdb.IndexSchema) *memdb.TableSchema {
	ts := &memdb.TableSchema{Name: name, Indexes: map[string]*memdb.IndexSchema{}}
	for _, ix := range indexes {
		ts.Indexes[ix.Name] = ix
	}
	return ts
}

// schema returns the memdb schema: one table per kind of object.
func schema() *memdb.DBSchema {
	tables := []*memdb.TableSchema{
		table(tableMeta, idIndex(field("ID"))),
		table(tableServers, idIndex(field("Name"))),
		table(tableHosts, idIndex(field("Name"))),
		table(tableVars, idIndex(field("Key"))),
		table(tableApps, idIndex(field("Name"))),
		table(tableServices, idIndex(compound("App", "Name")), secondary(indexApp, "App")),
		table(tableVolumes, idIndex(field("Name"))),
		table(tableNetworks, idIndex(field("Name"))),
		table(tableLeases, idIndex(compound("Network", "Addr")), secondary(indexNetwork, "Network")),
		table(tableMoves, idIndex(field("ID"))),
	}
	s := &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{}}
	for _, t := range tables {
		s.Tables[t.Name] = t
	}
	return s
}

// newDB returns an empty database with the store's schema.
func newDB() (*memdb.MemDB, error) {
	db, err := memdb.NewMemDB(schema())
	if err != nil {
		return nil, fmt.Errorf("create state database: %w", err)
	}
	return db, nil
}

// readMeta returns the meta row as seen by txn (zero if never written).
func readMeta(txn *memdb.Txn) metaRow {
	raw, err := txn.First(tableMeta, indexID, metaKey)
	if err != nil {
		panic(fmt.Sprintf("store: read meta: %v", err)) // schema bug
	}
	if raw == nil {
		return metaRow{ID: metaKey}
	}
	return *raw.(*metaRow)
}

// writeMeta stores the meta row in txn.
func writeMeta(txn *memdb.Txn, m metaRow) error {
	m.ID = metaKey
	if err := txn.Insert(tableMeta, &m); err != nil {
		return fmt.Errorf("write meta: %w", err)
	}
	return nil
}
