package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"

	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/store"
	"github.com/clusterctl/clusterctl/transport"
	"github.com/hashicorp/raft"
)

// maxBody bounds a request body.
const maxBody = 1 << 20

// forwardedHeader marks a request a follower forwarded to the leader, so
// that a request never travels in circles during an election.
const forwardedHeader = "X-Clusterctl-Forwarded"

// routes is the API. Writes go to the leader (followers forward them);
// reads are linearizable through the leader unless ?stale=true. Each
// endpoint says which roles may call it (guard).
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/cluster/self", guard(nodes, s.handleSelf))
	mux.HandleFunc("POST /v1/cluster/join", guard(managersOnly, s.onLeader(s.handleJoin)))
	mux.HandleFunc("POST /v1/cluster/servers", guard(managersOnly, s.onLeader(s.handleRegisterServer)))
	mux.HandleFunc("POST /v1/cluster/certificate", s.onLeader(s.handleCertificate))
	mux.HandleFunc("GET /v1/cluster/tokens/{role}", guard(operators, s.read(s.handleToken)))
	mux.HandleFunc("POST /v1/cluster/tokens/{role}/rotate", guard(operators, s.onLeader(s.handleRotateToken)))
	mux.HandleFunc("GET /v1/status", guard(nodes, s.handleStatus))
	mux.HandleFunc("GET /v1/hosts", guard(nodes, s.read(s.handleHosts)))
	mux.HandleFunc("GET /v1/hosts/{name}", guard(nodes, s.read(s.handleHost)))
	mux.HandleFunc("POST /v1/hosts", guard(nodes, s.onLeader(s.handleRegisterHost)))
	mux.HandleFunc("POST /v1/hosts/{name}/heartbeat", guard(nodes, s.onLeader(s.handleHeartbeat)))
	mux.HandleFunc("GET /v1/vars/{key...}", guard(nodes, s.read(s.handleGetVar)))
	mux.HandleFunc("PUT /v1/vars/{key...}", guard(operators, s.onLeader(s.handleSetVar)))
	mux.HandleFunc("DELETE /v1/vars/{key...}", guard(operators, s.onLeader(s.handleDeleteVar)))
	mux.HandleFunc("PUT /v1/vars", guard(operators, s.onLeader(s.handleSetVars)))
	mux.HandleFunc("GET /v1/events", guard(nodes, s.handleEvents))
	mux.HandleFunc("GET /v1/apps", guard(operators, s.read(s.handleApps)))
	mux.HandleFunc("GET /v1/apps/{name}", guard(operators, s.read(s.handleApp)))
	mux.HandleFunc("PUT /v1/apps/{name}", guard(operators, s.onLeader(s.handleDeploy)))
	mux.HandleFunc("DELETE /v1/apps/{name}", guard(operators, s.onLeader(s.handleDown)))
	mux.HandleFunc("POST /v1/apps/{name}/scale", guard(operators, s.onLeader(s.handleScale)))
	mux.HandleFunc("GET /v1/tasks", guard(nodes, s.read(s.handleTasks)))
	mux.HandleFunc("GET /v1/tasks/{id}/logs", guard(operators, s.handleLogs))
	mux.HandleFunc("GET /v1/volumes", guard(nodes, s.read(s.handleVolumes)))
	mux.HandleFunc("GET /v1/volumes/{name}", guard(nodes, s.read(s.handleVolume)))
	mux.HandleFunc("POST /v1/volumes", guard(nodes, s.onLeader(s.handleCreateVolume)))
	mux.HandleFunc("POST /v1/volumes/{name}/attach", guard(nodes, s.onLeader(s.handleAttachVolume)))
	mux.HandleFunc("DELETE /v1/volumes/{name}", guard(nodes, s.onLeader(s.handleRemoveVolume)))
	mux.HandleFunc("POST /v1/volumes/{name}/detach", guard(operators, s.onLeader(s.handleDetachVolume)))
	mux.HandleFunc("POST /v1/volumes/{name}/move", guard(operators, s.onLeader(s.handleVolumeOp(s.moveVolume))))
	mux.HandleFunc("POST /v1/volumes/{name}/precopy", guard(operators, s.onLeader(s.handleVolumeOp(s.preCopyVolume))))
	mux.HandleFunc("POST /v1/volumes/{name}/sync", guard(operators, s.onLeader(s.handleVolumeOp(s.syncVolume))))
	mux.HandleFunc("GET /v1/moves", guard(operators, s.read(s.handleMoves)))
	mux.HandleFunc("GET /v1/moves/{id}", guard(operators, s.read(s.handleMove)))
	mux.HandleFunc("POST /v1/moves", guard(operators, s.onLeader(s.handleStartMove)))
	mux.HandleFunc("POST /v1/hosts/{name}/drain", guard(operators, s.onLeader(s.handleDrain)))
	mux.HandleFunc("POST /v1/hosts/{name}/activate", guard(operators, s.onLeader(s.handleActivate)))
	mux.HandleFunc("GET /v1/networks", guard(nodes, s.read(s.handleNetworks)))
	mux.HandleFunc("GET /v1/networks/{name}", guard(nodes, s.read(s.handleNetwork)))
	mux.HandleFunc("POST /v1/networks", guard(nodes, s.onLeader(s.handleCreateNetwork)))
	mux.HandleFunc("DELETE /v1/networks/{name}", guard(operators, s.onLeader(s.handleRemoveNetwork)))
	mux.HandleFunc("POST /v1/networks/{name}/leases", guard(nodes, s.onLeader(s.handleLease)))
	mux.HandleFunc("DELETE /v1/networks/{name}/leases/{addr}", guard(nodes, s.onLeader(s.handleRelease)))
	mux.HandleFunc("POST /v1/networks/{name}/leases/{addr}/endpoint", guard(nodes, s.onLeader(s.handleEndpointHost)))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Errorf("no such API: %s %s", r.Method, r.URL.Path))
	})
	return mux
}

