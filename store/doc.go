// Package store is the cluster's replicated state machine: the single source
// of truth that every manager holds a copy of through hashicorp/raft.
//
// A raft log entry is one command: a type byte followed by a JSON payload
// (see Encode). Store implements raft.FSM: Apply routes each entry through a
// dispatch table into one write transaction (go-memdb for most tables, a
// cloned copy-on-write task table for tasks, committed together), Snapshot
// is O(1) and Restore swaps a fresh state in under a lock.
//
// Reads go through View, a consistent point-in-time read transaction that
// returns copies. Changes are published as Events, kept in a bounded buffer
// with a channel that closes at the next change, so API handlers can serve
// blocking queries and event streams without polling.
//
// The FSM is deterministic: everything it stores comes from the log entry
// (payload, index and the leader's append time), never from the local clock.
package store
