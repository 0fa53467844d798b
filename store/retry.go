package store

import (
	"errors"
	"fmt"
)

// MustEncode is Encode for payloads that always encode (the store's plain
// structs): a failure is a bug, and panics.
func MustEncode(t CommandType, payload any) []byte {
	b, err := Encode(t, payload)
	if err != nil {
		panic(fmt.Sprintf("store: encode %s: %v", t, err))
	}
	return b
}

// Retry is the optimistic concurrency of the leader's managers: it lets
// decide make a command of a fresh view of st, applies it, and decides
// again from a new view while the store refuses it as a conflict
// (someone else's change came first), at most attempts times. decide
// returns nil for nothing to commit; its error is returned as it is. Retry
// returns the index the command was applied at, 0 if none was; what names
// the object in errors.
func Retry(st *Store, apply func([]byte) (uint64, error), attempts int, what string, decide func(*View) ([]byte, error)) (uint64, error) {
	for range attempts {
		data, err := decide(st.View())
		if err != nil || data == nil {
			return 0, err
		}
		index, err := apply(data)
		if errors.Is(err, ErrConflict) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("%s: %w", what, err)
		}
		return index, nil
	}
	return 0, Refuse(ErrConflict, "%s kept changing under %d attempts", what, attempts)
}
