package store_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/clusterctl/clusterctl/store"
	"github.com/clusterctl/clusterctl/store/mock"
)

// populate applies many commands touching every table.
func populate(t testing.TB, s *store.Store) {
	t.Helper()
	mustApply(t, s, store.CmdInitCluster, store.InitCluster{ClusterID: mock.ClusterID})
	for i := 1; i <= 3; i++ {
		srv := mock.Server()
		srv.Name, srv.RaftAddr = fmt.Sprintf("server%d", i), fmt.Sprintf("10.99.0.1%d:7401", i)
		mustApply(t, s, store.CmdRegisterServer, srv)
	}
	for _, h := range mock.Hosts(20) {
		mustApply(t, s, store.CmdRegisterHost, h)
	}
	mustApply(t, s, store.CmdSetHostState, store.SetHostState{Names: []string{"host3", "host7"}, State: store.HostDown})
	for i := range 30 {
		mustApply(t, s, store.CmdSetVar, store.Var{Key: fmt.Sprintf("k/%02d", i), Value: strings.Repeat("v", i)})
	}
	mustApply(t, s, store.CmdPutApp, mock.App())
	mustApply(t, s, store.CmdPutService, mock.Service())
	for i := range 10 {
		task := mock.Task()
		task.ID, task.Slot, task.Host = fmt.Sprintf("shop-db-%d", i), i, fmt.Sprintf("host%d", i%5+1)
		mustApply(t, s, store.CmdPutTask, task)
		lease := mock.Lease()
		lease.Addr, lease.TaskID = fmt.Sprintf("10.200.0.%d", i+2), task.ID
		mustApply(t, s, store.CmdPutLease, lease)
	}
	mustApply(t, s, store.CmdPutVolume, mock.Volume())
	mustApply(t, s, store.CmdPutNetwork, mock.Network())
	mustApply(t, s, store.CmdPutMove, mock.Move())
}

// persist writes a snapshot of s to a buffer sink.
func persist(t testing.TB, s *store.Store) *bufSink {
	t.Helper()
	snap, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	sink := &bufSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatalf("persist: %v", err)
	}
	if !sink.closed || sink.cancelled {
		t.Fatalf("sink closed %v cancelled %v, want closed only", sink.closed, sink.cancelled)
	}
	return sink
}

// countTables checks every table of a state is non-empty, so a round trip
// compares something.
func countTables(t testing.TB, st state) {
	t.Helper()
	n := []int{len(st.Servers), len(st.Hosts), len(st.Vars), len(st.Apps), len(st.Services),
		len(st.Tasks), len(st.Volumes), len(st.Networks), len(st.Leases), len(st.Moves)}
	for i, c := range n {
		if c == 0 {
			t.Fatalf("table %d is empty: the fixture does not cover it", i)
		}
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	src := store.New(nil)
	populate(t, src)
	want := dump(src.View())
	countTables(t, want)
	sink := persist(t, src)

	dst := store.New(nil)
	mustApply(t, dst, store.CmdSetVar, store.Var{Key: "stale", Value: "gone after restore"})
	if err := dst.Restore(io.NopCloser(&sink.Buffer)); err != nil {
		t.Fatalf("restore: %v", err)
	}
	assertSameState(t, want, dump(dst.View()))
	if dst.View().Index() != src.AppliedIndex() || dst.AppliedIndex() != src.AppliedIndex() {
		t.Fatalf("restored index %d/%d, want %d", dst.View().Index(), dst.AppliedIndex(), src.AppliedIndex())
	}
	if dst.View().ClusterID() != mock.ClusterID {
		t.Fatalf("restored cluster id %q", dst.View().ClusterID())
	}

	// The restored store goes on applying from the snapshot's index.
	next := mustApply(t, dst, store.CmdSetVar, store.Var{Key: "after", Value: "restore"})
	if next != src.AppliedIndex()+1 {
		t.Fatalf("first index after restore %d, want %d", next, src.AppliedIndex()+1)
	}
}

// closeRecorder records whether Restore closed its reader.
type closeRecorder struct {
	io.Reader
	closed bool
}

func (c *closeRecorder) Close() error { c.closed = true; return nil }

func TestRestoreClosesReader(t *testing.T) {
	src := store.New(nil)
	populate(t, src)
	rc := &closeRecorder{Reader: &persist(t, src).Buffer}
	if err := store.New(nil).Restore(rc); err != nil || !rc.closed {
		t.Fatalf("restore: %v, closed %v", err, rc.closed)
	}
	bad := &closeRecorder{Reader: strings.NewReader("not json")}
	if err := store.New(nil).Restore(bad); err == nil || !bad.closed {
		t.Fatalf("restore of garbage: %v, closed %v", err, bad.closed)
	}
}

func TestPersistCancelsFailingSink(t *testing.T) {
	s := store.New(nil)
	populate(t, s)
	snap, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &bufSink{failAfter: 100}
	err = snap.Persist(sink)
	if !errors.Is(err, errSinkFull) {
		t.Fatalf("persist on a failing sink: %v, want the sink's error", err)
	}
	if !sink.cancelled || sink.closed {
		t.Fatalf("sink cancelled %v closed %v, want cancelled only", sink.cancelled, sink.closed)
	}
}

func TestSnapshotIsPointInTime(t *testing.T) {
	s := store.New(nil)
	populate(t, s)
	want := dump(s.View())
	index := s.AppliedIndex()
	snap, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, store.CmdSetVar, store.Var{Key: "later", Value: "x"})
	mustApply(t, s, store.CmdDeleteHost, store.NameRef{Name: "host1"})

	sink := &bufSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	dst := store.New(nil)
	if err := dst.Restore(io.NopCloser(&sink.Buffer)); err != nil {
		t.Fatal(err)
	}
	assertSameState(t, want, dump(dst.View()))
	if dst.AppliedIndex() != index {
		t.Fatalf("restored index %d, want the snapshot's %d", dst.AppliedIndex(), index)
	}
}

