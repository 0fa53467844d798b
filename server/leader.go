package server

import (
	"context"
	"time"

	"github.com/clusterctl/clusterctl/store"
	"github.com/hashicorp/raft"
)

// Hosts: an agent heartbeats every second; a host not heard from for
// hostTTL is marked down, checked every monitorEvery, so a dead host is down
// within hostTTL+monitorEvery (under the 5 s the cluster promises).
const (
	hostTTL      = 3 * time.Second
	monitorEvery = 250 * time.Millisecond
	// persistEvery bounds how stale a host's recorded last heartbeat may
	// be: heartbeats that change nothing are kept in the leader's memory and
	// written to the log only this often.
	persistEvery = 10 * time.Second
)

// watchLeadership runs the leader's duties while this manager leads.
func (s *Server) watchLeadership() {
	cancel := func() {}
	stop := func() { cancel() }
	defer stop()
	for {
		select {
		case <-s.stopped:
			return
		case leader := <-s.notify:
			stop()
			if leader {
				ctx, c := context.WithCancel(context.Background())
				cancel = c
				s.goRun(func() { s.lead(ctx) })
			}
		}
	}
}

// lead makes a new leader ready: it commits a barrier (so that everything
// earlier leaders committed is applied here), gives a new cluster its ID,
// registers itself, then watches the hosts' heartbeats until it loses
// leadership.
func (s *Server) lead(ctx context.Context) {
	for {
		err := s.raft.Barrier(applyTimeout).Error()
		if err == nil {
			break
		}
		s.cfg.Log.Warn("leader barrier", "err", err)
		select {
		case <-ctx.Done():
			return // leadership lost before this leader was ready
		case <-time.After(100 * time.Millisecond):
		}
	}
	s.cfg.Log.Info("leading", "term", s.raft.CurrentTerm())
	if s.store.View().ClusterID() == "" {
		if _, err := s.apply(store.CmdInitCluster, store.InitCluster{ClusterID: s.id.ClusterID}); err != nil {
			s.cfg.Log.Error("init cluster", "err", err)
		}
	}
	if err := s.recordSecurity(); err != nil {
		s.cfg.Log.Error("record the cluster's CA", "err", err)
	}
	s.registerSelf()
	s.goRun(func() { s.orch.Run(ctx) })
	s.goRun(func() { s.moves.Run(ctx) })
	s.monitorHosts(ctx)
}

// me is this manager as the store records it.
func (s *Server) me() store.Server {
	return store.Server{Name: s.cfg.Name, RaftAddr: s.cfg.RaftAddr(), APIAddr: s.cfg.APIAddr()}
}

// registerSelf records this manager's addresses in the store, so that the
// others can forward requests to it.
func (s *Server) registerSelf() {
	me := s.me()
	if have, ok := s.store.View().Server(s.cfg.Name); ok && have == me {
		return
	}
	if _, err := s.apply(store.CmdRegisterServer, me); err != nil {
		s.cfg.Log.Warn("register manager", "err", err)
	}
}

// keepRegistered makes sure this manager's addresses are in the store and
// that its data dir remembers the cluster it belongs to.
func (s *Server) keepRegistered(ctx context.Context) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		v := s.store.View()
		me := s.me()
		have, ok := v.Server(s.cfg.Name)
		if ok && have == me && s.rememberCluster(v.ClusterID()) {
			return
		}
		if !ok || have != me {
			if err := s.client.RegisterServer(ctx, me); err != nil {
				s.cfg.Log.Debug("register manager", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// rememberCluster writes the cluster ID into the data dir's identity once
// it is known; it reports whether it is.
func (s *Server) rememberCluster(id string) bool {
	if id == "" {
		return false
	}
	if s.id.ClusterID == id {
		return true
	}
	s.id.ClusterID = id
	if err := saveIdentity(s.cfg.DataDir, s.id); err != nil {
		s.cfg.Log.Error("remember cluster", "err", err)
		return false
	}
	return true
}

// monitorHosts marks hosts down when their heartbeats stop. A new leader
// has no heartbeat history: every host gets a full TTL from now.
func (s *Server) monitorHosts(ctx context.Context) {
	s.hb.reset(time.Now())
	tick := time.NewTicker(monitorEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			if s.raft.State() != raft.Leader {
				continue
			}
			var dead []string
			for _, h := range s.store.View().Hosts() {
				if h.State == store.HostUp && now.Sub(s.hb.last(h.Name, now)) > hostTTL {
					dead = append(dead, h.Name)
				}
			}
			if len(dead) == 0 {
				continue
			}
			if _, err := s.apply(store.CmdSetHostState, store.SetHostState{Names: dead, State: store.HostDown}); err != nil {
				s.cfg.Log.Warn("mark hosts down", "hosts", dead, "err", err)
				continue
			}
			s.cfg.Log.Info("hosts down", "hosts", dead)
		}
	}
}