// onLeader runs a handler on the leader, forwarding from a follower.
func (s *Server) onLeader(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.raft.State() == raft.Leader {
			h(w, r)
			return
		}
		s.forward(w, r)
	}
}

// read serves a read: from the local replica when ?stale=true, otherwise
// on the leader after confirming it still leads and has applied everything
// committed before the request arrived (a linearizable read).
func (s *Server) read(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("stale") == "true" {
			h(w, r)
			return
		}
		if s.raft.State() != raft.Leader {
			s.forward(w, r)
			return
		}
		if err := s.readBarrier(); err != nil {
			writeError(w, http.StatusServiceUnavailable, fmt.Errorf("linearizable read: %w", err))
			return
		}
		h(w, r)
	}
}

// readBarrier commits a barrier through Raft before the read: it succeeds
// only while this manager still leads a quorum, and only once everything
// committed before it is applied to the local store, which makes the read
// linearizable. (A read-index from raft.CommitIndex cannot be used here:
// that index may belong to an entry the store never sees, a no-op or a
// configuration change, and waiting for it could block until the next
// write.) Raft batches concurrent barriers and writes into one disk write.
func (s *Server) readBarrier() error {
	return s.raft.Barrier(applyTimeout).Error()
}

// forward sends a request on to the leader and relays its answer.
func (s *Server) forward(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get(forwardedHeader) != "" {
		writeError(w, http.StatusServiceUnavailable, errors.New("not the leader (forwarded request)"))
		return
	}
	addr, err := s.leaderAPI()
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	target, _ := url.Parse(transport.URL(addr))
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = s.forwarder
	proxy.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, err error) {
		// Not delivered (503, safe to retry) or broken after delivery (502:
		// a write's outcome is unknown).
		code := http.StatusBadGateway
		if transport.NeverSent(err) {
			code = http.StatusServiceUnavailable
		}
		writeError(w, code, fmt.Errorf("forward to leader at %s: %w", addr, err))
	}
	r.Header.Set(forwardedHeader, s.cfg.Name)
	forwardCaller(r)
	proxy.ServeHTTP(w, r)
}

// leaderAPI is the API address of the current leader.
func (s *Server) leaderAPI() (string, error) {
	_, id := s.raft.LeaderWithID()
	if id == "" {
		return "", errors.New("no leader at the moment")
	}
	srv, ok := s.store.View().Server(string(id))
	if !ok {
		return "", fmt.Errorf("leader %s has not registered its API yet", id)
	}
	return srv.APIAddr, nil
}

// writeErrorFor answers a failed write: a refusal by the store is the
// client's problem (400, 404 or 409); a write never appended is 503 (retry
// elsewhere); a write that may or may not commit is 500.
func writeErrorFor(w http.ResponseWriter, err error) {
	var refused *refusedError
	if !errors.As(err, &refused) {
		// Nothing appended: retry elsewhere. Otherwise the entry may still
		// commit under the next leader: the outcome is unknown (500).
		code := http.StatusInternalServerError
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrEnqueueTimeout) {
			code = http.StatusServiceUnavailable
		}
		writeError(w, code, err)
		return
	}
	code := http.StatusConflict
	switch {
	case errors.Is(err, store.ErrInvalid):
		code = http.StatusBadRequest
	case errors.Is(err, store.ErrNotFound):
		code = http.StatusNotFound
	}
	writeError(w, code, refused.err)
}

// decode reads a JSON body strictly: unknown fields, trailing data and
// oversized bodies are errors, answered 400 by the caller.
func decode(r *http.Request, v any) error { return decodeLimit(r, v, maxBody) }

// decodeLimit is decode with another size bound.
func decodeLimit(r *http.Request, v any, limit int64) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	if int64(len(body)) > limit {
		return fmt.Errorf("body larger than %d bytes", limit)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("invalid JSON body: %w", err)
	}
	if dec.More() {
		return errors.New("invalid JSON body: more than one value")
	}
	return nil
}

// writeJSON answers with a JSON body.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, api.Error{Error: err.Error()})
}
