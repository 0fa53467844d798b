package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/enroll"
	"github.com/clusterctl/clusterctl/migrate"
	"github.com/clusterctl/clusterctl/networks"
	"github.com/clusterctl/clusterctl/orchestrator"
	"github.com/clusterctl/clusterctl/pki"
	"github.com/clusterctl/clusterctl/store"
	"github.com/clusterctl/clusterctl/transport"
	"github.com/clusterctl/clusterctl/volumes"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// Server is a running manager.
type Server struct {
	cfg    Config
	id     identity
	sec    *security
	store  *store.Store
	raft   *raft.Raft
	bolt   *raftboltdb.BoltStore
	trans  *raft.NetworkTransport
	apiL   net.Listener
	http   *http.Server
	client *api.Client // to other managers
	// forwarder carries requests forwarded to the leader, reusing its
	// connections across requests.
	forwarder http.RoundTripper
	hb        *heartbeats
	orch      *orchestrator.Orchestrator // the leader's planning and reconciling
	vols      *volumes.Manager           // the leader's volume leases
	nets      *networks.Manager          // the leader's networks and address leases
	moves     *migrate.Runner            // the leader's moves
	// hasState says the data dir held Raft state at start: this manager
	// was part of a cluster already.
	hasState bool

	notify chan bool // Raft's leadership changes

	renewCtx    context.Context // ends at Shutdown
	stopRenewal context.CancelFunc

	wg       sync.WaitGroup
	stopOnce sync.Once
	stopped  chan struct{}
}

