package server

import (
	"fmt"
	"net/http"

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
	vol, err := s.vols.Attach(r.PathValue("name"), req.Host)
	s.writeVolume(w, vol.Name, err)
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
