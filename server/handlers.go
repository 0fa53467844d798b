package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/store"
	"github.com/hashicorp/raft"
)

// statusTimeout bounds asking another manager for its state: on a LAN, a
// manager that has not answered in 300 ms is unreachable for this purpose.
const statusTimeout = 300 * time.Millisecond

func (s *Server) self() api.ServerSelf {
	leaderAddr, leaderID := s.raft.LeaderWithID()
	return api.ServerSelf{
		Name: s.cfg.Name, RaftAddr: s.cfg.RaftAddr(), APIAddr: s.cfg.APIAddr(),
		ClusterID: s.store.View().ClusterID(), State: strings.ToLower(s.raft.State().String()),
		Term: s.raft.CurrentTerm(), LeaderName: string(leaderID), LeaderAddr: string(leaderAddr),
		HasState: s.raft.LastIndex() > 0, AppliedIndex: s.raft.AppliedIndex(),
	}
}

func (s *Server) handleSelf(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.self())
}

// handleJoin adds a manager as a voter, refusing another cluster's and a
// name that another address already uses.
func (s *Server) handleJoin(w http.ResponseWriter, r *http.Request) {
	var req api.JoinRequest
	if err := decode(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	if !validName.MatchString(req.Name) || req.RaftAddr == "" || req.APIAddr == "" {
		writeError(w, http.StatusBadRequest, errors.New("join needs a valid name, raft and api address"))
		return
	}
	clusterID := s.store.View().ClusterID()
	if req.ClusterID != "" && req.ClusterID != clusterID {
		writeError(w, http.StatusConflict, fmt.Errorf("this is cluster %s, not %s", clusterID, req.ClusterID))
		return
	}
	cfg := s.raft.GetConfiguration()
	if err := cfg.Error(); err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	for _, srv := range cfg.Configuration().Servers {
		if string(srv.ID) == req.Name && string(srv.Address) != req.RaftAddr {
			writeError(w, http.StatusConflict, fmt.Errorf("a manager named %q already exists at %s: give each manager its own name", req.Name, srv.Address))
			return
		}
	}
	if err := s.raft.AddVoter(raft.ServerID(req.Name), raft.ServerAddress(req.RaftAddr), 0, applyTimeout).Error(); err != nil {
		writeError(w, http.StatusServiceUnavailable, fmt.Errorf("add manager %s: %w", req.Name, err))
		return
	}
	if _, err := s.apply(store.CmdRegisterServer, store.Server{Name: req.Name, RaftAddr: req.RaftAddr, APIAddr: req.APIAddr}); err != nil {
		writeErrorFor(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.JoinResponse{ClusterID: clusterID})
}

func (s *Server) handleRegisterServer(w http.ResponseWriter, r *http.Request) {
	var srv store.Server
	if err := decode(r, &srv); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	if !validName.MatchString(srv.Name) {
		writeError(w, http.StatusBadRequest, fmt.Errorf("invalid manager name %q", srv.Name))
		return
	}
	s.writeCommand(w, store.CmdRegisterServer, srv)
}

// handleStatus reports every manager in Raft's configuration, asking each
// for its own state.
func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	cfg := s.raft.GetConfiguration()
	if err := cfg.Error(); err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	view := s.store.View()
	_, leader := s.raft.LeaderWithID()
	st := api.Status{ClusterID: view.ClusterID(), Leader: string(leader), Term: s.raft.CurrentTerm(), Index: view.Index()}
	servers := cfg.Configuration().Servers
	st.Servers = make([]api.ServerStatus, len(servers))
	var wg sync.WaitGroup
	for i, srv := range servers {
		st.Servers[i] = api.ServerStatus{Name: string(srv.ID), Raft: string(srv.Address), State: "unreachable"}
		if reg, ok := view.Server(string(srv.ID)); ok {
			st.Servers[i].API = reg.APIAddr
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			st.Servers[i].State = s.stateOf(r.Context(), st.Servers[i])
		}()
	}
	wg.Wait()
	writeJSON(w, http.StatusOK, st)
}

// stateOf asks one manager for its Raft state.
func (s *Server) stateOf(ctx context.Context, srv api.ServerStatus) string {
	if srv.Name == s.cfg.Name {
		return strings.ToLower(s.raft.State().String())
	}
	if srv.API == "" {
		return "unreachable"
	}
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	self, err := s.client.Self(ctx, srv.API)
	if err != nil {
		return "unreachable"
	}
	return self.State
}

func (s *Server) handleHosts(w http.ResponseWriter, _ *http.Request) {
	v := s.store.View()
	writeJSON(w, http.StatusOK, api.HostsResponse{Index: v.Index(), Hosts: v.Hosts()})
}

func (s *Server) handleHost(w http.ResponseWriter, r *http.Request) {
	h, ok := s.store.View().Host(r.PathValue("name"))
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Errorf("no host %q", r.PathValue("name")))
		return
	}
	writeJSON(w, http.StatusOK, h)
}