// Start opens the data dir, refusing one that belongs to another manager or
// cluster, and starts Raft and the API. The cluster is formed by Run.
func Start(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	id, err := loadIdentity(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	if err := checkIdentity(cfg, id); err != nil {
		return nil, err
	}
	sec, err := prepareSecurity(cfg)
	if err != nil {
		return nil, err
	}
	creds := sec.creds
	if err := checkCreds(cfg, id, creds.Identity()); err != nil {
		return nil, err
	}
	id.ClusterID = creds.Identity().Cluster
	s := &Server{cfg: cfg, id: id, sec: sec, store: store.New(cfg.Log), client: api.NewClient(cfg.Join, creds), hb: newHeartbeats(), notify: make(chan bool, 8), stopped: make(chan struct{}),
		forwarder: transport.RoundTripper(creds.ClientTLS(pki.RoleManager))}
	s.renewCtx, s.stopRenewal = context.WithCancel(context.Background())
	s.vols = volumes.New(s.store, s.applyRaw, creds, cfg.Log)
	s.nets = networks.New(s.store, s.applyRaw, cfg.Log)
	s.orch = orchestrator.New(orchestrator.Options{Store: s.store, Apply: s.applyRaw, Log: cfg.Log, Networks: s.nets, DockerCerts: cfg.DockerCerts,
		Evacuate: func(taskID, reason string) error { _, err := s.moves.Evacuate(taskID, reason); return err }})
	s.moves = migrate.New(migrate.Options{Store: s.store, Apply: s.applyRaw, Tasks: s.orch, Volumes: s.vols, Leases: s.nets, Log: cfg.Log})
	// Before Raft opens the data dir (and may start an election with it):
	// a data dir of one cluster among the managers of another is refused.
	if err := s.checkPeersCluster(); err != nil {
		return nil, err
	}
	// Listen for the API first: a port in use fails before Raft touches
	// the data dir.
	if s.apiL, err = transport.Listen(cfg.APIAddr(), creds.ServerTLS()); err != nil {
		return nil, err
	}
	if err := s.startRaft(); err != nil {
		s.apiL.Close()
		return nil, err
	}
	s.id.Name = cfg.Name
	if err := saveIdentity(cfg.DataDir, s.id); err != nil {
		s.Shutdown()
		return nil, err
	}
	s.http = &http.Server{Handler: s.routes(), ReadHeaderTimeout: 5 * time.Second}
	s.goRun(func() {
		if err := transport.Serve(s.http, s.apiL); err != nil {
			cfg.Log.Error("api server stopped", "err", err)
		}
	})
	s.goRun(s.watchLeadership)
	s.goRun(func() { enroll.KeepRenewed(s.renewCtx, creds, s.renewOwn, cfg.Log) })
	cfg.Log.Info("manager started", "name", cfg.Name, "api", cfg.APIAddr(), "raft", cfg.RaftAddr(), "data_dir", cfg.DataDir)
	return s, nil
}

// startRaft opens the log store, snapshots and transport, and Raft itself.
func (s *Server) startRaft() error {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(s.cfg.Name)
	rc.HeartbeatTimeout = raftHeartbeatTimeout
	rc.ElectionTimeout = raftElectionTimeout
	rc.LeaderLeaseTimeout = raftLeaderLease
	rc.CommitTimeout = raftCommitTimeout
	rc.NotifyCh = s.notify
	rc.Logger = hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn, Output: os.Stderr})
	var err error
	if s.bolt, err = raftboltdb.NewBoltStore(filepath.Join(s.cfg.DataDir, "raft.db")); err != nil {
		return fmt.Errorf("open raft log: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStore(s.cfg.DataDir, 2, os.Stderr)
	if err != nil {
		s.bolt.Close()
		return fmt.Errorf("open snapshots: %w", err)
	}
	if s.hasState, err = raft.HasExistingState(s.bolt, s.bolt, snaps); err != nil {
		s.bolt.Close()
		return fmt.Errorf("read raft state: %w", err)
	}
	if s.trans, err = s.sec.creds.RaftTransport(s.cfg.RaftAddr(), s.cfg.RaftAddr(), os.Stderr); err != nil {
		s.bolt.Close()
		return err
	}
	if s.raft, err = raft.NewRaft(rc, s.store, s.bolt, s.bolt, snaps, s.trans); err != nil {
		s.trans.Close()
		s.bolt.Close()
		return fmt.Errorf("start raft: %w", err)
	}
	return nil
}

// Run forms or joins the cluster, keeps this manager registered in the
// store, and serves until ctx ends. It returns an error when this manager
// is refused (another cluster, a name already taken).
func (s *Server) Run(ctx context.Context) error {
	defer s.Shutdown()
	if err := s.formCluster(ctx); err != nil {
		return err
	}
	s.goRun(func() { s.keepRegistered(ctx) })
	select {
	case <-ctx.Done():
		return nil
	case <-s.stopped:
		return errors.New("manager stopped")
	}
}

// Shutdown stops the API and Raft and closes the data dir.
func (s *Server) Shutdown() {
	s.stopOnce.Do(func() {
		close(s.stopped)
		s.stopRenewal()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if s.http != nil {
			_ = s.http.Shutdown(ctx)
		} else {
			s.apiL.Close()
		}
		if err := s.raft.Shutdown().Error(); err != nil {
			s.cfg.Log.Warn("raft shutdown", "err", err)
		}
		s.trans.Close()
		s.bolt.Close()
	})
	s.wg.Wait()
}

// goRun runs fn in a goroutine that Shutdown waits for.
func (s *Server) goRun(fn func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn()
	}()
}

// Raft is the manager's Raft node.
func (s *Server) Raft() *raft.Raft { return s.raft }

// apply commits one command through Raft (on the leader) and returns its
// log index.
func (s *Server) apply(t store.CommandType, payload any) (uint64, error) {
	b, err := store.Encode(t, payload)
	if err != nil {
		return 0, err
	}
	return s.applyRaw(b)
}

// applyRaw commits one encoded command through Raft (on the leader); a
// command the store refused is a *refusedError.
func (s *Server) applyRaw(b []byte) (uint64, error) {
	f := s.raft.Apply(b, applyTimeout)
	if err := f.Error(); err != nil {
		return 0, err
	}
	if err := store.ResponseError(f.Response()); err != nil {
		return f.Index(), &refusedError{err: err}
	}
	return f.Index(), nil
}

// refusedError is a command the store refused (a name clash, an unknown
// host): valid Raft, invalid request.
type refusedError struct{ err error }

func (e *refusedError) Error() string { return e.err.Error() }
func (e *refusedError) Unwrap() error { return e.err }
