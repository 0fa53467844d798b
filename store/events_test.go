package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/clusterctl/clusterctl/store"
	"github.com/clusterctl/clusterctl/store/mock"
)

// eventTypes lists "type key" of events.
func eventTypes(events []store.Event) []string {
	out := make([]string, len(events))
	for i, ev := range events {
		out[i] = ev.Type + " " + ev.Key
	}
	return out
}

func TestEventsSince(t *testing.T) {
	s := store.New(nil)
	mustApply(t, s, store.CmdRegisterServer, mock.Server())                 // 1
	mustApply(t, s, store.CmdRegisterHost, mock.Host())                     // 2
	mustApply(t, s, store.CmdSetVar, store.Var{Key: "k", Value: "v"})       // 3
	mustApply(t, s, store.CmdDeleteVar, store.NameRef{Name: "k"})           // 4
	apply(t, s, store.CmdHostHeartbeat, store.HostHeartbeat{Name: "ghost"}) // 5: refused, no event

	events, _, err := s.Events(0)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"server.registered server1", "host.registered host1", "var.set k", "var.deleted k"}
	if got := eventTypes(events); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	for i, ev := range events {
		if ev.Index != uint64(i+1) || !ev.Time.Equal(appendedAt) {
			t.Fatalf("event %d: index %d time %v, want %d at %v", i, ev.Index, ev.Time, i+1, appendedAt)
		}
	}
	var h store.Host
	if err := json.Unmarshal(events[1].Object, &h); err != nil || h.Name != "host1" || h.ModifyIndex != 2 {
		t.Fatalf("host event object %s: %+v %v", events[1].Object, h, err)
	}

	events, _, err = s.Events(2)
	if err != nil || fmt.Sprint(eventTypes(events)) != fmt.Sprint(want[2:]) {
		t.Fatalf("events since 2: %v %v, want %v", eventTypes(events), err, want[2:])
	}
	if events, _, err := s.Events(5); err != nil || len(events) != 0 {
		t.Fatalf("events since 5: %v %v, want none", eventTypes(events), err)
	}
}

func TestEventsBatchSharesIndex(t *testing.T) {
	s := store.New(nil)
	data, err := store.EncodeBatch(
		encode(t, store.CmdPutApp, mock.App()),
		encode(t, store.CmdPutService, mock.Service()),
	)
	if err != nil {
		t.Fatal(err)
	}
	applyData(t, s, data)
	events, _, _ := s.Events(0)
	want := "[app.put shop service.put shop/db]"
	if got := fmt.Sprint(eventTypes(events)); got != want || events[0].Index != 1 || events[1].Index != 1 {
		t.Fatalf("batch events %s, want %s at index 1", got, want)
	}
}

// closed reports whether ch is closed.
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestEventsChangedChannel(t *testing.T) {
	s := store.New(nil)
	_, changed, err := s.Events(0)
	if err != nil {
		t.Fatal(err)
	}
	if closed(changed) {
		t.Fatal("changed closed before any change")
	}
	mustApply(t, s, store.CmdSetVar, store.Var{Key: "k", Value: "v"})
	if !closed(changed) {
		t.Fatal("changed not closed by an apply")
	}
	events, next, _ := s.Events(0)
	if len(events) != 1 || closed(next) {
		t.Fatalf("after the change: %d events, next closed %v; want 1 and open", len(events), closed(next))
	}
}

