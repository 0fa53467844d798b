package store_test

import (
	"io"
	"reflect"
	"testing"

	"github.com/clusterctl/clusterctl/store"
)

// The cluster's CA is recorded once (another CA would orphan every
// certificate it issued), its tokens may change, and a snapshot keeps it.
func TestSecurityIsSetOnceAndSurvivesSnapshots(t *testing.T) {
	s := store.New(nil)
	if _, ok := s.View().Security(); ok {
		t.Fatal("a new store has a CA")
	}
	first := store.Security{CACert: []byte("ca-1"), SealedCAKey: []byte("sealed"), Tokens: map[string][]byte{"worker": []byte("w1")}}
	mustApply(t, s, store.CmdSetSecurity, first)
	rotated := first
	rotated.Tokens = map[string][]byte{"worker": []byte("w2")}
	mustApply(t, s, store.CmdSetSecurity, rotated)
	mustRefuse(t, s, store.CmdSetSecurity, store.Security{CACert: []byte("ca-2"), SealedCAKey: []byte("x")}, store.ErrConflict)
	mustRefuse(t, s, store.CmdSetSecurity, store.Security{}, store.ErrInvalid)

	sink := persist(t, s)
	restored := store.New(nil)
	if err := restored.Restore(io.NopCloser(&sink.Buffer)); err != nil {
		t.Fatal(err)
	}
	got, ok := restored.View().Security()
	if !ok || !reflect.DeepEqual(got, rotated) {
		t.Errorf("after a snapshot: %+v (%v), want %+v", got, ok, rotated)
	}
}
