package store

import "errors"

// Errors a refused command carries in ApplyResult.Err (wrapped with details),
// so API handlers can map them to a status with errors.Is.
var (
	// ErrInvalid means the payload lacks a key or holds a value the store
	// does not accept (e.g. an unknown host state).
	ErrInvalid = errors.New("invalid command")
	// ErrConflict means the command clashes with the current state (a server
	// name used by another address, a second cluster ID, a leased address).
	ErrConflict = errors.New("conflict")
	// ErrNotFound means the command refers to an object that does not exist.
	ErrNotFound = errors.New("not found")
)

// ErrEventsTruncated is returned by Events when events after the given index
// were dropped from the buffer: the caller must re-list through View and
// watch again from the view's index.
var ErrEventsTruncated = errors.New("events truncated")

// fatalError marks an entry that cannot be applied at all (unknown command
// type, undecodable payload): Apply panics on it rather than diverge.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }
func (e *fatalError) Unwrap() error { return e.err }
