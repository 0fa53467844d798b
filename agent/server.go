package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"

	ipamplugin "github.com/docker/go-plugins-helpers/ipam"

	"github.com/clusterctl/clusterctl/agent/network"
	"github.com/clusterctl/clusterctl/agent/volume"
	"github.com/clusterctl/clusterctl/agentapi"
	"github.com/clusterctl/clusterctl/pki"
	"github.com/clusterctl/clusterctl/transport"
)

// dataURL is this agent's API as other hosts and the managers reach it.
func (a *Agent) dataURL() string {
	return transport.URL(net.JoinHostPort(a.cfg.Addr, strconv.Itoa(a.cfg.DataPort)))
}

// startVolumes starts the clustervol plugin on its socket and the agent's
// own API on the data port, and re-attaches the volumes in use here. It
// returns a function that stops both.
func (a *Agent) startVolumes(ctx context.Context) (stop func(), err error) {
	d, err := volume.NewDriver(volume.Config{
		Host: a.cfg.Name, DataDir: filepath.Join(a.cfg.DataDir, "volumes"), SharedDir: a.cfg.SharedDir, Creds: a.creds, Log: a.cfg.Log,
	}, a.api)
	if err != nil {
		return nil, err
	}
	a.volumes = d
	sock, err := a.servePlugin(volume.DriverName, d.Serve)
	if err != nil {
		return nil, err
	}
	// Managers call this port, and agents send each other volumes on it:
	// no operator's certificate, and none of another cluster, gets in.
	dataL, err := transport.ListenBulk(net.JoinHostPort(a.cfg.Addr, strconv.Itoa(a.cfg.DataPort)), a.creds.ServerTLS(pki.RoleManager, pki.RoleWorker))
	if err != nil {
		sock.Close()
		return nil, fmt.Errorf("agent data port: %w", err)
	}
	srv := &http.Server{Handler: a.routes(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(dataL); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.cfg.Log.Error("agent API stopped", "err", err)
		}
	}()
	go a.restoreVolumes(ctx)
	return func() {
		sock.Close()
		_ = srv.Close()
	}, nil
}

// startIPAM serves the clusteripam plugin on its socket, until the
// returned function stops it.
func (a *Agent) startIPAM() (stop func(), err error) {
	h := ipamplugin.NewHandler(&network.IPAM{Host: a.cfg.Name, Cluster: a.api, Log: a.cfg.Log})
	sock, err := a.servePlugin(network.IPAMDriverName, h.Serve)
	if err != nil {
		return nil, err
	}
	return func() { sock.Close() }, nil
}

// servePlugin serves a Docker plugin on its socket in the plugin
// directory, in the background, until the returned listener is closed.
func (a *Agent) servePlugin(name string, serve func(net.Listener) error) (net.Listener, error) {
	sock, err := listenPlugin(a.cfg.PluginDir, name)
	if err != nil {
		return nil, err
	}
	go func() {
		if err := serve(sock); err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, http.ErrServerClosed) {
			a.cfg.Log.Error("plugin stopped", "plugin", name, "err", err)
		}
	}()
	return sock, nil
}

// restoreVolumes re-attaches the volumes in use here, retrying until the
// managers answer.
func (a *Agent) restoreVolumes(ctx context.Context) {
	for ctx.Err() == nil {
		err := a.volumes.Restore(ctx)
		if err == nil {
			return
		}
		a.cfg.Log.Warn("restore volumes", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(HeartbeatInterval):
		}
	}
}

// pluginGroup may use the plugin sockets besides root: Docker's group,
// whose members can already drive dockerd, which is who calls plugins.
const pluginGroup = "docker"

// listenPlugin listens on DIR/NAME.sock, replacing a socket an earlier
// run left, for root and the docker group only (mode 0660).
func listenPlugin(dir, name string) (net.Listener, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("plugin directory: %w", err)
	}
	path := filepath.Join(dir, name+".sock")
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale plugin socket: %w", err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("plugin socket: %w", err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		l.Close()
		return nil, fmt.Errorf("plugin socket: %w", err)
	}
	if err := os.Chown(path, 0, pluginGID()); err != nil {
		l.Close()
		return nil, fmt.Errorf("plugin socket: %w", err)
	}
	return l, nil
}

