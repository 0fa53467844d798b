package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/contextfile"
	"github.com/clusterctl/clusterctl/enroll"
	"github.com/clusterctl/clusterctl/pki"
	"github.com/clusterctl/clusterctl/store"
	"github.com/clusterctl/clusterctl/transport"
	"github.com/google/renameio/v2"
	"github.com/google/uuid"
)

// Where a manager keeps its secrets, in its data dir.
const (
	// credsDirName holds its own certificate and key, and the CA's
	// certificate (ca.pem, cert.pem, key.pem).
	credsDirName = "tls"
	// AdminDirName holds the operator's credentials that a bootstrapping
	// manager makes, as `clusterctl login` would, and a context file for
	// them (context.json): the lab's CLI uses them.
	AdminDirName = "admin"
	// sealingKeyName is the key that seals the CA's key and the join
	// tokens in the store. The managers hold it, each in its data dir,
	// outside Raft: a copy of the Raft log or of a snapshot alone gives
	// no secret away. A joining manager receives it with its certificate.
	sealingKeyName = "sealing.key"
	// pendingSecurityName is the CA and tokens a bootstrapping manager
	// made, until it has recorded them in the store as the first leader.
	pendingSecurityName = "security.json"
	// enrollTimeout bounds joining with a token at start.
	enrollTimeout = time.Minute
)

// security is a manager's credentials and the sealing key, and, on the
// leader, the CA opened from the store.
type security struct {
	creds      *transport.Creds
	sealingKey []byte

	mu     sync.Mutex
	ca     *pki.CA
	caCert string // the certificate ca was opened from
}

// prepareSecurity gives this manager its credentials: the ones in its data
// dir; or, bootstrapping a new cluster, a new CA and its own certificate;
// or, joining, a certificate from the managers for its join token.
func prepareSecurity(cfg Config) (*security, error) {
	dir := filepath.Join(cfg.DataDir, credsDirName)
	keyPath := filepath.Join(cfg.DataDir, sealingKeyName)
	if !transport.HaveCreds(dir) && cfg.Bootstrap {
		return bootstrapSecurity(cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), enrollTimeout)
	defer cancel()
	creds, key, err := enroll.Ensure(ctx, enroll.Node{Dir: dir, Name: cfg.Name, Addrs: []net.IP{net.ParseIP(cfg.Bind)}, Servers: cfg.Join, Token: cfg.Token, Role: pki.RoleManager})
	if err != nil {
		return nil, err
	}
	if creds.Identity().Role != pki.RoleManager {
		return nil, fmt.Errorf("credentials in %s are a %s's, not a manager's", dir, creds.Identity().Role)
	}
	if key != nil {
		if err := renameio.WriteFile(keyPath, key, 0o600); err != nil {
			return nil, fmt.Errorf("write sealing key: %w", err)
		}
	}
	if key, err = os.ReadFile(keyPath); err != nil {
		return nil, fmt.Errorf("sealing key: %w", err)
	}
	return &security{creds: creds, sealingKey: key}, nil
}

// bootstrapSecurity makes a new cluster's CA, sealing key and join tokens,
// this manager's certificate and the operator's, and keeps the CA and the
// tokens, sealed, until the first leader records them.
func bootstrapSecurity(cfg Config) (*security, error) {
	clusterID := cfg.ClusterID
	if clusterID == "" {
		clusterID = uuid.NewString()
	}
	now := time.Now()
	ca, err := pki.NewCA(clusterID, now)
	if err != nil {
		return nil, err
	}
	ca.LeafTTL = cfg.CertTTL
	key, err := pki.NewSealingKey()
	if err != nil {
		return nil, err
	}
	sec, err := sealSecurity(ca, key)
	if err != nil {
		return nil, err
	}
	if err := writeJSONFile(filepath.Join(cfg.DataDir, pendingSecurityName), sec); err != nil {
		return nil, err
	}
	if err := renameio.WriteFile(filepath.Join(cfg.DataDir, sealingKeyName), key, 0o600); err != nil {
		return nil, fmt.Errorf("write sealing key: %w", err)
	}
	adminDir := filepath.Join(cfg.DataDir, AdminDirName)
	if _, err := transport.IssueTo(ca, adminDir, "admin", pki.RoleClient, nil); err != nil {
		return nil, err
	}
	// A context file beside them: clusterctl --context DATA_DIR/admin/context.json ...
	if err := contextfile.Save(filepath.Join(adminDir, "context.json"), &contextfile.Context{Name: "admin", Servers: []string{cfg.APIAddr()}, TLS: "."}); err != nil {
		return nil, err
	}
	creds, err := transport.IssueTo(ca, filepath.Join(cfg.DataDir, credsDirName), cfg.Name, pki.RoleManager, []net.IP{net.ParseIP(cfg.Bind)})
	if err != nil {
		return nil, err
	}
	return &security{creds: creds, sealingKey: key, ca: ca, caCert: string(ca.CertPEM)}, nil
}

