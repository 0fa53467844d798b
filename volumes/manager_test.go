package volumes

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/clusterctl/clusterctl/agentapi"
	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/internal/testcreds"
	"github.com/clusterctl/clusterctl/pki"
	"github.com/clusterctl/clusterctl/store"
)

// newTestManager returns a manager over a store that applies commands
// directly, with hosts host1 and host2 up and served by agent (if set).
func newTestManager(t *testing.T, agent http.Handler) *Manager {
	t.Helper()
	st := store.New(nil)
	apply := func(b []byte) (uint64, error) {
		index := st.AppliedIndex() + 1
		res := st.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: b, AppendedAt: time.Now()})
		return index, store.ResponseError(res)
	}
	agentURL := "https://127.0.0.1:1" // nothing listens: a call fails
	if agent != nil {
		agentURL = testcreds.Serve(t, testcreds.New(t, pki.RoleWorker, "host1"), agent, pki.RoleManager)
	}
	for _, name := range []string{"host1", "host2"} {
		b, err := store.Encode(store.CmdRegisterHost, store.Host{Name: name, Addr: "10.0.0.1", AgentAPI: agentURL})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := apply(b); err != nil {
			t.Fatal(err)
		}
	}
	return New(st, apply, testcreds.New(t, pki.RoleManager, "m1"), nil)
}

func TestCreateIsIdempotentAndRefusesOtherOptions(t *testing.T) {
	m := newTestManager(t, nil)
	req := api.VolumeCreate{Name: "db", Options: map[string]string{"backend": "block", "size": "64MiB"}}
	first, err := m.Create(req)
	if err != nil {
		t.Fatal(err)
	}
	if first.Backend != store.VolumeBlock || first.SizeBytes != 64<<20 || first.OwnerHost != "" {
		t.Fatalf("created %+v", first)
	}
	again, err := m.Create(req)
	if err != nil || again.ModifyIndex != first.ModifyIndex {
		t.Fatalf("create again: %+v, %v; want the same volume", again, err)
	}
	_, err = m.Create(api.VolumeCreate{Name: "db"})
	if !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "exists with other options") {
		t.Fatalf("create with other options: %v", err)
	}
}

func TestCreateRefusesBadInput(t *testing.T) {
	m := newTestManager(t, nil)
	for _, tc := range []struct {
		req  api.VolumeCreate
		want string
	}{
		{api.VolumeCreate{Name: "a/b"}, "invalid volume name"},
		{api.VolumeCreate{Name: "a..b"}, "invalid volume name"},
		{api.VolumeCreate{Name: ".."}, "invalid volume name"},
		{api.VolumeCreate{Name: ""}, "invalid volume name"},
		{api.VolumeCreate{Name: "v", Options: map[string]string{"backend": "nfs"}}, `unknown volume backend "nfs"`},
		{api.VolumeCreate{Name: "v", Options: map[string]string{"backend": "block", "size": "lots"}}, `invalid volume size "lots"`},
		{api.VolumeCreate{Name: "v", Options: map[string]string{"backend": "block", "size": "1KiB"}}, `invalid volume size "1KiB"`},
		{api.VolumeCreate{Name: "v", Options: map[string]string{"size": "1GiB"}}, "size is for block volumes"},
		{api.VolumeCreate{Name: "v", Options: map[string]string{"colour": "red"}}, `unknown volume option "colour"`},
	} {
		_, err := m.Create(tc.req)
		if !errors.Is(err, store.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("create %+v: %v, want %q", tc.req, err, tc.want)
		}
	}
	if n := len(m.store.View().Volumes()); n != 0 {
		t.Errorf("%d volumes created from bad input", n)
	}
}

func TestAttachLease(t *testing.T) {
	m := newTestManager(t, nil)
	if _, err := m.Create(api.VolumeCreate{Name: "db"}); err != nil {
		t.Fatal(err)
	}
	vol, err := m.Attach("db", "host1")
	if err != nil || vol.OwnerHost != "host1" || vol.Generation != 1 {
		t.Fatalf("attach: %+v, %v", vol, err)
	}
	again, err := m.Attach("db", "host1")
	if err != nil || again.Generation != 1 {
		t.Fatalf("attach again by the holder: %+v, %v; want generation 1 kept", again, err)
	}
	_, err = m.Attach("db", "host2")
	if !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "attached to host1 (lease generation 1)") {
		t.Fatalf("attach by another host: %v", err)
	}
	if _, err := m.Attach("db", "host9"); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("attach to an unknown host: %v", err)
	}
	if _, err := m.Attach("nope", "host1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("attach an unknown volume: %v", err)
	}
}

// A concurrent attach that commits between another's read and its commit
// makes the other's Check fail; it reads again and is refused by owner.
func TestAttachRaceExactlyOneWins(t *testing.T) {
	m := newTestManager(t, nil)
	if _, err := m.Create(api.VolumeCreate{Name: "db", Options: map[string]string{"backend": "block"}}); err != nil {
		t.Fatal(err)
	}
	apply := m.apply
	raced := false
	m.apply = func(b []byte) (uint64, error) {
		if !raced { // host2's attach lands first, after host1 read the volume
			raced = true
			vol, _ := m.store.View().Volume("db")
			vol.OwnerHost, vol.Generation = "host2", vol.Generation+1
			if _, err := apply(m.putChecked(vol, vol.ModifyIndex)); err != nil {
				t.Fatal(err)
			}
		}
		return apply(b)
	}
	_, err := m.Attach("db", "host1")
	if !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "attached to host2") {
		t.Fatalf("losing attach: %v", err)
	}
	if vol, _ := m.store.View().Volume("db"); vol.OwnerHost != "host2" || vol.Generation != 1 {
		t.Fatalf("volume %+v, want host2's lease", vol)
	}
}

func TestRemove(t *testing.T) {
	removed := []string{}
	agent := http.NewServeMux()
	agent.HandleFunc("DELETE /v1/volumes/{name}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("name") == "busy" {
			agentapi.WriteError(w, http.StatusConflict, errors.New("volume busy is mounted by 1 container"))
			return
		}
		removed = append(removed, r.PathValue("name"))
		agentapi.WriteJSON(w, http.StatusOK, struct{}{})
	})
	m := newTestManager(t, agent)
	for _, name := range []string{"db", "busy"} {
		if _, err := m.Create(api.VolumeCreate{Name: name}); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Attach(name, "host1"); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	if err := m.Remove(ctx, "busy"); !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "mounted") {
		t.Fatalf("remove a mounted volume: %v", err)
	}
	if _, ok := m.store.View().Volume("busy"); !ok {
		t.Fatal("a volume the agent could not remove is gone from the store")
	}
	if err := m.Remove(ctx, "db"); err != nil {
		t.Fatal(err)
	}
	// host1 removes the data, host2 (the same test agent) a stray copy.
	if _, ok := m.store.View().Volume("db"); ok || !slices.Equal(removed, []string{"db", "db"}) {
		t.Fatalf("after remove: in store %v, agent removed %v", ok, removed)
	}
	if err := m.Remove(ctx, "db"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("remove twice: %v", err)
	}
}
