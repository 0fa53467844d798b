package orchestrator

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/scheduler"
	"github.com/clusterctl/clusterctl/spec"
	specmock "github.com/clusterctl/clusterctl/spec/mock"
	"github.com/clusterctl/clusterctl/store"
	"github.com/clusterctl/clusterctl/store/mock"
)

// harness is an orchestrator over a store that applies commands directly
// (no Raft), with fake engines that have the sample images.
type harness struct {
	t     *testing.T
	store *store.Store
	o     *Orchestrator
}

func newHarness(t *testing.T, hosts int) *harness {
	t.Helper()
	engine := fakeEngine(t, "sample/kvdb:latest", "sample/web:latest")
	h := &harness{t: t, store: store.New(nil)}
	h.o = New(Options{Store: h.store, Apply: h.apply})
	h.o.stack = newTestStack()
	for _, host := range mock.Hosts(hosts) {
		host.Docker = engine
		host.Containers = nil
		h.must(store.CmdRegisterHost, host)
	}
	return h
}

// apply applies an entry at the next index, as Raft would.
func (h *harness) apply(b []byte) (uint64, error) {
	index := h.store.AppliedIndex() + 1
	res := h.store.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: b, AppendedAt: time.Now()})
	return index, store.ResponseError(res)
}

func (h *harness) must(t store.CommandType, payload any) {
	h.t.Helper()
	b, err := store.Encode(t, payload)
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.apply(b); err != nil {
		h.t.Fatalf("apply %s: %v", t, err)
	}
}

