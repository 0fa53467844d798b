package server

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/orchestrator"
	"github.com/clusterctl/clusterctl/spec"
	"github.com/clusterctl/clusterctl/store"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
)

// maxAppBody bounds a deploy request: a Compose file and its spec.
const maxAppBody = 4 << 20

// handleDeploy creates or updates an app, or plans it (dry run).
func (s *Server) handleDeploy(w http.ResponseWriter, r *http.Request) {
	var req api.Deploy
	if err := decodeLimit(r, &req, maxAppBody); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	if req.App.Name != r.PathValue("name") {
		writeError(w, http.StatusBadRequest, fmt.Errorf("app name %q in the body differs from %q in the path", req.App.Name, r.PathValue("name")))
		return
	}
	if err := req.App.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	res, err := s.orch.Deploy(r.Context(), req.App, req.Compose, req.DryRun)
	s.writePlan(w, res, err, req.DryRun)
}

// handleScale sets one service's replica count.
func (s *Server) handleScale(w http.ResponseWriter, r *http.Request) {
	var req api.Scale
	if err := decode(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	res, err := s.orch.Scale(r.Context(), r.PathValue("name"), req.Service, req.Replicas, req.DryRun)
	s.writePlan(w, res, err, req.DryRun)
}

// writePlan answers a deploy or scale: the plan, or why it was refused. A
// dry run answers 200 with its failures: the caller asked for them.
func (s *Server) writePlan(w http.ResponseWriter, res api.PlanResult, err error, dryRun bool) {
	switch {
	case err == nil, dryRun && errors.Is(err, orchestrator.ErrRefused):
		writeJSON(w, http.StatusOK, res)
	case errors.Is(err, orchestrator.ErrRefused):
		lines := append(slices.Clone(res.Failures), res.Problems...)
		writeError(w, http.StatusConflict, errors.New(strings.Join(lines, "\n")))
	default:
		writeErrorFor(w, asRefusal(err))
	}
}

// asRefusal marks errors the store would refuse as refusals, so that they
// get their 4xx code.
func asRefusal(err error) error {
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) || errors.Is(err, store.ErrConflict) {
		var refused *refusedError
		if !errors.As(err, &refused) {
			return &refusedError{err: err}
		}
	}
	return err
}

// handleDown marks an app for removal.
func (s *Server) handleDown(w http.ResponseWriter, r *http.Request) {
	volumes, _ := strconv.ParseBool(r.URL.Query().Get("volumes"))
	index, err := s.orch.Down(r.PathValue("name"), volumes)
	if err != nil {
		writeErrorFor(w, asRefusal(err))
		return
	}
	writeJSON(w, http.StatusOK, api.WriteResponse{Index: index})
}

// handleApps lists the apps with task counts.
func (s *Server) handleApps(w http.ResponseWriter, _ *http.Request) {
	v := s.store.View()
	out := api.AppsResponse{Index: v.Index(), Apps: []api.AppSummary{}}
	for _, a := range v.Apps() {
		out.Apps = append(out.Apps, summarize(v, a))
	}
	writeJSON(w, http.StatusOK, out)
}

// handleApp returns one app's summary.
func (s *Server) handleApp(w http.ResponseWriter, r *http.Request) {
	v := s.store.View()
	a, ok := v.App(r.PathValue("name"))
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Errorf("no app named %q", r.PathValue("name")))
		return
	}
	writeJSON(w, http.StatusOK, summarize(v, a))
}

// summarize counts an app's services and tasks.
func summarize(v *store.View, a store.App) api.AppSummary {
	sum := api.AppSummary{Name: a.Name, Services: len(v.Services(a.Name)), Removing: a.Removing}
	for _, t := range v.Tasks(a.Name) {
		sum.Tasks++
		if t.ObservedState == store.TaskRunning {
			sum.Running++
		}
	}
	return sum
}

