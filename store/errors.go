package store

import (
	"errors"
	"fmt"
)

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

// Refusal is a request refused for a reason its message says in full: it
// unwraps to the store error that tells which kind (ErrInvalid,
// ErrConflict, ErrNotFound), so the API answers with the right status,
// without that error's own text appended to a message meant for people.
type Refusal struct {
	msg  string
	kind error
}

func (r *Refusal) Error() string { return r.msg }
func (r *Refusal) Unwrap() error { return r.kind }

// Refuse returns a Refusal of kind with a formatted message.
func Refuse(kind error, format string, args ...any) error {
	return &Refusal{msg: fmt.Sprintf(format, args...), kind: kind}
}
