package volumes

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/clusterctl/clusterctl/agentapi"
	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/store"
)

// fakeAgent answers the agent API's volume steps and records them.
type fakeAgent struct {
	mu      sync.Mutex
	calls   []string
	syncErr string // a final sync fails with this, if set
}

func (f *fakeAgent) record(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, s)
}

func (f *fakeAgent) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/volumes/{name}/sync", func(w http.ResponseWriter, r *http.Request) {
		var req agentapi.SyncRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		step := "precopy"
		if req.Final {
			step = "final"
		}
		f.record(step + " " + r.PathValue("name") + " to " + req.TargetHost)
		enc := json.NewEncoder(w)
		_ = enc.Encode(agentapi.SyncEvent{Progress: &agentapi.VolumeProgress{Volume: r.PathValue("name"), Step: step, Round: 1}})
		if req.Final && f.syncErr != "" {
			_ = enc.Encode(agentapi.SyncEvent{Error: f.syncErr, Status: http.StatusBadGateway})
			return
		}
		_ = enc.Encode(agentapi.SyncEvent{Result: &agentapi.SyncResult{Rounds: 1, Bytes: 100, BytesSent: 100}})
	})
	for _, op := range []string{"attach", "detach"} {
		mux.HandleFunc("POST /v1/volumes/{name}/"+op, func(w http.ResponseWriter, r *http.Request) {
			f.record(op + " " + r.PathValue("name"))
			agentapi.WriteJSON(w, http.StatusOK, struct{}{})
		})
	}
	mux.HandleFunc("DELETE /v1/volumes/{name}", func(w http.ResponseWriter, r *http.Request) {
		f.record("remove " + r.PathValue("name"))
		agentapi.WriteJSON(w, http.StatusOK, struct{}{})
	})
	return mux
}

// attachedVolume creates a volume of backend and gives host1 its lease.
func attachedVolume(t *testing.T, m *Manager, name, backend string) {
	t.Helper()
	if _, err := m.Create(api.VolumeCreate{Name: name, Options: map[string]string{"backend": backend}}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Attach(name, "host1"); err != nil {
		t.Fatal(err)
	}
}

func TestMoveCopyVolume(t *testing.T) {
	agent := &fakeAgent{}
	m := newTestManager(t, agent.handler())
	attachedVolume(t, m, "db", store.VolumeCopy)
	var steps []string
	rep, err := m.Move(context.Background(), "db", "host2", false, func(p agentapi.VolumeProgress) { steps = append(steps, p.Step) })
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"precopy db to host2", "final db to host2", "attach db", "remove db"}
	if strings.Join(agent.calls, ",") != strings.Join(want, ",") {
		t.Errorf("agent calls %v, want %v", agent.calls, want)
	}
	vol, _ := m.store.View().Volume("db")
	if vol.OwnerHost != "host2" || vol.Generation != 2 || vol.MovingTo != "" || vol.SizeBytes != 100 {
		t.Errorf("volume after the move: %+v, want host2's, generation 2, not moving, its size measured", vol)
	}
	if rep.From != "host1" || rep.To != "host2" || rep.Generation != 2 || rep.Rounds != 2 || rep.SourceKept {
		t.Errorf("report %+v", rep)
	}
	if len(steps) == 0 || steps[0] != "precopy" {
		t.Errorf("progress steps %v", steps)
	}
}

func TestMoveKeepsSourceWithKeep(t *testing.T) {
	agent := &fakeAgent{}
	m := newTestManager(t, agent.handler())
	attachedVolume(t, m, "db", store.VolumeCopy)
	rep, err := m.Move(context.Background(), "db", "host2", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range agent.calls {
		if strings.HasPrefix(c, "remove") {
			t.Errorf("--keep removed the source: %v", agent.calls)
		}
	}
	if !rep.SourceKept {
		t.Errorf("report %+v does not say the source was kept", rep)
	}
}

func TestFailedFinalSyncLeavesVolumeWhereItWas(t *testing.T) {
	agent := &fakeAgent{syncErr: "target host2: connection reset"}
	m := newTestManager(t, agent.handler())
	attachedVolume(t, m, "db", store.VolumeCopy)
	_, err := m.Move(context.Background(), "db", "host2", false, nil)
	if err == nil || !strings.Contains(err.Error(), "connection reset") {
		t.Fatalf("move: %v, want the target's error", err)
	}
	vol, _ := m.store.View().Volume("db")
	if vol.OwnerHost != "host1" || vol.Generation != 1 || vol.MovingTo != "" {
		t.Errorf("volume after a failed move: %+v, want host1's, generation 1, not moving", vol)
	}
	if _, err := m.Attach("db", "host1"); err != nil {
		t.Errorf("host1 cannot mount its volume after a failed move: %v", err)
	}
}

func TestMoveBlockVolumeDetachesAndAttaches(t *testing.T) {
	agent := &fakeAgent{}
	m := newTestManager(t, agent.handler())
	attachedVolume(t, m, "pg", store.VolumeBlock)
	if _, err := m.Move(context.Background(), "pg", "host2", false, nil); err != nil {
		t.Fatal(err)
	}
	if want := "detach pg,attach pg"; strings.Join(agent.calls, ",") != want {
		t.Errorf("agent calls %v, want %s", agent.calls, want)
	}
	vol, _ := m.store.View().Volume("pg")
	if vol.OwnerHost != "host2" || vol.Generation != 2 {
		t.Errorf("volume %+v", vol)
	}
	// Detach releases the lease; attach takes it again with a new generation.
	if err := m.Detach(context.Background(), "pg"); err != nil {
		t.Fatal(err)
	}
	if vol, _ := m.store.View().Volume("pg"); vol.OwnerHost != "" {
		t.Errorf("after detach: %+v", vol)
	}
	if err := m.AttachOn(context.Background(), "pg", "host1"); err != nil {
		t.Fatal(err)
	}
	if vol, _ := m.store.View().Volume("pg"); vol.OwnerHost != "host1" || vol.Generation != 3 {
		t.Errorf("after attach: %+v", vol)
	}
}

func TestMoveRefusals(t *testing.T) {
	agent := &fakeAgent{}
	m := newTestManager(t, agent.handler())
	attachedVolume(t, m, "db", store.VolumeCopy)
	ctx := context.Background()
	for _, tc := range []struct {
		vol, host string
		kind      error
		want      string
	}{
		{"nope", "host2", store.ErrNotFound, `no volume "nope"`},
		{"db", "host9", store.ErrNotFound, `no host "host9"`},
		{"db", "host1", store.ErrConflict, "already attached to host1"},
	} {
		_, err := m.Move(ctx, tc.vol, tc.host, false, nil)
		if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("move %s to %s: %v, want %q", tc.vol, tc.host, err, tc.want)
		}
	}
	if err := m.Detach(ctx, "db"); !errors.Is(err, store.ErrInvalid) || !strings.Contains(err.Error(), "copy volume") {
		t.Errorf("detach a copy volume: %v", err)
	}
	if len(agent.calls) != 0 {
		t.Errorf("refused moves reached the agent: %v", agent.calls)
	}
}

func TestNoMountWhileMoving(t *testing.T) {
	m := newTestManager(t, nil)
	attachedVolume(t, m, "db", store.VolumeCopy)
	if _, err := m.mark("db", "host2"); err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"host1", "host2"} {
		if _, err := m.Attach("db", host); !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "being moved") {
			t.Errorf("mount on %s during a move: %v", host, err)
		}
	}
	m.unmark("db", "host2")
	if _, err := m.Attach("db", "host1"); err != nil {
		t.Errorf("mount after the mark was cleared: %v", err)
	}
}
