package server

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/migrate"
	"github.com/clusterctl/clusterctl/migrate/live"
	"github.com/clusterctl/clusterctl/store"
)

// handleStartMove starts a move of one task (or checks it: dry_run).
func (s *Server) handleStartMove(w http.ResponseWriter, r *http.Request) {
	var req api.MoveRequest
	if err := decode(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	task, err := findTask(s.store.View(), req.App, req.Service, req.Slot)
	if err != nil {
		writeErrorFor(w, asRefusal(err))
		return
	}
	if req.Live {
		if err := live.Check(s.store.View(), task.DesiredHost, req.To); err != nil {
			writeErrorFor(w, asRefusal(store.Refuse(store.ErrInvalid, "live move of %s.%d refused: %v", task.Service, task.Slot, err)))
			return
		}
	}
	mr := migrate.Request{TaskID: task.ID, To: req.To, Reason: "move", Timeout: time.Duration(req.TimeoutMS) * time.Millisecond, Live: req.Live}
	if req.DryRun {
		plan, err := s.moves.Plan(mr)
		if err != nil {
			writeErrorFor(w, asRefusal(err))
			return
		}
		writeJSON(w, http.StatusOK, api.MovePlan{Task: plan.Task.ID, From: plan.From, To: plan.To, Volumes: plan.Volumes})
		return
	}
	m, err := s.moves.Start(mr)
	if err != nil {
		writeErrorFor(w, asRefusal(err))
		return
	}
	writeJSON(w, http.StatusCreated, api.MoveOf(m))
}

// findTask finds the running task SERVICE.SLOT of an app; app may be
// omitted when only one app has that service.
func findTask(v *store.View, app, service string, slot int) (store.Task, error) {
	if service == "" {
		return store.Task{}, store.Refuse(store.ErrInvalid, "which service? (SERVICE or SERVICE.N)")
	}
	if app == "" {
		var apps []string
		for _, svc := range v.Services("") {
			if svc.Name == service {
				apps = append(apps, svc.App)
			}
		}
		switch len(apps) {
		case 0:
			return store.Task{}, store.Refuse(store.ErrNotFound, "no service %q in any app", service)
		case 1:
			app = apps[0]
		default:
			return store.Task{}, store.Refuse(store.ErrInvalid, "several apps have a service %q (%s): say which with -p", service, strings.Join(apps, ", "))
		}
	}
	svc, ok := v.Service(app, service)
	if !ok {
		if _, ok := v.App(app); !ok {
			return store.Task{}, store.Refuse(store.ErrNotFound, "no app %q", app)
		}
		return store.Task{}, store.Refuse(store.ErrNotFound, "app %s has no service %q", app, service)
	}
	var tasks []store.Task
	for _, t := range v.Tasks(app) {
		if t.Service == service && t.DesiredState == store.TaskRunning {
			tasks = append(tasks, t)
		}
	}
	slices.SortFunc(tasks, func(a, b store.Task) int { return a.Slot - b.Slot })
	if slot == 0 {
		if len(tasks) > 1 {
			return store.Task{}, store.Refuse(store.ErrInvalid, "%s has %d tasks: say which (%s.1 to %s.%d)", service, len(tasks), service, service, svc.Replicas)
		}
		slot = 1
	}
	for _, t := range tasks {
		if t.Slot == slot {
			return t, nil
		}
	}
	return store.Task{}, store.Refuse(store.ErrNotFound, "%s has no task %s.%d", service, service, slot)
}

// handleMoves lists moves, newest first.
func (s *Server) handleMoves(w http.ResponseWriter, _ *http.Request) {
	moves := s.store.View().Moves()
	slices.SortFunc(moves, func(a, b store.Move) int { return b.Started.Compare(a.Started) })
	out := api.MovesResponse{Moves: []api.Move{}}
	for _, m := range moves {
		out.Moves = append(out.Moves, api.MoveOf(m))
	}
	writeJSON(w, http.StatusOK, out)
}

// handleMove shows one move.
func (s *Server) handleMove(w http.ResponseWriter, r *http.Request) {
	m, ok := s.store.View().Move(r.PathValue("id"))
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Errorf("no move %q", r.PathValue("id")))
		return
	}
	writeJSON(w, http.StatusOK, api.MoveOf(m))
}

// handleDrain marks a host draining (it takes no new tasks) and starts a
// move for each task on it; the tasks that cannot leave are listed with
// why, and stay.
func (s *Server) handleDrain(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if _, err := s.apply(store.CmdSetHostDrain, store.SetHostDrain{Name: name, Draining: true}); err != nil {
		writeErrorFor(w, err)
		return
	}
	v := s.store.View()
	moving := map[string]bool{}
	for _, m := range v.Moves() {
		if m.Active() {
			moving[m.TaskID] = true
		}
	}
	out := api.DrainResponse{Host: name, Moves: []api.Move{}}
	for _, t := range v.Tasks("") {
		if t.DesiredHost != name || t.DesiredState != store.TaskRunning || moving[t.ID] {
			continue
		}
		m, err := s.moves.Evacuate(t.ID, "drain "+name)
		if err != nil {
			out.Refused = append(out.Refused, fmt.Sprintf("%s/%s.%d: %v", t.App, t.Service, t.Slot, err))
			continue
		}
		out.Moves = append(out.Moves, api.MoveOf(m))
	}
	writeJSON(w, http.StatusOK, out)
}

// handleActivate lets a drained host take tasks again.
func (s *Server) handleActivate(w http.ResponseWriter, r *http.Request) {
	s.writeCommand(w, store.CmdSetHostDrain, store.SetHostDrain{Name: r.PathValue("name"), Draining: false})
}
