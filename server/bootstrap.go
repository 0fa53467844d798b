package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/clusterctl/clusterctl/api"
	"github.com/hashicorp/raft"
)

// formPoll is how often a forming manager asks its peers about themselves.
const formPoll = 300 * time.Millisecond

// formCluster makes this manager part of a cluster: a restarted manager
// already is (Start checked its peers are its cluster); a new one joins the
// cluster its peers have, or, with Bootstrap, starts a new one of itself,
// which the others join.
func (s *Server) formCluster(ctx context.Context) error {
	if s.hasState {
		return nil
	}
	for {
		done, err := s.tryForm(ctx)
		if err != nil || done {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(formPoll):
		}
	}
}

// tryForm looks at the peers once and joins or bootstraps if it can.
func (s *Server) tryForm(ctx context.Context) (bool, error) {
	if s.cfg.Bootstrap {
		return true, s.bootstrap()
	}
	peers, err := s.peers(ctx)
	if err != nil {
		return false, err
	}
	for _, p := range peers {
		if p.HasState && p.ClusterID != "" {
			return true, s.join(ctx, p)
		}
	}
	return false, nil
}

// peers asks every reachable peer about itself and refuses to go on if one
// has this manager's name: two managers with one name would corrupt Raft's
// configuration.
func (s *Server) peers(ctx context.Context) ([]*api.ServerSelf, error) {
	var peers []*api.ServerSelf
	for _, addr := range s.cfg.Join {
		if addr == s.cfg.APIAddr() {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		self, err := s.client.Self(pctx, addr)
		cancel()
		if api.IsTLSRefusal(err) {
			return nil, fmt.Errorf("data dir %s belongs to cluster %s but the manager at %s is not in it: %w", s.cfg.DataDir, s.id.ClusterID, addr, err)
		}
		if err != nil {
			continue
		}
		if self.Name == s.cfg.Name && self.RaftAddr != s.cfg.RaftAddr() {
			return nil, fmt.Errorf("another manager named %q runs at %s: give each manager its own --name", s.cfg.Name, addr)
		}
		if self.RaftAddr == s.cfg.RaftAddr() {
			continue // this manager, reached by another address
		}
		peers = append(peers, self)
	}
	return peers, nil
}

// checkPeersCluster refuses to run a restarted manager among peers of a
// different cluster: its data dir would be silently mixed into theirs.
func (s *Server) checkPeersCluster() error {
	if s.id.ClusterID == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	peers, err := s.peers(ctx)
	if err != nil {
		return err
	}
	for _, p := range peers {
		if p.ClusterID != "" && p.ClusterID != s.id.ClusterID {
			return fmt.Errorf("data dir %s belongs to cluster %s but the manager at %s is in cluster %s: use a new data dir to join it", s.cfg.DataDir, s.id.ClusterID, p.APIAddr, p.ClusterID)
		}
	}
	return nil
}

// join asks an existing cluster (through any of its managers; followers
// forward to the leader) to add this manager.
func (s *Server) join(ctx context.Context, via *api.ServerSelf) error {
	if s.cfg.ClusterID != "" && via.ClusterID != s.cfg.ClusterID {
		return fmt.Errorf("the managers at %s are cluster %s, not %s (--cluster-id): refusing to join", via.APIAddr, via.ClusterID, s.cfg.ClusterID)
	}
	resp, err := s.client.Join(ctx, api.JoinRequest{Name: s.cfg.Name, RaftAddr: s.cfg.RaftAddr(), APIAddr: s.cfg.APIAddr(), ClusterID: s.cfg.ClusterID})
	if err != nil {
		return fmt.Errorf("join the cluster through %s: %w", via.APIAddr, err)
	}
	s.cfg.Log.Info("joined cluster", "cluster_id", resp.ClusterID, "via", via.APIAddr)
	return nil
}

// bootstrap starts a new cluster of this manager alone: the cluster's CA
// is its own, so the others must join it with a token rather than form
// the cluster together.
func (s *Server) bootstrap() error {
	servers := []raft.Server{{ID: raft.ServerID(s.cfg.Name), Address: raft.ServerAddress(s.cfg.RaftAddr()), Suffrage: raft.Voter}}
	err := s.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
	if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		return fmt.Errorf("bootstrap the cluster: %w", err)
	}
	s.cfg.Log.Info("bootstrapped cluster", "managers", len(servers))
	return nil
}