// sealSecurity is the store's record of a new CA with new join tokens.
func sealSecurity(ca *pki.CA, key []byte) (store.Security, error) {
	sealedKey, err := ca.Seal(key)
	if err != nil {
		return store.Security{}, err
	}
	sec := store.Security{CACert: ca.CertPEM, SealedCAKey: sealedKey, LeafTTL: ca.LeafTTL, Tokens: map[string][]byte{}}
	for _, role := range []string{pki.RoleManager, pki.RoleWorker} {
		if _, sec.Tokens[role], err = newSealedToken(ca, key, role); err != nil {
			return store.Security{}, err
		}
	}
	return sec, nil
}

// newSealedToken makes a role's token and seals it for the store.
func newSealedToken(ca *pki.CA, key []byte, role string) (pki.Token, []byte, error) {
	tok, err := pki.NewToken(ca, role)
	if err != nil {
		return pki.Token{}, nil, err
	}
	sealed, err := pki.SealBytes(key, ca.ClusterID, []byte(tok.String()))
	return tok, sealed, err
}

func writeJSONFile(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := renameio.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}

// recordSecurity puts a bootstrapped cluster's CA and tokens into the
// store, on its first leader; the pending file goes once they are there.
func (s *Server) recordSecurity() error {
	path := filepath.Join(s.cfg.DataDir, pendingSecurityName)
	if _, ok := s.store.View().Security(); ok {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // another manager bootstrapped: it records them
	}
	if err != nil {
		return err
	}
	var sec store.Security
	if err := json.Unmarshal(b, &sec); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if _, err := s.apply(store.CmdSetSecurity, sec); err != nil {
		return fmt.Errorf("record the CA: %w", err)
	}
	return os.Remove(path)
}

// authority is the cluster's CA, opened from the store with the sealing
// key (on the leader, which signs).
func (s *Server) authority() (*pki.CA, store.Security, error) {
	v := s.store.View()
	sec, ok := v.Security()
	if !ok {
		return nil, sec, errors.New("the cluster's CA is not recorded yet")
	}
	s.sec.mu.Lock()
	defer s.sec.mu.Unlock()
	if s.sec.ca == nil || s.sec.caCert != string(sec.CACert) {
		ca, err := pki.OpenCA(v.ClusterID(), sec.CACert, sec.SealedCAKey, s.sec.sealingKey)
		if err != nil {
			return nil, sec, err
		}
		ca.LeafTTL = sec.LeafTTL // fixed at bootstrap
		s.sec.ca, s.sec.caCert = ca, string(sec.CACert)
	}
	return s.sec.ca, sec, nil
}

// renewOwn renews this manager's certificate with the CA itself: every
// manager holds the sealing key and the store, so none depends on another
// (or on its own API, with the certificate about to end) to renew.
func (s *Server) renewOwn(context.Context) error {
	ca, _, err := s.authority()
	if err != nil {
		return err
	}
	leaf, err := ca.Issue(s.cfg.Name, pki.RoleManager, []net.IP{net.ParseIP(s.cfg.Bind)}, time.Now())
	if err != nil {
		return err
	}
	return s.sec.creds.Renew(leaf.CertPEM, leaf.KeyPEM)
}

// token opens a role's join token from the store.
func (s *Server) token(ca *pki.CA, sec store.Security, role string) (pki.Token, error) {
	sealed, ok := sec.Tokens[role]
	if !ok {
		return pki.Token{}, fmt.Errorf("no %s token", role)
	}
	text, err := pki.OpenBytes(s.sec.sealingKey, ca.ClusterID, sealed)
	if err != nil {
		return pki.Token{}, fmt.Errorf("%s token: %w", role, err)
	}
	return pki.ParseToken(string(text))
}

