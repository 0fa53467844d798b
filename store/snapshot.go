package store

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"

	memdb "github.com/hashicorp/go-memdb"
	"github.com/hashicorp/raft"
)

// snapshotFormat is the version of the snapshot stream; Restore refuses
// streams of any other version.
const snapshotFormat = 1

// snapshotHeader opens a snapshot stream.
type snapshotHeader struct {
	Format    int       `json:"format"`
	Index     uint64    `json:"index"`
	ClusterID string    `json:"cluster_id"`
	Security  *Security `json:"security,omitempty"`
}

// snapshotRecord is one object of a table, or the closing record (End) that
// tells a complete stream from a cut one.
type snapshotRecord struct {
	Table  string          `json:"table,omitempty"`
	Object json.RawMessage `json:"object,omitempty"`
	End    bool            `json:"end,omitempty"`
	Count  int             `json:"count,omitempty"` // objects written, on End
}

// snapshotTable says how to stream one table; the order is the stream order.
type snapshotTable struct {
	name   string
	decode func(json.RawMessage) (any, error)
}

var snapshotTables = []snapshotTable{
	{tableServers, decodeObject[Server]},
	{tableHosts, decodeObject[Host]},
	{tableVars, decodeObject[Var]},
	{tableApps, decodeObject[App]},
	{tableServices, decodeObject[Service]},
	{tableTasks, decodeObject[Task]},
	{tableVolumes, decodeObject[Volume]},
	{tableNetworks, decodeObject[Network]},
	{tableLeases, decodeObject[IPLease]},
	{tableMoves, decodeObject[Move]},
}

// snapshot is a point-in-time copy of the state, written out by Persist.
type snapshot struct {
	db    *memdb.MemDB
	tasks *taskTable
}

// Snapshot returns a point-in-time snapshot of the state in O(1): later
// applies do not show in it.
func (s *Store) Snapshot() (raft.FSMSnapshot, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return &snapshot{db: s.db.Snapshot(), tasks: s.published}, nil
}

// Persist streams the snapshot to sink as JSON: a header, every object, an
// end record. On error it cancels the sink.
func (sn *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := sn.write(sink); err != nil {
		if cerr := sink.Cancel(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("cancel snapshot: %w", cerr))
		}
		return fmt.Errorf("persist snapshot: %w", err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("persist snapshot: close sink: %w", err)
	}
	return nil
}

// Release does nothing: a memdb snapshot holds no resources.
func (sn *snapshot) Release() {}

// write encodes the whole snapshot to w.
func (sn *snapshot) write(w io.Writer) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	txn := sn.db.Txn(false)
	m := readMeta(txn)
	hdr := snapshotHeader{Format: snapshotFormat, Index: m.AppliedIndex, ClusterID: m.ClusterID, Security: m.Security}
	if err := enc.Encode(hdr); err != nil {
		return fmt.Errorf("write header: %w", err)
	}
	count := 0
	for _, t := range snapshotTables {
		objects, err := sn.objects(txn, t.name)
		if err != nil {
			return err
		}
		n, err := writeTable(bw, t.name, objects)
		if err != nil {
			return err
		}
		count += n
	}
	if err := enc.Encode(snapshotRecord{End: true, Count: count}); err != nil {
		return fmt.Errorf("write end: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	return nil
}

// writeTable writes a record for every object of a table and returns how
// many.
//
// It writes each record's envelope itself: a json.Encoder given the
// record would scan the object's JSON again to compact it, though
// json.Marshal just wrote it compact: that scan made a snapshot of a
// large store three times slower. The bytes are the same as the encoder's.
func writeTable(bw *bufio.Writer, table string, objects iter.Seq[any]) (int, error) {
	name, err := json.Marshal(table)
	if err != nil {
		return 0, fmt.Errorf("encode table name %s: %w", table, err)
	}
	head := `{"table":` + string(name) + `,"object":`
	n := 0
	for obj := range objects {
		raw, err := json.Marshal(obj)
		if err != nil {
			return n, fmt.Errorf("encode %s object: %w", table, err)
		}
		bw.WriteString(head)
		bw.Write(raw)
		if _, err := bw.WriteString("}\n"); err != nil { // a bufio.Writer keeps its first error
			return n, fmt.Errorf("write %s object: %w", table, err)
		}
		n++
	}
	return n, nil
}

// objects returns the objects of a table in key order.
func (sn *snapshot) objects(txn *memdb.Txn, table string) (iter.Seq[any], error) {
	if table == tableTasks {
		return func(yield func(any) bool) {
			for t := range sn.tasks.all() {
				if !yield(t) {
					return
				}
			}
		}, nil
	}
	it, err := txn.Get(table, indexID)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", table, err)
	}
	return func(yield func(any) bool) {
		for obj := it.Next(); obj != nil && yield(obj); obj = it.Next() {
		}
	}, nil
}