func TestHeartbeatWithoutChangeEmitsNothing(t *testing.T) {
	s := store.New(nil)
	h := mock.Host()
	regIndex := mustApply(t, s, store.CmdRegisterHost, h)
	_, changed, _ := s.Events(regIndex)

	at := mock.Now.Add(time.Minute)
	hbIndex := mustApply(t, s, store.CmdHostHeartbeat, store.HostHeartbeat{
		Name: h.Name, At: at, Containers: h.Containers, ContainersChanged: true, // same containers
	})
	events, _, err := s.Events(regIndex)
	if err != nil || len(events) != 0 {
		t.Fatalf("no-op heartbeat emitted %v (%v)", eventTypes(events), err)
	}
	if closed(changed) {
		t.Fatal("no-op heartbeat closed the changed channel")
	}
	got, _ := s.View().Host(h.Name)
	if !got.LastHeartbeat.Equal(at) || got.ModifyIndex != regIndex {
		t.Fatalf("heartbeat at %v index %d, want %v and modify index kept at %d", got.LastHeartbeat, got.ModifyIndex, at, regIndex)
	}
	if s.AppliedIndex() != hbIndex {
		t.Fatalf("applied index %d, want %d", s.AppliedIndex(), hbIndex)
	}

	c := mock.Container()
	c.ID = "another"
	mustApply(t, s, store.CmdHostHeartbeat, store.HostHeartbeat{
		Name: h.Name, At: at, Containers: append(h.Containers, c), ContainersChanged: true,
	})
	events, _, _ = s.Events(hbIndex)
	if fmt.Sprint(eventTypes(events)) != "[host.heartbeat host1]" || !closed(changed) {
		t.Fatalf("changing heartbeat emitted %v, changed closed %v", eventTypes(events), closed(changed))
	}
}

func TestEventsTruncated(t *testing.T) {
	s := store.New(nil)
	const extra = 10
	for i := range store.EventBufferSize + extra {
		mustApply(t, s, store.CmdSetVar, store.Var{Key: "k", Value: fmt.Sprint(i)})
	}
	// Events 1..extra were dropped: a watcher at index extra-1 missed one.
	for _, since := range []uint64{1, extra - 1} {
		if _, _, err := s.Events(since); !errors.Is(err, store.ErrEventsTruncated) {
			t.Fatalf("events since %d: err %v, want truncated", since, err)
		}
	}
	events, _, err := s.Events(extra)
	if err != nil || len(events) != store.EventBufferSize || events[0].Index != extra+1 {
		t.Fatalf("events since %d: %d events from %d (%v), want %d from %d",
			extra, len(events), events[0].Index, err, store.EventBufferSize, extra+1)
	}
	if events, _, err := s.Events(0); err != nil || len(events) != store.EventBufferSize {
		t.Fatalf("events since 0: %d (%v), want the %d buffered", len(events), err, store.EventBufferSize)
	}
}

func TestWaitIndex(t *testing.T) {
	// synctest.Wait lets the test know the waiter is blocked before each
	// apply, and the fake clock makes the timeout instant.
	synctest.Test(t, func(t *testing.T) {
		s := store.New(nil)
		waitCtx, stop := context.WithCancel(context.Background())
		defer stop() // frees the waiter if the test fails
		done := make(chan error, 1)
		go func() { done <- s.WaitIndex(waitCtx, 3) }()
		for i := range 3 {
			synctest.Wait()
			select {
			case err := <-done:
				t.Fatalf("WaitIndex(3) returned %v at index %d", err, i)
			default:
			}
			mustApply(t, s, store.CmdSetVar, store.Var{Key: "k", Value: fmt.Sprint(i)})
		}
		synctest.Wait()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("WaitIndex(3): %v", err)
			}
		default:
			t.Fatal("WaitIndex(3) still blocked at index 3")
		}
		if err := s.WaitIndex(context.Background(), 2); err != nil {
			t.Fatalf("WaitIndex of a past index: %v", err)
		}

		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := s.WaitIndex(ctx, 4); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("WaitIndex(4) with nothing applied: %v, want deadline exceeded", err)
		}
	})
}

func TestEventsWatcherWakes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := store.New(nil)
		got := make(chan []store.Event, 1)
		quit := make(chan struct{})
		defer close(quit) // frees the watcher if the test fails
		go func() {
			_, changed, _ := s.Events(0)
			select {
			case <-changed:
			case <-quit:
				return
			}
			events, _, _ := s.Events(0)
			got <- events
		}()
		synctest.Wait() // the watcher is blocked on changed
		mustApply(t, s, store.CmdSetVar, store.Var{Key: "k", Value: "v"})
		synctest.Wait()
		select {
		case events := <-got:
			if len(events) != 1 || events[0].Type != store.EventVarSet {
				t.Fatalf("watcher saw %v", eventTypes(events))
			}
		default:
			t.Fatal("watcher not woken by an apply")
		}
	})
}
