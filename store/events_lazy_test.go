package store_test

import (
	"encoding/json"
	"testing"

	"github.com/clusterctl/clusterctl/store"
	"github.com/clusterctl/clusterctl/store/mock"
)

// Events encode their objects when read: each must still show the object
// as it was at its own index, however it changed after.
func TestEventsShowObjectsAsOfTheirIndex(t *testing.T) {
	s := store.New(nil)
	task := mock.Task()
	mustApply(t, s, store.CmdPutTask, task)
	task.DesiredHost = "host2"
	mustApply(t, s, store.CmdPutTask, task)
	mustApply(t, s, store.CmdDeleteTask, store.NameRef{Name: task.ID})
	mustApply(t, s, store.CmdRegisterHost, mock.Host())
	mustApply(t, s, store.CmdSetHostState, store.SetHostState{Names: []string{"host1"}, State: store.HostDown})

	events, _, err := s.Events(0)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		typ   string
		host  string // DesiredHost for tasks, State for hosts
		index uint64 // the object's ModifyIndex
	}{
		{store.EventTaskPut, "host1", 1},
		{store.EventTaskPut, "host2", 2},
		{store.EventTaskDeleted, "host2", 2},
		{store.EventHostRegistered, string(store.HostUp), 4},
		{store.EventHostState, string(store.HostDown), 5},
	}
	if len(events) != len(want) {
		t.Fatalf("events %v, want %d", eventTypes(events), len(want))
	}
	for i, w := range want {
		ev := events[i]
		var obj struct {
			DesiredHost string `json:"desired_host"`
			State       string `json:"state"`
			ModifyIndex uint64 `json:"modify_index"`
		}
		if err := json.Unmarshal(ev.Object, &obj); err != nil {
			t.Fatalf("event %d object %s: %v", i, ev.Object, err)
		}
		got := obj.DesiredHost + obj.State
		if ev.Type != w.typ || got != w.host || obj.ModifyIndex != w.index {
			t.Errorf("event %d: %s %s at %d, want %s %s at %d", i, ev.Type, got, obj.ModifyIndex, w.typ, w.host, w.index)
		}
	}
	// A second read encodes the same bytes again.
	again, _, _ := s.Events(0)
	for i := range again {
		if string(again[i].Object) != string(events[i].Object) {
			t.Errorf("event %d read twice: %s, then %s", i, events[i].Object, again[i].Object)
		}
	}
}
