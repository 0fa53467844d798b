package server

import (
	"fmt"
	"net/http"

	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/networks"
	"github.com/clusterctl/clusterctl/store"
)

// networkInfo is a network as the API shows it, with its leases.
func networkInfo(v *store.View, n store.Network) api.Network {
	out := api.Network{Name: n.Name, Subnet: n.Subnet, Gateway: n.Gateway, VNI: n.VNI, Labels: n.Labels, Created: n.Created, Leases: []api.Lease{}}
	for _, l := range v.Leases(n.Name) {
		out.Leases = append(out.Leases, leaseInfo(l))
	}
	return out
}

func leaseInfo(l store.IPLease) api.Lease {
	return api.Lease{Addr: l.Addr, MAC: l.MAC, Task: l.TaskID, Host: l.Host}
}

// handleNetworks lists the cluster networks.
func (s *Server) handleNetworks(w http.ResponseWriter, _ *http.Request) {
	v := s.store.View()
	out := api.NetworksResponse{Networks: []api.Network{}}
	for _, n := range v.Networks() {
		out.Networks = append(out.Networks, networkInfo(v, n))
	}
	writeJSON(w, http.StatusOK, out)
}

// handleNetwork shows one cluster network.
func (s *Server) handleNetwork(w http.ResponseWriter, r *http.Request) {
	v := s.store.View()
	n, ok := v.Network(r.PathValue("name"))
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Errorf("no network %q", r.PathValue("name")))
		return
	}
	writeJSON(w, http.StatusOK, networkInfo(v, n))
}

// handleCreateNetwork creates a cluster network (or finds it).
func (s *Server) handleCreateNetwork(w http.ResponseWriter, r *http.Request) {
	var req api.NetworkCreate
	if err := decode(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	n, err := s.nets.Create(networks.Request{Name: req.Name, Subnet: req.Subnet, Labels: req.Labels})
	if err != nil {
		writeErrorFor(w, asRefusal(err))
		return
	}
	writeJSON(w, http.StatusOK, networkInfo(s.store.View(), n))
}

// handleRemoveNetwork removes a network no task holds an address of.
func (s *Server) handleRemoveNetwork(w http.ResponseWriter, r *http.Request) {
	if err := s.nets.Remove(r.PathValue("name")); err != nil {
		writeErrorFor(w, asRefusal(err))
		return
	}
	writeJSON(w, http.StatusOK, api.WriteResponse{Index: s.store.AppliedIndex()})
}

// handleLease gives a task an address.
func (s *Server) handleLease(w http.ResponseWriter, r *http.Request) {
	var req api.LeaseRequest
	if err := decode(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	l, err := s.nets.Lease(r.PathValue("name"), req.Task, req.Addr)
	s.writeLease(w, l, err)
}

// handleRelease frees an address.
func (s *Server) handleRelease(w http.ResponseWriter, r *http.Request) {
	if err := s.nets.Release(r.PathValue("name"), r.PathValue("addr")); err != nil {
		writeErrorFor(w, asRefusal(err))
		return
	}
	writeJSON(w, http.StatusOK, api.WriteResponse{Index: s.store.AppliedIndex()})
}

// handleEndpointHost records where an address's endpoint is.
func (s *Server) handleEndpointHost(w http.ResponseWriter, r *http.Request) {
	var req api.EndpointHost
	if err := decode(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	var l store.IPLease
	var err error
	switch {
	case req.Host == "" && req.From != "":
		l, err = s.nets.ClearEndpointHost(r.PathValue("name"), r.PathValue("addr"), req.From)
	case req.From != "":
		err = asRefusal(store.Refuse(store.ErrInvalid, "give the endpoint's new host or the host it left, not both"))
	default:
		l, err = s.nets.SetEndpointHost(r.PathValue("name"), r.PathValue("addr"), req.Host)
	}
	s.writeLease(w, l, err)
}

func (s *Server) writeLease(w http.ResponseWriter, l store.IPLease, err error) {
	if err != nil {
		writeErrorFor(w, asRefusal(err))
		return
	}
	writeJSON(w, http.StatusOK, leaseInfo(l))
}
