package store

import (
	"slices"
	"testing"

	"github.com/hashicorp/raft"
)

func taskIDs(seq func(func(*Task) bool)) []string {
	var ids []string
	for t := range seq {
		ids = append(ids, t.ID)
	}
	return ids
}

func TestTaskTableMovesTaskBetweenApps(t *testing.T) {
	tt := newTaskTable()
	tt.put(&Task{ID: "b", App: "shop"})
	tt.put(&Task{ID: "a", App: "shop"})
	tt.put(&Task{ID: "c", App: "blog"})
	tt.put(&Task{ID: "b", App: "blog"}) // same ID, other app
	if got := taskIDs(tt.ofApp("shop")); !slices.Equal(got, []string{"a"}) {
		t.Errorf("shop: %v, want [a]", got)
	}
	if got := taskIDs(tt.ofApp("blog")); !slices.Equal(got, []string{"b", "c"}) {
		t.Errorf("blog: %v, want [b c]", got)
	}
	tt.delete(&Task{ID: "c"})
	if got := taskIDs(tt.all()); !slices.Equal(got, []string{"a", "b"}) || tt.len() != 2 {
		t.Errorf("all after delete: %v (len %d), want [a b]", got, tt.len())
	}
	if got := taskIDs(tt.ofApp("sho")); len(got) != 0 {
		t.Errorf("prefix of an app name matched %v", got)
	}
}

func TestTaskTableCloneIsolates(t *testing.T) {
	tt := newTaskTable()
	for _, id := range []string{"a", "b", "c"} {
		tt.put(&Task{ID: id, App: "shop"})
	}
	frozen := tt.clone()
	tt.put(&Task{ID: "d", App: "shop"})
	tt.delete(&Task{ID: "a"})
	if got := taskIDs(frozen.ofApp("shop")); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("clone changed by writes to the original: %v", got)
	}
	if got := taskIDs(tt.all()); !slices.Equal(got, []string{"b", "c", "d"}) {
		t.Errorf("original: %v, want [b c d]", got)
	}
}

// A refused batch leaves the tasks it put out of the store, and a view
// taken before an entry does not see the entry's tasks.
func TestTasksRefusedBatchAndViews(t *testing.T) {
	s := New(nil)
	apply := func(index uint64, cmds ...[]byte) error {
		data, err := EncodeBatch(cmds...)
		if err != nil {
			t.Fatal(err)
		}
		return s.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: data}).(*ApplyResult).Err
	}
	put := func(id string) []byte {
		cmd, err := Encode(CmdPutTask, Task{ID: id, App: "shop"})
		if err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	if err := apply(1, put("a")); err != nil {
		t.Fatal(err)
	}
	before := s.View()
	bad, err := Encode(CmdPutTask, Task{ID: "c"}) // no app: refused
	if err != nil {
		t.Fatal(err)
	}
	if err := apply(2, put("b"), bad); err == nil {
		t.Fatal("batch with an invalid task accepted")
	}
	if _, ok := s.View().Task("b"); ok {
		t.Error("task of a refused batch is in the store")
	}
	if err := apply(3, put("b")); err != nil {
		t.Fatal(err)
	}
	if n := before.TaskCount(); n != 1 {
		t.Errorf("earlier view sees %d tasks, want 1", n)
	}
	if got := s.View().Tasks("shop"); len(got) != 2 {
		t.Errorf("shop has %d tasks, want 2", len(got))
	}
}
