package store_test

import (
	"io"
	"testing"
	"unsafe"

	"github.com/clusterctl/clusterctl/store"
	"github.com/clusterctl/clusterctl/store/mock"
)

// sameString reports whether a and b share their bytes, not just equal.
func sameString(a, b string) bool { return unsafe.StringData(a) == unsafe.StringData(b) }

// assertInterned checks that two tasks of one service share their
// repeated strings and keep their own IDs.
func assertInterned(t *testing.T, v *store.View, a, b string) {
	t.Helper()
	ta, okA := v.Task(a)
	tb, okB := v.Task(b)
	if !okA || !okB {
		t.Fatalf("tasks %s and %s not found", a, b)
	}
	for _, f := range []struct{ name, a, b string }{
		{"app", ta.App, tb.App}, {"service", ta.Service, tb.Service},
		{"desired state", ta.DesiredState, tb.DesiredState}, {"desired host", ta.DesiredHost, tb.DesiredHost},
		{"observed state", ta.ObservedState, tb.ObservedState}, {"host", ta.Host, tb.Host},
	} {
		if f.a != f.b || !sameString(f.a, f.b) {
			t.Errorf("%s: %q and %q do not share their bytes", f.name, f.a, f.b)
		}
	}
	if ta.ID == tb.ID {
		t.Errorf("both tasks have ID %q", ta.ID)
	}
}

func TestTasksShareRepeatedStrings(t *testing.T) {
	s := store.New(nil)
	a, b := mock.Task(), mock.Task()
	b.ID, b.Slot = "shop-db-2", 2
	mustApply(t, s, store.CmdPutTask, a)
	mustApply(t, s, store.CmdPutTask, b)
	assertInterned(t, s.View(), a.ID, b.ID)

	// A replica restored from a snapshot is interned the same way.
	sink := persist(t, s)
	dst := store.New(nil)
	if err := dst.Restore(io.NopCloser(&sink.Buffer)); err != nil {
		t.Fatalf("restore: %v", err)
	}
	assertInterned(t, dst.View(), a.ID, b.ID)
}

func TestTaskCount(t *testing.T) {
	s := store.New(nil)
	if n := s.View().TaskCount(); n != 0 {
		t.Fatalf("empty store counts %d tasks", n)
	}
	a, b := mock.Task(), mock.Task()
	b.ID = "shop-db-2"
	mustApply(t, s, store.CmdPutTask, a)
	mustApply(t, s, store.CmdPutTask, b)
	mustApply(t, s, store.CmdPutTask, a) // a replace is not a new task
	before := s.View()
	mustApply(t, s, store.CmdDeleteTask, store.NameRef{Name: a.ID})
	if n := before.TaskCount(); n != 2 {
		t.Errorf("view before the delete counts %d tasks, want 2", n)
	}
	if n := s.View().TaskCount(); n != 1 {
		t.Errorf("after the delete: %d tasks, want 1", n)
	}
}
