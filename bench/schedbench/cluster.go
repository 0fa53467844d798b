package schedbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/hashicorp/raft"

	"github.com/clusterctl/clusterctl/store"
)

// node is one raft member of the in-process cluster, with its own replica
// of the state: a real store.Store that applies every committed entry.
type node struct {
	id    raft.ServerID
	addr  raft.ServerAddress
	trans *raft.InmemTransport
	fsm   *store.Store
	raft  *raft.Raft
}

// cluster is three managers in one process, wired by in-memory transports,
// so the benchmark measures the scheduler, raft replication and three FSM
// applies without a network or disk in the way.
type cluster struct {
	nodes []*node
}

// raftConfig returns the configuration of one bench node.
//
// Timeouts are far longer than the store tests' 50 ms, and longer than
// raft's defaults: during the run every core is busy applying entries
// (three replicas in one process), and on a loaded machine a heartbeat
// answered a few hundred milliseconds late must not cost the leader its
// lease in the middle of a measurement. Electing the first leader then
// takes a second or two, before anything is timed.
//
// With snapshotEvery > 0, snapshots compact the in-memory log (see
// Options.SnapshotEvery): each keeps trailingLogs entries, more than a
// follower may lag (Options.MaxLag), so no follower needs InstallSnapshot.
// Otherwise no snapshot is taken, as with raft's defaults in a run of a
// few thousand entries.
//
// Raft's own log lines are dropped unless SCHEDBENCH_RAFTLOG is set, for
// when a run loses its leader and the reason is wanted.
func raftConfig(id raft.ServerID, snapshotEvery int) *raft.Config {
	c := raft.DefaultConfig()
	c.LocalID = id
	c.HeartbeatTimeout = time.Second
	c.ElectionTimeout = time.Second
	c.LeaderLeaseTimeout = time.Second
	c.CommitTimeout = 5 * time.Millisecond
	c.LogOutput = io.Discard
	if os.Getenv("SCHEDBENCH_RAFTLOG") != "" {
		c.LogOutput = os.Stderr
	}
	if snapshotEvery > 0 {
		c.SnapshotThreshold = uint64(snapshotEvery)
		c.SnapshotInterval = 100 * time.Millisecond // a check, cheap when below the threshold
		c.TrailingLogs = trailingLogs
	} else {
		c.SnapshotThreshold = math.MaxUint64
		c.SnapshotInterval = 24 * time.Hour
	}
	return c
}

// trailingLogs is how many entries a snapshot leaves in the log.
const trailingLogs = 64

// startCluster starts n nodes bootstrapped as one cluster and waits for a
// leader.
func startCluster(ctx context.Context, n, snapshotEvery int) (*cluster, error) {
	c := &cluster{}
	var conf raft.Configuration
	for i := range n {
		id := raft.ServerID(fmt.Sprintf("server%d", i+1))
		addr, trans := raft.NewInmemTransport(raft.ServerAddress(id))
		c.nodes = append(c.nodes, &node{id: id, addr: addr, trans: trans, fsm: store.New(nil)})
		conf.Servers = append(conf.Servers, raft.Server{ID: id, Address: addr})
	}
	for _, a := range c.nodes {
		for _, b := range c.nodes {
			if a != b {
				a.trans.Connect(b.addr, b.trans)
			}
		}
	}
	for _, nd := range c.nodes {
		if err := nd.start(conf, snapshotEvery); err != nil {
			return nil, errors.Join(err, c.shutdown())
		}
	}
	return c, nil
}

// start bootstraps and starts the node's raft.
func (nd *node) start(conf raft.Configuration, snapshotEvery int) error {
	cfg := raftConfig(nd.id, snapshotEvery)
	logs := raft.NewInmemStore()
	// A discard store: a snapshot here only exists to let raft compact
	// the log, and keeping it would hold a serialized copy of the state
	// per node. Persist still serializes everything, so its cost is paid.
	snaps := raft.NewDiscardSnapshotStore()
	if err := raft.BootstrapCluster(cfg, logs, logs, snaps, nd.trans, conf); err != nil {
		return fmt.Errorf("bootstrap %s: %w", nd.id, err)
	}
	r, err := raft.NewRaft(cfg, nd.fsm, logs, logs, snaps, nd.trans)
	if err != nil {
		return fmt.Errorf("start %s: %w", nd.id, err)
	}
	nd.raft = r
	return nil
}

// leader polls until one node leads and returns it.
func (c *cluster) leader(ctx context.Context) (*node, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, nd := range c.nodes {
			if nd.raft.State() == raft.Leader {
				return nd, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for a raft leader: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// followers returns every node but the leader.
func (c *cluster) followers(leader *node) []*node {
	var out []*node
	for _, nd := range c.nodes {
		if nd != leader {
			out = append(out, nd)
		}
	}
	return out
}

// shutdown stops every node's raft and transport.
func (c *cluster) shutdown() error {
	var errs []error
	for _, nd := range c.nodes {
		if nd.raft != nil {
			if err := nd.raft.Shutdown().Error(); err != nil {
				errs = append(errs, fmt.Errorf("shut down %s: %w", nd.id, err))
			}
		}
		if err := nd.trans.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close transport of %s: %w", nd.id, err))
		}
	}
	return errors.Join(errs...)
}

// apply commits one entry through the leader and returns its index once
// the leader's replica applied it without refusing it.
func apply(nd *node, data []byte) (uint64, error) {
	f := nd.raft.Apply(data, applyTimeout)
	return waitApplied(f)
}

// applyTimeout bounds how long raft.Apply may wait to enqueue an entry.
const applyTimeout = 30 * time.Second

// waitApplied waits for an apply future and returns the entry's index if
// it was committed and applied without a refusal.
func waitApplied(f raft.ApplyFuture) (uint64, error) {
	if err := f.Error(); err != nil {
		return 0, fmt.Errorf("raft apply: %w", err)
	}
	if err := store.ResponseError(f.Response()); err != nil {
		return 0, fmt.Errorf("raft entry %d refused: %w", f.Index(), err)
	}
	return f.Index(), nil
}
