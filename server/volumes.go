package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/volumes"
)

// handleVolumes lists the cluster volumes.
func (s *Server) handleVolumes(w http.ResponseWriter, _ *http.Request) {
	v := s.store.View()
	out := api.VolumesResponse{Volumes: []api.Volume{}}
	for _, vol := range v.Volumes() {
		out.Volumes = append(out.Volumes, volumes.Info(v, vol))
	}
	writeJSON(w, http.StatusOK, out)
}

// handleVolume shows one cluster volume.
func (s *Server) handleVolume(w http.ResponseWriter, r *http.Request) {
	v := s.store.View()
	vol, ok := v.Volume(r.PathValue("name"))
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Errorf("no volume %q", r.PathValue("name")))
		return
	}
	writeJSON(w, http.StatusOK, volumes.Info(v, vol))
}

// handleCreateVolume creates a volume (or finds it, same options).
func (s *Server) handleCreateVolume(w http.ResponseWriter, r *http.Request) {
	var req api.VolumeCreate
	if err := decode(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	vol, err := s.vols.Create(req)
	s.writeVolume(w, vol.Name, err)
}

// handleAttachVolume gives a host a volume's lease.
func (s *Server) handleAttachVolume(w http.ResponseWriter, r *http.Request) {
	var req api.VolumeAttach
	if err := decode(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	name := r.PathValue("name")
	if !mayActFor(w, r, req.Host) {
		return
	}
	var err error
	if req.Local {
		err = s.vols.AttachOn(r.Context(), name, req.Host)
	} else {
		_, err = s.vols.Attach(name, req.Host)
	}
	s.writeVolume(w, name, err)
}

// handleDetachVolume unmounts a block volume and releases its lease.
func (s *Server) handleDetachVolume(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	s.writeVolume(w, name, s.vols.Detach(r.Context(), name))
}

// volumeOp is a volume operation that may run for long.
type volumeOp func(ctx context.Context, name string, req api.VolumeTarget, progress volumes.Progress) (api.VolumeReport, error)

// handleVolumeOp serves a long volume operation: its progress as JSON
// lines (api.VolumeEvent), then its report or error. An operation refused
// before it made any progress gets a plain error answer with its status,
// like any other request.
func (s *Server) handleVolumeOp(op volumeOp) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req api.VolumeTarget
		if err := decode(r, &req); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		st := &eventWriter{w: w}
		rep, err := op(r.Context(), r.PathValue("name"), req, func(p api.VolumeProgress) {
			st.send(api.VolumeEvent{Progress: &p})
		})
		switch {
		case err != nil && !st.started:
			writeErrorFor(w, asRefusal(err))
		case err != nil:
			st.send(api.VolumeEvent{Error: err.Error()})
		default:
			st.send(api.VolumeEvent{Report: &rep})
		}
	}
}

// eventWriter answers with JSON lines, starting the answer on the first.
type eventWriter struct {
	w       http.ResponseWriter
	started bool
}

func (e *eventWriter) send(ev api.VolumeEvent) {
	rc := http.NewResponseController(e.w)
	if !e.started {
		_ = rc.SetWriteDeadline(time.Time{}) // as long as the operation takes
		e.w.Header().Set("Content-Type", "application/x-ndjson")
		e.w.WriteHeader(http.StatusOK)
		e.started = true
	}
	_ = json.NewEncoder(e.w).Encode(ev)
	_ = rc.Flush()
}

// The long volume operations, as handleVolumeOp runs them.
func (s *Server) moveVolume(ctx context.Context, name string, req api.VolumeTarget, p volumes.Progress) (api.VolumeReport, error) {
	return s.vols.Move(ctx, name, req.Host, req.Keep, p)
}

func (s *Server) preCopyVolume(ctx context.Context, name string, req api.VolumeTarget, p volumes.Progress) (api.VolumeReport, error) {
	return s.vols.PreCopy(ctx, name, req.Host, p)
}

func (s *Server) syncVolume(ctx context.Context, name string, req api.VolumeTarget, p volumes.Progress) (api.VolumeReport, error) {
	return s.vols.Sync(ctx, name, req.Host, p)
}

// handleRemoveVolume removes a volume and its data.
func (s *Server) handleRemoveVolume(w http.ResponseWriter, r *http.Request) {
	if err := s.vols.Remove(r.Context(), r.PathValue("name")); err != nil {
		writeErrorFor(w, asRefusal(err))
		return
	}
	writeJSON(w, http.StatusOK, api.WriteResponse{Index: s.store.AppliedIndex()})
}

// writeVolume answers a volume change with the volume as it now is.
func (s *Server) writeVolume(w http.ResponseWriter, name string, err error) {
	if err != nil {
		writeErrorFor(w, asRefusal(err))
		return
	}
	v := s.store.View()
	vol, ok := v.Volume(name)
	if !ok {
		writeError(w, http.StatusConflict, fmt.Errorf("volume %s was removed meanwhile", name))
		return
	}
	writeJSON(w, http.StatusOK, volumes.Info(v, vol))
}
