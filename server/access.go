package server

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/pki"
	"github.com/clusterctl/clusterctl/transport"
)

// access is who may call an endpoint: the role in the caller's certificate.
type access int

const (
	// public needs no certificate: a join, which brings a token instead.
	public access = iota
	// nodes is any node of the cluster: agents report on their host and
	// ask for its volumes, networks and addresses.
	nodes
	// operators are clients (the CLI) and managers: what runs where.
	operators
	// managersOnly is Raft membership.
	managersOnly
)

// roles lists the roles an access level admits.
func (a access) roles() []string {
	switch a {
	case nodes:
		return []string{pki.RoleManager, pki.RoleWorker, pki.RoleClient}
	case operators:
		return []string{pki.RoleManager, pki.RoleClient}
	case managersOnly:
		return []string{pki.RoleManager}
	}
	return nil
}

// callerHeader carries, on a request a follower forwards, who sent it to
// the follower: the leader believes it only from a manager.
const callerHeader = "X-Clusterctl-Caller"

// callerOf is who sent a request: its TLS peer, or, when that is a manager
// forwarding, the one it forwards for.
func callerOf(r *http.Request) (pki.Identity, bool) {
	peer, ok := transport.PeerOf(r.TLS)
	if !ok {
		return pki.Identity{}, false
	}
	fwd := r.Header.Get(callerHeader)
	if peer.Role != pki.RoleManager || fwd == "" {
		return peer, true
	}
	if fwd == "-" {
		return pki.Identity{}, false // forwarded for a caller without a certificate
	}
	role, name, _ := strings.Cut(fwd, "/")
	return pki.Identity{Cluster: peer.Cluster, Role: role, Name: name}, true
}

// guard answers 401 to a caller without a certificate and 403 to one whose
// role the endpoint does not admit, before h sees the request.
func guard(a access, h http.HandlerFunc) http.HandlerFunc {
	if a == public {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		caller, ok := callerOf(r)
		if !ok {
			writeError(w, http.StatusUnauthorized, fmt.Errorf("%s %s needs a certificate of this cluster: clusterctl login", r.Method, r.URL.Path))
			return
		}
		// A kept-alive connection outlives the handshake that checked
		// the certificate: its end is checked on every request too, and
		// the connection closed, so that a caller that renewed meanwhile
		// comes back on a new one.
		if end := r.TLS.PeerCertificates[0].NotAfter; time.Now().After(end) {
			w.Header().Set("Connection", "close")
			writeError(w, http.StatusUnauthorized, fmt.Errorf("%s: %s's certificate expired at %s", api.ErrCertificateExpired, caller.Name, end.Format(time.RFC3339)))
			return
		}
		if !slices.Contains(a.roles(), caller.Role) {
			writeError(w, http.StatusForbidden, fmt.Errorf("%s %s is not for a %s (%s)", r.Method, r.URL.Path, caller.Role, caller.Name))
			return
		}
		h(w, r)
	}
}

// mayActFor refuses a worker acting for another host than its own: an
// agent registers, heartbeats and attaches volumes for its host only.
func mayActFor(w http.ResponseWriter, r *http.Request, host string) bool {
	caller, ok := callerOf(r)
	if ok && caller.Role == pki.RoleWorker && caller.Name != host {
		writeError(w, http.StatusForbidden, fmt.Errorf("host %s cannot act for host %s", caller.Name, host))
		return false
	}
	return true
}

// forwardCaller records on a request to forward who sent it.
func forwardCaller(r *http.Request) {
	if caller, ok := callerOf(r); ok {
		r.Header.Set(callerHeader, caller.Role+"/"+caller.Name)
	} else {
		r.Header.Set(callerHeader, "-")
	}
}