// Restore replaces the whole state with a snapshot stream from Persist and
// closes rc. The new state is built aside and swapped in under the lock;
// watchers are then woken, and the event buffer restarts at the snapshot's
// index (Events with an older index return ErrEventsTruncated).
func (s *Store) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	db, tasks, hdr, err := readSnapshot(rc)
	if err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.db = db
	s.tasks, s.published = tasks, tasks.clone()
	s.applied = hdr.Index
	s.events.reset(hdr.Index)
	close(s.appliedCh)
	s.appliedCh = make(chan struct{})
	close(s.changed)
	s.changed = make(chan struct{})
	s.log.Info("restored snapshot", "index", hdr.Index, "cluster_id", hdr.ClusterID)
	return nil
}

// readSnapshot decodes a snapshot stream into a fresh database and task
// table.
func readSnapshot(r io.Reader) (*memdb.MemDB, *taskTable, snapshotHeader, error) {
	var hdr snapshotHeader
	dec := json.NewDecoder(bufio.NewReader(r))
	if err := dec.Decode(&hdr); err != nil {
		return nil, nil, hdr, fmt.Errorf("read header: %w", err)
	}
	if hdr.Format != snapshotFormat {
		return nil, nil, hdr, fmt.Errorf("snapshot format %d, want %d", hdr.Format, snapshotFormat)
	}
	db, err := newDB()
	if err != nil {
		return nil, nil, hdr, err
	}
	txn := &tx{Txn: db.Txn(true), tasks: newTaskTable()}
	defer txn.Abort()
	if err := readRecords(dec, txn); err != nil {
		return nil, nil, hdr, err
	}
	if err := writeMeta(txn.Txn, metaRow{ClusterID: hdr.ClusterID, AppliedIndex: hdr.Index, Security: hdr.Security}); err != nil {
		return nil, nil, hdr, err
	}
	txn.Commit()
	return db, txn.tasks, hdr, nil
}

// readRecords inserts every object record into txn, up to the end record.
func readRecords(dec *json.Decoder, txn *tx) error {
	decoders := map[string]func(json.RawMessage) (any, error){}
	for _, t := range snapshotTables {
		decoders[t.name] = t.decode
	}
	strs := newInterner() // a restored replica is as compact as one that applied the log
	for n := 0; ; n++ {
		var rec snapshotRecord
		if err := dec.Decode(&rec); err != nil {
			return fmt.Errorf("read record %d (no end record: cut snapshot?): %w", n, err)
		}
		if rec.End {
			return checkCount(rec.Count, n)
		}
		if err := insertRecord(txn, decoders, strs, rec); err != nil {
			return fmt.Errorf("record %d: %w", n, err)
		}
	}
}

// insertRecord decodes one record's object and stores it.
func insertRecord(txn *tx, decoders map[string]func(json.RawMessage) (any, error), strs *interner, rec snapshotRecord) error {
	decode, ok := decoders[rec.Table]
	if !ok {
		return fmt.Errorf("unknown table %q", rec.Table)
	}
	obj, err := decode(rec.Object)
	if err != nil {
		return err
	}
	if t, ok := obj.(*Task); ok {
		internTask(strs, t)
		txn.tasks.put(t)
		return nil
	}
	if err := txn.Insert(rec.Table, obj); err != nil {
		return fmt.Errorf("insert into %s: %w", rec.Table, err)
	}
	return nil
}

// checkCount compares the end record's count with the objects read.
func checkCount(want, got int) error {
	if want != got {
		return fmt.Errorf("snapshot holds %d objects, end record says %d", got, want)
	}
	return nil
}
