package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	memdb "github.com/hashicorp/go-memdb"
	"github.com/hashicorp/raft"
)

// Store is the cluster state machine: give it to raft.NewRaft as the FSM,
// read it through View, follow it through Events and WaitIndex.
type Store struct {
	log      *slog.Logger
	handlers map[CommandType]handler
	strings  *interner // used inside write transactions only, which memdb makes one at a time

	// tasks is the committed task table as the FSM goroutine writes it
	// next (cloned per entry); readers get published, a clone of it, so
	// no tree is read while it is being cloned or written.
	tasks *taskTable

	mu        sync.RWMutex
	db        *memdb.MemDB  // swapped by Restore
	published *taskTable    // the tasks as of applied, for views
	applied   uint64        // last applied raft index
	appliedCh chan struct{} // closed when applied advances
	events    *eventRing
	changed   chan struct{} // closed when events are added or state restored
}

var _ raft.FSM = (*Store)(nil)

// ApplyResult is what Apply returns for every command entry (the
// raft.ApplyFuture's Response): the entry's index, and Err when the command
// was valid but refused (the state is then unchanged, the replica goes on).
type ApplyResult struct {
	Index uint64
	Err   error
}

// entry is the part of a raft log entry that handlers may use: they must
// take nothing from the local machine (clock, randomness) to stay
// deterministic.
type entry struct {
	index   uint64
	at      time.Time // the leader's append time, zero if unknown
	strings *interner // the store's, to share repeated strings
}

// handler applies one command's payload inside a write transaction and
// returns the events it caused; an error refuses the command.
type handler func(txn *tx, e entry, payload json.RawMessage) ([]Event, error)

// tx is a transaction over the whole state: memdb's tables and the task
// table, which holds a private clone while the transaction writes.
type tx struct {
	*memdb.Txn
	tasks *taskTable
}

// New returns an empty store that logs to log (nothing when log is nil).
func New(log *slog.Logger) *Store {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	db, err := newDB()
	if err != nil {
		panic(fmt.Sprintf("store: %v", err)) // the schema is static: a bug
	}
	s := &Store{
		log:       log,
		db:        db,
		tasks:     newTaskTable(),
		published: newTaskTable(),
		appliedCh: make(chan struct{}),
		events:    newEventRing(EventBufferSize),
		changed:   make(chan struct{}),
		strings:   newInterner(),
	}
	s.handlers = s.dispatchTable()
	return s
}

// Apply applies one committed raft log entry. It returns *ApplyResult for
// command entries and nil for any other log type. It panics on an entry it
// cannot understand (unknown command type, undecodable payload): a replica
// that cannot apply the log must stop rather than silently diverge.
func (s *Store) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	cmd, err := Decode(l.Data)
	if err != nil {
		s.fail(l.Index, 0, err)
	}
	e := entry{index: l.Index, at: utc(l.AppendedAt), strings: s.strings}
	events, err := s.applyEntry(e, cmd)
	var fatal *fatalError
	if errors.As(err, &fatal) {
		s.fail(l.Index, cmd.Type, err)
	}
	if err != nil {
		s.log.Warn("command refused", "index", l.Index, "type", cmd.Type.String(), "err", err)
	}
	s.publish(e, events)
	return &ApplyResult{Index: l.Index, Err: err}
}

// fail logs and panics about an entry that cannot be applied.
func (s *Store) fail(index uint64, t CommandType, err error) {
	msg := fmt.Sprintf("store: cannot apply raft log entry %d (command type %d, %s): %v", index, uint8(t), t, err)
	s.log.Error(msg)
	panic(msg)
}

// applyEntry runs cmd in one write transaction that also records the
// applied index. A refused command still advances the index, alone.
func (s *Store) applyEntry(e entry, cmd Command) ([]Event, error) {
	db := s.currentDB()
	txn := &tx{Txn: db.Txn(true), tasks: s.tasks.clone()}
	defer txn.Abort() // no-op after Commit; releases the writer on panic
	events, err := s.dispatch(txn, e, cmd)
	if err != nil {
		txn.Abort()
		if ierr := s.commit(&tx{Txn: db.Txn(true), tasks: s.tasks}, e.index); ierr != nil {
			return nil, &fatalError{ierr}
		}
		return nil, err
	}
	if err := s.commit(txn, e.index); err != nil {
		return nil, &fatalError{err}
	}
	return events, nil
}

// commit sets the applied index in txn and commits it: memdb and the task
// table together, under the lock, so a View sees both at one index.
func (s *Store) commit(txn *tx, index uint64) error {
	defer txn.Abort()
	m := readMeta(txn.Txn)
	m.AppliedIndex = index
	if err := writeMeta(txn.Txn, m); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	txn.Commit()
	s.tasks = txn.tasks
	s.published = txn.tasks.clone()
	return nil
}

// dispatch routes one command to its handler.
func (s *Store) dispatch(txn *tx, e entry, cmd Command) ([]Event, error) {
	h, ok := s.handlers[cmd.Type]
	if !ok {
		return nil, &fatalError{fmt.Errorf("unknown command type %d", uint8(cmd.Type))}
	}
	return h(txn, e, cmd.Payload)
}

// publish advances the applied index, stamps and buffers the events of an
// applied entry and wakes the waiters.
func (s *Store) publish(e entry, events []Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applied = e.index
	close(s.appliedCh)
	s.appliedCh = make(chan struct{})
	if len(events) == 0 {
		return
	}
	at := e.at
	if at.IsZero() {
		at = time.Now().UTC() // events are local, not replicated state
	}
	for i := range events {
		events[i].Index = e.index
		events[i].Time = at
	}
	s.events.push(events...)
	close(s.changed)
	s.changed = make(chan struct{})
}

// readTxn returns a read transaction over the current state.
func (s *Store) readTxn() *tx {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return &tx{Txn: s.db.Txn(false), tasks: s.published}
}

// currentDB returns the live database (Restore may swap it).
func (s *Store) currentDB() *memdb.MemDB {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.db
}

// AppliedIndex returns the raft index of the last entry applied to (or
// restored into) this store.
func (s *Store) AppliedIndex() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.applied
}

// WaitIndex blocks until the store has applied index (for read-your-writes
// and linearizable reads) or ctx ends, returning ctx's error wrapped.
//
// Only command entries reach the FSM: an index of a raft no-op, barrier or
// configuration entry is reached only when a later command is applied.
func (s *Store) WaitIndex(ctx context.Context, index uint64) error {
	for {
		s.mu.RLock()
		applied, ch := s.applied, s.appliedCh
		s.mu.RUnlock()
		if applied >= index {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for raft index %d (applied %d): %w", index, applied, ctx.Err())
		}
	}
}

// ResponseError returns the refusal carried by a raft.ApplyFuture's
// Response, or an error if the response is not an *ApplyResult.
func ResponseError(resp any) error {
	res, ok := resp.(*ApplyResult)
	if !ok || res == nil {
		return fmt.Errorf("unexpected raft apply response %T", resp)
	}
	return res.Err
}
