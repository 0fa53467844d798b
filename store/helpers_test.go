package store_test

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/clusterctl/clusterctl/store"
)

// appendedAt is the leader append time of the logs tests build.
var appendedAt = time.Date(2025, time.May, 6, 7, 8, 9, 0, time.UTC)

// encode encodes a command or fails the test.
func encode(t testing.TB, typ store.CommandType, payload any) []byte {
	t.Helper()
	data, err := store.Encode(typ, payload)
	if err != nil {
		t.Fatalf("encode %s: %v", typ, err)
	}
	return data
}

// applyData applies raw entry data at the next index and returns the result.
func applyData(t testing.TB, s *store.Store, data []byte) *store.ApplyResult {
	t.Helper()
	index := s.AppliedIndex() + 1
	l := &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data, AppendedAt: appendedAt}
	resp := s.Apply(l)
	res, ok := resp.(*store.ApplyResult)
	if !ok || res == nil {
		t.Fatalf("apply at %d: response %T, want *store.ApplyResult", index, resp)
	}
	if res.Index != index {
		t.Fatalf("apply result index %d, want %d", res.Index, index)
	}
	return res
}

// apply applies one command at the next index and returns the result.
func apply(t testing.TB, s *store.Store, typ store.CommandType, payload any) *store.ApplyResult {
	t.Helper()
	return applyData(t, s, encode(t, typ, payload))
}

// mustApply applies one command and fails the test if it is refused.
func mustApply(t testing.TB, s *store.Store, typ store.CommandType, payload any) uint64 {
	t.Helper()
	res := apply(t, s, typ, payload)
	if res.Err != nil {
		t.Fatalf("apply %s: refused: %v", typ, res.Err)
	}
	return res.Index
}

// mustRefuse applies one command and fails the test unless it is refused
// with want (errors.Is) and leaves the state unchanged.
func mustRefuse(t testing.TB, s *store.Store, typ store.CommandType, payload any, want error) error {
	t.Helper()
	before := dump(s.View())
	res := apply(t, s, typ, payload)
	if !errors.Is(res.Err, want) {
		t.Fatalf("apply %s: err %v, want %v", typ, res.Err, want)
	}
	after := s.View()
	if after.Index() != res.Index {
		t.Fatalf("refused %s: view index %d, want %d (a refused entry still counts as applied)", typ, after.Index(), res.Index)
	}
	assertSameState(t, before, dump(after))
	return res.Err
}

// state is every table of a view, for comparing whole stores.
type state struct {
	ClusterID string
	Servers   []store.Server
	Hosts     []store.Host
	Vars      []store.Var
	Apps      []store.App
	Services  []store.Service
	Tasks     []store.Task
	Volumes   []store.Volume
	Networks  []store.Network
	Leases    []store.IPLease
	Moves     []store.Move
}

// dump reads every table of v.
func dump(v *store.View) state {
	return state{
		ClusterID: v.ClusterID(),
		Servers:   v.Servers(),
		Hosts:     v.Hosts(),
		Vars:      v.Vars(""),
		Apps:      v.Apps(),
		Services:  v.Services(""),
		Tasks:     v.Tasks(""),
		Volumes:   v.Volumes(),
		Networks:  v.Networks(),
		Leases:    v.Leases(""),
		Moves:     v.Moves(),
	}
}

// bufSink is a raft.SnapshotSink over a buffer that records how it ended.
type bufSink struct {
	bytes.Buffer
	failAfter int // fail writes once the buffer would exceed this (0: never)
	closed    bool
	cancelled bool
}

var errSinkFull = errors.New("sink full")

func (s *bufSink) Write(p []byte) (int, error) {
	if s.failAfter > 0 && s.Len()+len(p) > s.failAfter {
		return 0, errSinkFull
	}
	return s.Buffer.Write(p)
}

func (s *bufSink) ID() string    { return "test" }
func (s *bufSink) Close() error  { s.closed = true; return nil }
func (s *bufSink) Cancel() error { s.cancelled = true; return nil }

var _ raft.SnapshotSink = (*bufSink)(nil)

// assertSameState fails the test if two states differ.
func assertSameState(t testing.TB, want, got state) {
	t.Helper()
	if !reflect.DeepEqual(want, got) {
		t.Fatalf("state differs:\nwant %+v\ngot  %+v", want, got)
	}
}
