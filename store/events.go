package store

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"
)

// EventBufferSize is how many recent events a Store keeps for Events.
const EventBufferSize = 4096

// Event is one change applied to the store, for watchers (event streams,
// blocking queries, the reconciler).
type Event struct {
	Index uint64 `json:"index"` // raft index of the entry that made the change
	Type  string `json:"type"`  // e.g. "host.registered", "var.set", "task.put"
	Key   string `json:"key"`   // the object's key, as in NameRef
	// Object is the object after the change (before it, for deletes).
	Object json.RawMessage `json:"object"`
	Time   time.Time       `json:"time"` // when the leader appended the entry

	obj any // the object, until encoded into Object by Events
}

// encode fills Object from the object the event was made with.
func (ev *Event) encode() error {
	if ev.Object != nil || ev.obj == nil {
		return nil
	}
	raw, err := json.Marshal(ev.obj)
	if err != nil {
		return fmt.Errorf("encode %s event for %s at index %d: %w", ev.Type, ev.Key, ev.Index, err)
	}
	ev.Object = raw
	return nil
}

// Events returns the buffered events with Index > since, oldest first, and a
// channel closed at the next change (new events, or a Restore). With since >
// 0 older than what the buffer still holds, it returns ErrEventsTruncated:
// re-list through View and call again with the view's Index.
func (s *Store) Events(since uint64) ([]Event, <-chan struct{}, error) {
	s.mu.RLock()
	if since > 0 && since < s.events.floor {
		floor := s.events.floor
		s.mu.RUnlock()
		return nil, nil, fmt.Errorf("events since %d: only events after %d are kept: %w",
			since, floor, ErrEventsTruncated)
	}
	events, changed := s.events.since(since), s.changed
	s.mu.RUnlock()
	// Encode outside the lock: the objects never change, and applies
	// need not wait for a watcher.
	for i := range events {
		if err := events[i].encode(); err != nil {
			return nil, nil, err
		}
	}
	return events, changed, nil
}

// eventRing keeps the last events in a fixed ring, in index order.
type eventRing struct {
	buf   []Event
	start int // position of the oldest event
	n     int // events held
	// floor is the index up to which events may be missing: those of a
	// dropped event, or the index a Restore started from.
	floor uint64
}

// newEventRing returns an empty ring of the given capacity.
func newEventRing(size int) *eventRing {
	return &eventRing{buf: make([]Event, size)}
}

// push appends events, dropping the oldest when full.
func (r *eventRing) push(events ...Event) {
	for _, ev := range events {
		if r.n < len(r.buf) {
			r.buf[(r.start+r.n)%len(r.buf)] = ev
			r.n++
			continue
		}
		r.floor = r.buf[r.start].Index
		r.buf[r.start] = ev
		r.start = (r.start + 1) % len(r.buf)
	}
}

// at returns the i-th oldest event held.
func (r *eventRing) at(i int) Event { return r.buf[(r.start+i)%len(r.buf)] }

// since returns a copy of the events with Index > index.
func (r *eventRing) since(index uint64) []Event {
	first := sort.Search(r.n, func(i int) bool { return r.at(i).Index > index })
	out := make([]Event, 0, r.n-first)
	for i := first; i < r.n; i++ {
		out = append(out, r.at(i))
	}
	return out
}

// reset empties the ring; events before index are then missing.
func (r *eventRing) reset(index uint64) {
	clear(r.buf)
	r.start, r.n, r.floor = 0, 0, index
}