func TestRestoreRejectsBadStreams(t *testing.T) {
	src := store.New(nil)
	populate(t, src)
	full := persist(t, src).Bytes()
	cases := map[string][]byte{
		"cut":        full[:len(full)/2],
		"no end":     full[:bytes.LastIndex(full[:len(full)-1], []byte("\n"))+1],
		"format":     bytes.Replace(full, []byte(`"format":1`), []byte(`"format":99`), 1),
		"table":      bytes.Replace(full, []byte(`"table":"hosts"`), []byte(`"table":"ghosts"`), 1),
		"empty":      nil,
		"bad object": bytes.Replace(full, []byte(`"cpus":4`), []byte(`"cpus":"four"`), 1),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			dst := store.New(nil)
			mustApply(t, dst, store.CmdSetVar, store.Var{Key: "kept", Value: "yes"})
			before := dump(dst.View())
			if err := dst.Restore(io.NopCloser(bytes.NewReader(data))); err == nil {
				t.Fatal("restore accepted a bad stream")
			}
			assertSameState(t, before, dump(dst.View()))
			if dst.AppliedIndex() != 1 {
				t.Fatalf("applied index %d after failed restore, want 1", dst.AppliedIndex())
			}
		})
	}
}

func TestRestoreResetsEvents(t *testing.T) {
	src := store.New(nil)
	populate(t, src)
	sink := persist(t, src)

	dst := store.New(nil)
	mustApply(t, dst, store.CmdSetVar, store.Var{Key: "a", Value: "1"})
	mustApply(t, dst, store.CmdSetVar, store.Var{Key: "b", Value: "2"})
	_, changed, _ := dst.Events(2)
	if err := dst.Restore(io.NopCloser(&sink.Buffer)); err != nil {
		t.Fatal(err)
	}
	if !closed(changed) {
		t.Fatal("restore did not close the changed channel")
	}
	if _, _, err := dst.Events(1); !errors.Is(err, store.ErrEventsTruncated) {
		t.Fatalf("events since 1 after restore: %v, want truncated", err)
	}
	restored := src.AppliedIndex()
	events, _, err := dst.Events(restored)
	if err != nil || len(events) != 0 {
		t.Fatalf("events since the restored index: %v %v, want none", eventTypes(events), err)
	}
	mustApply(t, dst, store.CmdSetVar, store.Var{Key: "c", Value: "3"})
	events, _, err = dst.Events(restored)
	if err != nil || len(events) != 1 || events[0].Index != restored+1 {
		t.Fatalf("events after restore: %v %v", eventTypes(events), err)
	}
}