// handleTasks lists the tasks of an app (or all), as `ps` shows them.
func (s *Server) handleTasks(w http.ResponseWriter, r *http.Request) {
	v := s.store.View()
	app := r.URL.Query().Get("app")
	if _, ok := v.App(app); app != "" && !ok {
		writeError(w, http.StatusNotFound, fmt.Errorf("no app named %q", app))
		return
	}
	out := api.TasksResponse{Index: v.Index(), Tasks: []api.TaskStatus{}}
	services := map[string]store.Service{}
	for _, svc := range v.Services(app) {
		services[svc.App+"/"+svc.Name] = svc
	}
	for _, t := range v.Tasks(app) {
		out.Tasks = append(out.Tasks, taskStatus(t, services[t.App+"/"+t.Service]))
	}
	// By app, service, then slot as a number (web.2 before web.10).
	slices.SortFunc(out.Tasks, func(a, b api.TaskStatus) int {
		return cmp.Or(strings.Compare(a.App, b.App), strings.Compare(a.Service, b.Service), cmp.Compare(a.Slot, b.Slot))
	})
	writeJSON(w, http.StatusOK, out)
}

// taskStatus is a task as `ps` shows it.
func taskStatus(t store.Task, svc store.Service) api.TaskStatus {
	st := api.TaskStatus{
		App: t.App, Service: t.Service, Task: fmt.Sprintf("%s.%d", t.Service, t.Slot), Slot: t.Slot, ID: t.ID,
		Host: t.DesiredHost, State: t.ObservedState, Desired: t.DesiredState, Health: t.Health,
		Ports: []string{}, Container: t.ContainerID, Restarts: t.Restarts, Message: t.Message,
		UpToDate: t.Version == svc.Version,
	}
	if t.DesiredHost == "" || (t.Host != "" && t.ObservedState != store.TaskPending) {
		st.Host = t.Host
	}
	if len(t.IPs) > 0 {
		st.IP = t.IPs[0]
	}
	if len(st.Container) > 12 {
		st.Container = st.Container[:12]
	}
	var sp spec.Service
	if svc.Spec != nil && json.Unmarshal(svc.Spec, &sp) == nil {
		for _, p := range sp.Ports {
			st.Ports = append(st.Ports, portString(p))
		}
	}
	return st
}

// portString formats a published port like Compose: "8080:80/tcp".
func portString(p spec.Port) string {
	s := strconv.Itoa(int(p.Target)) + "/" + p.Protocol
	if p.Published != 0 {
		s = strconv.Itoa(int(p.Published)) + ":" + s
	}
	if p.HostIP != "" {
		s = p.HostIP + ":" + s
	}
	return s
}

// handleLogs streams a task's container output from its host's engine.
// Any manager serves it from its own replica: logs need no consensus.
func (s *Server) handleLogs(w http.ResponseWriter, r *http.Request) {
	v := s.store.View()
	t, ok := v.Task(r.PathValue("id"))
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Errorf("no task %q", r.PathValue("id")))
		return
	}
	h, ok := v.Host(t.Host)
	if !ok || t.ContainerID == "" {
		writeError(w, http.StatusNotFound, fmt.Errorf("task %s.%d has no container yet", t.Service, t.Slot))
		return
	}
	d, err := s.orch.Engine(h)
	if err != nil {
		writeError(w, http.StatusBadGateway, err)
		return
	}
	q := r.URL.Query()
	follow, _ := strconv.ParseBool(q.Get("follow"))
	tail := q.Get("tail")
	if n, err := strconv.Atoi(tail); err != nil || n < 0 {
		tail = "all"
	}
	rc, err := d.ContainerLogs(r.Context(), t.ContainerID, container.LogsOptions{ShowStdout: true, ShowStderr: true, Follow: follow, Tail: tail})
	if err != nil {
		writeError(w, http.StatusBadGateway, fmt.Errorf("logs of %s.%d on %s: %w", t.Service, t.Slot, h.Name, err))
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	fw := flushWriter{w: w}
	_, _ = stdcopy.StdCopy(fw, fw, rc)
}

// flushWriter flushes after every write, so followed logs arrive as they
// are written.
type flushWriter struct{ w http.ResponseWriter }

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if fl, ok := f.w.(http.Flusher); ok {
		fl.Flush()
	}
	return n, err
}
