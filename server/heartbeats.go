package server

import (
	"sync"
	"time"
)

// heartbeats is the leader's memory of when each host was last heard from.
// It is not replicated: writing every heartbeat to the log would cost a
// disk write per host per second; a new leader starts every host afresh.
type heartbeats struct {
	mu    sync.Mutex
	since time.Time
	at    map[string]time.Time
}

func newHeartbeats() *heartbeats { return &heartbeats{at: map[string]time.Time{}} }

// reset forgets every heartbeat: hosts are given until now+TTL.
func (h *heartbeats) reset(now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.since = now
	h.at = map[string]time.Time{}
}

// touch records a heartbeat.
func (h *heartbeats) touch(name string, at time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.at[name] = at
}

// last is when a host was last heard from, or when this leader started if
// never.
func (h *heartbeats) last(name string, now time.Time) time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	if t, ok := h.at[name]; ok {
		return t
	}
	if h.since.IsZero() {
		return now
	}
	return h.since
}