// handleCertificate signs a node's key: a new node's, for a valid join
// token (the role is the token's; an operator's certificate takes the
// manager token), or a renewal, for the node its certificate names.
func (s *Server) handleCertificate(w http.ResponseWriter, r *http.Request) {
	var req api.CertificateRequest
	if err := decode(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	pub, err := pki.ParseCSR(req.CSR)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	addrs, err := parseIPs(req.Addrs)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	ca, sec, err := s.authority()
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	name, role, code, err := s.certifiedAs(r, req, ca, sec)
	if err != nil {
		writeError(w, code, err)
		return
	}
	leaf, err := ca.Sign(name, role, addrs, pub, time.Now())
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	resp := api.CertificateResponse{CACert: ca.CertPEM, Cert: leaf.CertPEM}
	if role == pki.RoleManager && req.Token != "" {
		resp.SealingKey = s.sec.sealingKey
	}
	s.cfg.Log.Info("certificate issued", "name", name, "role", role, "expires", leaf.Cert.NotAfter)
	writeJSON(w, http.StatusOK, resp)
}

// certifiedAs is who a certificate request may be certified as, or why not
// (with the HTTP status to answer).
func (s *Server) certifiedAs(r *http.Request, req api.CertificateRequest, ca *pki.CA, sec store.Security) (name, role string, code int, err error) {
	if req.Token == "" {
		caller, ok := callerOf(r)
		if !ok {
			return "", "", http.StatusUnauthorized, errors.New("a certificate needs a join token, or the certificate to renew")
		}
		return caller.Name, caller.Role, 0, nil
	}
	presented, err := pki.ParseToken(req.Token)
	if err != nil {
		return "", "", http.StatusBadRequest, err
	}
	want, err := s.token(ca, sec, presented.Role)
	if err != nil {
		return "", "", http.StatusServiceUnavailable, err
	}
	if !want.Matches(presented) {
		return "", "", http.StatusForbidden, fmt.Errorf("the %s join token is not valid (rotated, or another cluster's): clusterctl token show %s", presented.Role, presented.Role)
	}
	if !validName.MatchString(req.Name) {
		return "", "", http.StatusBadRequest, fmt.Errorf("name %q: use 1-63 letters, digits, '.', '_' or '-'", req.Name)
	}
	role = presented.Role
	if req.Client {
		if role != pki.RoleManager {
			return "", "", http.StatusForbidden, errors.New("an operator's certificate takes the manager token")
		}
		return req.Name, pki.RoleClient, 0, nil
	}
	if err := s.nameFree(req.Name, role); err != nil {
		return "", "", http.StatusConflict, err
	}
	return req.Name, role, 0, nil
}

// nameFree refuses a join token's certificate for the name of a node that
// is part of the cluster: a token would otherwise let anyone pass for a
// manager in Raft or a host that is up. A host that is down may come back
// under its name (reinstalled, its data dir lost).
func (s *Server) nameFree(name, role string) error {
	if role == pki.RoleManager {
		f := s.raft.GetConfiguration()
		if err := f.Error(); err != nil {
			return err
		}
		for _, srv := range f.Configuration().Servers {
			if string(srv.ID) == name {
				return fmt.Errorf("another manager named %q is part of the cluster (at %s): give each manager its own --name", name, srv.Address)
			}
		}
		return nil
	}
	if h, ok := s.store.View().Host(name); ok && h.State == store.HostUp {
		return fmt.Errorf("host %q is up with its own certificate: give each host its own --name", name)
	}
	return nil
}

func parseIPs(addrs []string) ([]net.IP, error) {
	var ips []net.IP
	for _, a := range addrs {
		ip := net.ParseIP(a)
		if ip == nil {
			return nil, fmt.Errorf("address %q is not an IP address", a)
		}
		ips = append(ips, ip)
	}
	return ips, nil
}

// tokenRole is the role a token request names, answering 400 for one
// that has no token.
func tokenRole(w http.ResponseWriter, r *http.Request) (string, bool) {
	role := r.PathValue("role")
	if role != pki.RoleManager && role != pki.RoleWorker {
		writeError(w, http.StatusBadRequest, fmt.Errorf("role %q: want %s or %s", role, pki.RoleManager, pki.RoleWorker))
		return "", false
	}
	return role, true
}

// handleToken shows a role's join token.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	role, ok := tokenRole(w, r)
	if !ok {
		return
	}
	ca, sec, err := s.authority()
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	tok, err := s.token(ca, sec, role)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, http.StatusOK, api.TokenResponse{Role: role, Token: tok.String()})
}

// handleRotateToken replaces a role's join token. Nodes that joined keep
// their certificates; only joining with the old token stops working.
func (s *Server) handleRotateToken(w http.ResponseWriter, r *http.Request) {
	role, ok := tokenRole(w, r)
	if !ok {
		return
	}
	ca, sec, err := s.authority()
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	tok, sealed, err := newSealedToken(ca, s.sec.sealingKey, role)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	// A new map: the view's record is shared, not this handler's.
	sec.Tokens = maps.Clone(sec.Tokens)
	sec.Tokens[role] = sealed
	if _, err := s.apply(store.CmdSetSecurity, sec); err != nil {
		writeErrorFor(w, err)
		return
	}
	s.cfg.Log.Info("join token rotated", "role", role)
	writeJSON(w, http.StatusOK, api.TokenResponse{Role: role, Token: tok.String()})
}