func (s *Server) handleRegisterHost(w http.ResponseWriter, r *http.Request) {
	var req api.RegisterHost
	if err := decode(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	if !validName.MatchString(req.Name) || req.Addr == "" {
		writeError(w, http.StatusBadRequest, fmt.Errorf("a host needs a valid name (got %q) and an address", req.Name))
		return
	}
	if !mayActFor(w, r, req.Name) {
		return
	}
	s.hb.touch(req.Name, time.Now())
	s.writeCommand(w, store.CmdRegisterHost, store.Host{
		Name: req.Name, Addr: req.Addr, Docker: req.Docker, DockerVersion: req.DockerVersion,
		Labels: req.Labels, CPUs: req.CPUs, MemoryBytes: req.MemoryBytes, State: store.HostUp, AgentAPI: req.AgentAPI,
		LiveReady: req.LiveRefusal == "", LiveRefusal: req.LiveRefusal,
	})
}

// handleHeartbeat notes that a host is alive. Only what changed (the host
// coming back up, its containers) is written to the log, plus the time
// every persistEvery.
func (s *Server) handleHeartbeat(w http.ResponseWriter, r *http.Request) {
	var hb api.Heartbeat
	if err := decode(r, &hb); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	name := r.PathValue("name")
	if !mayActFor(w, r, name) {
		return
	}
	host, ok := s.store.View().Host(name)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Errorf("no host %q: register it first", name))
		return
	}
	at := time.Now() // monotonic: a wall-clock step must not expire hosts
	s.hb.touch(name, at)
	now := at.UTC()
	changed := !sameContainers(host.Containers, hb.Containers)
	if !changed && host.State == store.HostUp && now.Sub(host.LastHeartbeat) < persistEvery {
		writeJSON(w, http.StatusOK, api.WriteResponse{Index: host.ModifyIndex})
		return
	}
	s.writeCommand(w, store.CmdHostHeartbeat, store.HostHeartbeat{Name: name, At: now, Containers: hb.Containers, ContainersChanged: changed, Usage: hb.Usage})
}

// sameContainers compares two reports regardless of order.
func sameContainers(a, b []store.Container) bool {
	if len(a) != len(b) {
		return false
	}
	byID := func(x, y store.Container) int { return strings.Compare(x.ID, y.ID) }
	a, b = slices.Clone(a), slices.Clone(b)
	slices.SortFunc(a, byID)
	slices.SortFunc(b, byID)
	return reflect.DeepEqual(a, b)
}

// validKey is a variable key: printable, no spaces, at most 256 bytes.
func validKey(k string) error {
	if k == "" || len(k) > 256 || strings.IndexFunc(k, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) }) >= 0 {
		return fmt.Errorf("invalid variable key %q: 1-256 printable characters, no spaces", k)
	}
	return nil
}

func (s *Server) handleGetVar(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	v, ok := s.store.View().Var(key)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Errorf("no variable %q", key))
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) handleSetVar(w http.ResponseWriter, r *http.Request) {
	var v store.Var
	if err := decode(r, &v); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	key := r.PathValue("key")
	if v.Key != "" && v.Key != key {
		writeError(w, http.StatusBadRequest, fmt.Errorf("body key %q differs from path key %q", v.Key, key))
		return
	}
	if err := validKey(key); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	s.writeCommand(w, store.CmdSetVar, store.Var{Key: key, Value: v.Value})
}

func (s *Server) handleDeleteVar(w http.ResponseWriter, r *http.Request) {
	s.writeCommand(w, store.CmdDeleteVar, store.NameRef{Name: r.PathValue("key")})
}

// handleSetVars writes several variables as one log entry.
func (s *Server) handleSetVars(w http.ResponseWriter, r *http.Request) {
	var req api.SetVars
	if err := decode(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	if len(req.Vars) == 0 {
		writeError(w, http.StatusBadRequest, errors.New("no variables to set"))
		return
	}
	batch := store.Batch{}
	for _, v := range req.Vars {
		if err := validKey(v.Key); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		b, err := store.Encode(store.CmdSetVar, store.Var{Key: v.Key, Value: v.Value})
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		batch.Commands = append(batch.Commands, b)
	}
	s.writeCommand(w, store.CmdBatch, batch)
}

// writeCommand applies one command and answers with its index.
func (s *Server) writeCommand(w http.ResponseWriter, t store.CommandType, payload any) {
	index, err := s.apply(t, payload)
	if err != nil {
		writeErrorFor(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.WriteResponse{Index: index})
}