// fakeEngine serves the few Docker API calls planning makes: the version
// ping and image inspection, for the given images only.
func fakeEngine(t *testing.T, images ...string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.41")
		if strings.HasSuffix(r.URL.Path, "/_ping") {
			return
		}
		for _, img := range images {
			if strings.Contains(r.URL.Path, "/images/"+img+"/json") {
				_, _ = w.Write([]byte(`{"Id":"sha256:1"}`))
				return
			}
		}
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"message":"No such image"}`))
	}))
	t.Cleanup(srv.Close)
	return "tcp://" + srv.Listener.Addr().String()
}

// statelessApp is the mock app without its cluster volume, so that its
// tasks can go anywhere.
func statelessApp() spec.App {
	a := specmock.App()
	a.Volumes = nil
	a.Services[0].Mounts = nil
	return a
}

func (h *harness) tasks(service string) map[int]store.Task {
	out := map[int]store.Task{}
	for _, t := range h.store.View().Tasks("") {
		if t.Service == service {
			out[t.Slot] = t
		}
	}
	return out
}

func TestDeployPlacesSpreadsAndKeeps(t *testing.T) {
	h := newHarness(t, 3)
	a := statelessApp()
	a.Services[1].Replicas = 3
	res, err := h.o.Deploy(context.Background(), a, "", false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Index == 0 || len(res.Tasks) != 4 {
		t.Fatalf("plan %+v", res)
	}
	webHosts := map[string]bool{}
	for _, task := range h.tasks("web") {
		webHosts[task.DesiredHost] = true
		if task.Version != a.Services[1].Version() || task.DesiredState != store.TaskRunning {
			t.Errorf("task %+v", task)
		}
	}
	if len(webHosts) != 3 {
		t.Errorf("web tasks on %v, want spread over 3 hosts", webHosts)
	}

	// The same spec again changes nothing.
	res, err = h.o.Deploy(context.Background(), a, "", false)
	if err != nil {
		t.Fatal(err)
	}
	for _, pt := range res.Tasks {
		if pt.Action != api.ActionKeep {
			t.Errorf("redeploy: %s %s, want keep", pt.Task, pt.Action)
		}
	}

	// A new image: web tasks are updated in place (rolled by the
	// reconciler), db stays.
	a.Services[1].Image = "sample/web:v2"
	res, err = h.o.Deploy(context.Background(), a, "", true)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, pt := range res.Tasks {
		got[pt.Task] = pt.Action
	}
	if got["db.1"] != api.ActionKeep || got["web.2"] != api.ActionUpdate {
		t.Errorf("actions %v", got)
	}
	// web:v2 is on no host: a dry run reports it as a problem, up refuses.
	if len(res.Problems) == 0 || !strings.Contains(res.Problems[0], "image sample/web:v2 is not on host") {
		t.Errorf("problems %q", res.Problems)
	}
	if _, err := h.o.Deploy(context.Background(), a, "", false); err == nil {
		t.Error("deploy of an image no host has was accepted")
	}
}

func TestDeployRefusesWhatCannotBePlaced(t *testing.T) {
	h := newHarness(t, 3)
	a := statelessApp()
	a.Services[1].Replicas = 4
	before := h.store.View().Index()
	res, err := h.o.Deploy(context.Background(), a, "", false)
	if err == nil {
		t.Fatal("deploy of 4 web tasks publishing 8080 on 3 hosts succeeded")
	}
	if len(res.Failures) != 1 || res.Failures[0] != "web.4: no host fits: 3 hosts: port 8080/tcp in use" {
		t.Errorf("failures %q", res.Failures)
	}
	if h.store.View().Index() != before {
		t.Error("a refused plan changed the store")
	}
}

func TestDeployRefusesMissingImage(t *testing.T) {
	h := newHarness(t, 2)
	a := statelessApp()
	a.Services[0].Image = "nosuch:1"
	before := h.store.View().Index()
	res, err := h.o.Deploy(context.Background(), a, "", false)
	if err == nil || !strings.Contains(err.Error(), "image nosuch:1 is not on host") {
		t.Fatalf("err %v", err)
	}
	if len(res.Problems) != 1 || h.store.View().Index() != before {
		t.Errorf("problems %q, store changed: %v", res.Problems, h.store.View().Index() != before)
	}
}

func TestScaleDownMarksHighestSlots(t *testing.T) {
	h := newHarness(t, 3)
	a := statelessApp()
	a.Services[1].Replicas = 3
	if _, err := h.o.Deploy(context.Background(), a, "", false); err != nil {
		t.Fatal(err)
	}
	if _, err := h.o.Scale(context.Background(), "hello", "web", 1, false); err != nil {
		t.Fatal(err)
	}
	web := h.tasks("web")
	if web[1].DesiredState != store.TaskRunning || web[2].DesiredState != store.TaskShutdown || web[3].DesiredState != store.TaskShutdown {
		t.Errorf("after scale to 1: %v %v %v", web[1].DesiredState, web[2].DesiredState, web[3].DesiredState)
	}
	if _, err := h.o.Scale(context.Background(), "hello", "nosuch", 1, false); err == nil {
		t.Error("scaling an unknown service worked")
	}
}

// setContainers makes a host report containers, as its agent would.
func (h *harness) setContainers(host string, cs ...store.Container) {
	h.must(store.CmdHostHeartbeat, store.HostHeartbeat{Name: host, At: time.Now(), Containers: cs, ContainersChanged: true})
}

// reported is a container of a task as the agent reports it.
func reported(t store.Task, state, health string, exit int) store.Container {
	return store.Container{ID: "c-" + t.ID, Name: t.ID, State: state, Health: health, ExitCode: exit,
		Labels: map[string]string{spec.LabelTask: t.ID, spec.LabelVersion: t.Version, spec.LabelManagedBy: "true"}}
}

// decided runs the decision part of a pass.
func (h *harness) decided() *pass {
	p := newPass(h.store.View(), time.Now())
	h.o.decide(p)
	return p
}

func TestDependenciesWaitForHealthy(t *testing.T) {
	h := newHarness(t, 2)
	if _, err := h.o.Deploy(context.Background(), statelessApp(), "", false); err != nil {
		t.Fatal(err)
	}
	p := h.decided()
	kinds := map[string]actionKind{}
	for _, a := range p.actions {
		kinds[a.task.Service+"/"+a.key[:min(len(a.key), 8)]] = a.kind
	}
	// db is created; the web tasks wait, their networks made meanwhile.
	if len(p.actions) != 3 || p.actions[0].task.Service != "db" || p.actions[0].kind != actCreate ||
		p.actions[1].kind != actPrepare || p.actions[2].kind != actPrepare {
		t.Fatalf("actions %v, want db created and web prepared", kinds)
	}
	web := h.tasks("web")[1]
	if !hasUpdate(p, web.ID, "waiting for db.1 to be healthy") {
		t.Errorf("updates %+v", p.updates)
	}

	db := h.tasks("db")[1]
	h.setContainers(db.DesiredHost, reported(db, "running", "healthy", 0))
	db.ObservedState, db.Health, db.Host, db.ContainerID = store.TaskRunning, "healthy", db.DesiredHost, "c-"+db.ID
	h.must(store.CmdPutTask, db)
	p = h.decided()
	if len(p.actions) != 2 || p.actions[0].task.Service != "web" || p.actions[0].kind != actCreate || p.actions[1].task.Service != "web" {
		t.Fatalf("actions %+v, want both web tasks created", p.actions)
	}
}

func hasUpdate(p *pass, id, msg string) bool {
	for _, u := range p.updates {
		if u.ID == id && u.Message == msg {
			return true
		}
	}
	return false
}

func TestHostDownReplacesStatelessAndHoldsStateful(t *testing.T) {
	h := newHarness(t, 3)
	a := specmock.App() // db mounts a cluster volume
	a.Services[1].Replicas = 1
	if _, err := h.o.Deploy(context.Background(), a, "", false); err != nil {
		t.Fatal(err)
	}
	db, web := h.tasks("db")[1], h.tasks("web")[1]
	down := []string{db.DesiredHost}
	if web.DesiredHost != db.DesiredHost {
		down = append(down, web.DesiredHost)
	}
	h.must(store.CmdSetHostState, store.SetHostState{Names: down, State: store.HostDown})

	p := h.decided()
	if err := h.o.placeTasks(p); err != nil {
		t.Fatal(err)
	}
	if err := h.o.commitObserved(p); err != nil {
		t.Fatal(err)
	}
	newWeb := h.tasks("web")[1]
	if newWeb.DesiredHost == web.DesiredHost || newWeb.DesiredHost == "" {
		t.Errorf("web still on %q after its host went down", newWeb.DesiredHost)
	}
	newDB := h.tasks("db")[1]
	if newDB.DesiredHost != db.DesiredHost || newDB.ObservedState != store.TaskLost || !strings.Contains(newDB.Message, "cluster volume hello_data") {
		t.Errorf("db %+v, want it waiting on %s", newDB, db.DesiredHost)
	}
}

func TestRestartPolicy(t *testing.T) {
	for _, c := range []struct {
		name    string
		policy  spec.RestartPolicy
		exit    int
		restart bool
	}{
		{"always after success", spec.RestartPolicy{Condition: spec.RestartAlways}, 0, true},
		{"never", spec.RestartPolicy{Condition: spec.RestartNever}, 1, false},
		{"on-failure, failed", spec.RestartPolicy{Condition: spec.RestartOnFailure}, 2, true},
		{"on-failure, succeeded", spec.RestartPolicy{Condition: spec.RestartOnFailure}, 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, 1)
			a := statelessApp()
			a.Services = a.Services[:1]
			a.Services[0].Restart = c.policy
			if _, err := h.o.Deploy(context.Background(), a, "", false); err != nil {
				t.Fatal(err)
			}
			db := h.tasks("db")[1]
			db.ObservedState, db.Host, db.ContainerID = store.TaskExited, db.DesiredHost, "c-"+db.ID
			h.must(store.CmdPutTask, db)
			h.setContainers(db.DesiredHost, reported(db, "exited", "", c.exit))
			p := h.decided()
			started := len(p.actions) == 1 && p.actions[0].kind == actStart && p.actions[0].restart
			if started != c.restart {
				t.Errorf("restart %v, want %v (actions %+v, updates %+v)", started, c.restart, p.actions, p.updates)
			}
		})
	}
}

func TestRollingUpdateOneAtATime(t *testing.T) {
	h := newHarness(t, 3)
	a := statelessApp()
	a.Services[1].Replicas = 3
	a.Services[1].DependsOn = nil
	if _, err := h.o.Deploy(context.Background(), a, "", false); err != nil {
		t.Fatal(err)
	}
	for _, task := range h.tasks("web") {
		task.ObservedState, task.Host = store.TaskRunning, task.DesiredHost
		h.must(store.CmdPutTask, task)
	}
	a.Services[1].Environment = append(a.Services[1].Environment, "NEW=1")
	if _, err := h.o.Deploy(context.Background(), a, "", false); err != nil {
		t.Fatal(err)
	}
	p := h.decided()
	bumped := 0
	for _, u := range p.updates {
		if u.Service == "web" && u.Version == a.Services[1].Version() {
			bumped++
		}
	}
	if bumped != 1 {
		t.Errorf("%d web tasks moved to the new version at once, want 1", bumped)
	}
}

func TestOrphansAreRemoved(t *testing.T) {
	h := newHarness(t, 1)
	ghost := store.Task{ID: "gone.web.1.x", Version: "v"}
	h.setContainers("host1", reported(ghost, "running", "", 0))
	p := h.decided()
	if len(p.actions) != 1 || p.actions[0].kind != actRemove || p.actions[0].container != "c-gone.web.1.x" {
		t.Errorf("actions %+v", p.actions)
	}
}

// newTestStack visits hosts in order, so placements are exact.
func newTestStack() *scheduler.Stack { return scheduler.NewStack(scheduler.StackOptions{}) }