// pluginGID is the docker group's ID, or root's where there is none.
func pluginGID() int {
	g, err := user.LookupGroup(pluginGroup)
	if err != nil {
		return 0
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return 0
	}
	return gid
}

// routes is the agent's own API.
func (a *Agent) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/volumes/{name}", a.handleVolume)
	mux.HandleFunc("DELETE /v1/volumes/{name}", a.handleRemoveVolume)
	mux.HandleFunc("POST /v1/volumes/{name}/sync", a.handleSyncVolume)
	mux.HandleFunc("POST /v1/volumes/{name}/attach", a.handleLocalVolume(a.volumes.AttachLocal))
	mux.HandleFunc("POST /v1/volumes/{name}/detach", a.handleLocalVolume(a.volumes.DetachLocal))
	mux.Handle("/v1/transfer/", a.volumes.Receiver().Handler())
	return mux
}

// handleSyncVolume runs a sync of a copy volume held here to another
// host, streaming its progress as JSON lines and ending with its result
// or its error.
func (a *Agent) handleSyncVolume(w http.ResponseWriter, r *http.Request) {
	var req agentapi.SyncRequest
	if !decodeRequest(w, r, &req) {
		return
	}
	// No server deadline: a sync of a big volume takes as long as it takes.
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{})
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	send := func(ev agentapi.SyncEvent) {
		_ = enc.Encode(ev)
		_ = rc.Flush()
	}
	res, err := a.volumes.Sync(r.Context(), r.PathValue("name"), req, func(p agentapi.VolumeProgress) {
		send(agentapi.SyncEvent{Progress: &p})
	})
	if err != nil {
		status := http.StatusInternalServerError
		var se *volume.SyncError
		if errors.As(err, &se) {
			status = se.Status
		}
		send(agentapi.SyncEvent{Error: err.Error(), Status: status})
		return
	}
	send(agentapi.SyncEvent{Result: res})
}

// handleLocalVolume serves an attach or detach of a volume on this host.
func (a *Agent) handleLocalVolume(op func(context.Context, string, agentapi.LocalRequest) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req agentapi.LocalRequest
		if !decodeRequest(w, r, &req) {
			return
		}
		writeVolumeResult(w, op(r.Context(), r.PathValue("name"), req))
	}
}

// decodeRequest reads a request's JSON body (at most 1 MiB) into v,
// answering 400 if it cannot.
func decodeRequest(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(v); err != nil {
		agentapi.WriteError(w, http.StatusBadRequest, fmt.Errorf("invalid request: %w", err))
		return false
	}
	return true
}

// handleVolume says what this host knows of a volume.
func (a *Agent) handleVolume(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	agentapi.WriteJSON(w, http.StatusOK, agentapi.VolumeState{Name: name, Mounts: a.volumes.MountIDs(name)})
}

// handleRemoveVolume deletes a volume's local data; the managers call it
// when the volume is removed.
func (a *Agent) handleRemoveVolume(w http.ResponseWriter, r *http.Request) {
	err := a.volumes.RemoveLocal(r.Context(), r.PathValue("name"), r.URL.Query().Get("backend"))
	writeVolumeResult(w, err)
}

// writeVolumeResult answers a local volume step: 409 when containers here
// use the volume, 500 for any other failure.
func writeVolumeResult(w http.ResponseWriter, err error) {
	var inUse *volume.InUseError
	switch {
	case errors.As(err, &inUse):
		agentapi.WriteError(w, http.StatusConflict, err)
	case err != nil:
		agentapi.WriteError(w, http.StatusInternalServerError, err)
	default:
		agentapi.WriteJSON(w, http.StatusOK, struct{}{})
	}
}
