package store_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/clusterctl/clusterctl/store"
)

func TestRetryDecidesAgainAfterAConflict(t *testing.T) {
	st := store.New(nil)
	calls, applied := 0, 0
	apply := func([]byte) (uint64, error) {
		applied++
		if applied == 1 {
			return 0, store.ErrConflict // someone else's change came first
		}
		return 42, nil
	}
	index, err := store.Retry(st, apply, 3, "thing", func(*store.View) ([]byte, error) {
		calls++
		return []byte{1}, nil
	})
	if err != nil || index != 42 || calls != 2 {
		t.Fatalf("index %d, err %v, %d decisions; want 42, nil, 2", index, err, calls)
	}
	if index, err := store.Retry(st, apply, 3, "thing", func(*store.View) ([]byte, error) { return nil, nil }); index != 0 || err != nil {
		t.Errorf("nothing to commit: %d, %v", index, err)
	}
	always := func([]byte) (uint64, error) { return 0, store.ErrConflict }
	_, err = store.Retry(st, always, 3, "thing", func(*store.View) ([]byte, error) { return []byte{1}, nil })
	if !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "thing kept changing under 3 attempts") {
		t.Errorf("always a conflict: %v", err)
	}
	boom := errors.New("boom")
	_, err = store.Retry(st, func([]byte) (uint64, error) { return 0, boom }, 3, "thing", func(*store.View) ([]byte, error) { return []byte{1}, nil })
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "thing: boom") {
		t.Errorf("a failed apply: %v", err)
	}
}
