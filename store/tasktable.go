package store

import (
	"iter"

	"github.com/google/btree"
)

// taskTable holds the tasks, outside memdb.
//
// Tasks are the one table that grows with the cluster: a million of them
// on every manager. In memdb each index entry is a radix-tree leaf and
// nodes with a change-notification channel apiece, about 420 bytes per
// entry; two copy-on-write B-trees of pointers cost about 40 bytes per task
// for both orders together, and give the same point-in-time views (a
// clone shares every node until one side writes). The store keeps it
// consistent with memdb by committing both under its lock.
//
// A taskTable is either being written by one goroutine (the FSM's) or read
// by any number, never both: the store clones the committed table before
// writing and publishes a clone after (see Store.commit).
type taskTable struct {
	byID  *btree.BTreeG[*Task] // ordered by ID
	byApp *btree.BTreeG[*Task] // ordered by App, then ID
}

// taskTreeDegree is the B-trees' degree: nodes of up to 63 pointers, so a
// million tasks are four levels deep and a copied path is a few KiB.
const taskTreeDegree = 32

// newTaskTable returns an empty table.
func newTaskTable() *taskTable {
	return &taskTable{
		byID:  btree.NewG(taskTreeDegree, lessTaskID),
		byApp: btree.NewG(taskTreeDegree, lessTaskApp),
	}
}

func lessTaskID(a, b *Task) bool { return a.ID < b.ID }

func lessTaskApp(a, b *Task) bool {
	if a.App != b.App {
		return a.App < b.App
	}
	return a.ID < b.ID
}

// clone returns a copy of t in O(1); later writes to either do not show in
// the other.
func (t *taskTable) clone() *taskTable {
	return &taskTable{byID: t.byID.Clone(), byApp: t.byApp.Clone()}
}

// get returns the task of that ID, or nil. The task must not be modified.
func (t *taskTable) get(id string) *Task {
	task, _ := t.byID.Get(&Task{ID: id})
	return task
}

// put inserts task or replaces the task of its ID.
func (t *taskTable) put(task *Task) {
	if old, ok := t.byID.ReplaceOrInsert(task); ok && old.App != task.App {
		t.byApp.Delete(old)
	}
	t.byApp.ReplaceOrInsert(task)
}

// delete removes the task of task's ID, if any.
func (t *taskTable) delete(task *Task) {
	if old, ok := t.byID.Delete(task); ok {
		t.byApp.Delete(old)
	}
}

// len returns how many tasks there are.
func (t *taskTable) len() int { return t.byID.Len() }

// all yields every task by ID.
func (t *taskTable) all() iter.Seq[*Task] {
	return func(yield func(*Task) bool) { t.byID.Ascend(yield) }
}

// ofApp yields the tasks of app by ID.
func (t *taskTable) ofApp(app string) iter.Seq[*Task] {
	return func(yield func(*Task) bool) {
		t.byApp.AscendGreaterOrEqual(&Task{App: app}, func(task *Task) bool {
			return task.App == app && yield(task)
		})
	}
}
