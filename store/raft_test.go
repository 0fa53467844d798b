package store_test

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/clusterctl/clusterctl/store"
	"github.com/clusterctl/clusterctl/store/mock"
)

// node is one raft member of a test cluster.
type node struct {
	id    raft.ServerID
	addr  raft.ServerAddress
	trans *raft.InmemTransport
	fsm   *store.Store
	raft  *raft.Raft
}

// testConfig returns a raft config with short timeouts for in-memory tests.
func testConfig(id raft.ServerID) *raft.Config {
	c := raft.DefaultConfig()
	c.LocalID = id
	c.HeartbeatTimeout = 50 * time.Millisecond
	c.ElectionTimeout = 50 * time.Millisecond
	c.LeaderLeaseTimeout = 50 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	c.TrailingLogs = 1 // a user snapshot compacts the log: late joiners need InstallSnapshot
	c.LogOutput = io.Discard
	return c
}

// newNodes returns n unstarted nodes with connected in-memory transports.
func newNodes(n int) []*node {
	nodes := make([]*node, n)
	for i := range nodes {
		id := raft.ServerID(fmt.Sprintf("server%d", i+1))
		addr, trans := raft.NewInmemTransport(raft.ServerAddress(id))
		nodes[i] = &node{id: id, addr: addr, trans: trans, fsm: store.New(nil)}
	}
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				a.trans.Connect(b.addr, b.trans)
			}
		}
	}
	return nodes
}

// start creates the node's raft, bootstrapping it with configuration when
// that is not nil.
func (n *node) start(t *testing.T, configuration *raft.Configuration) {
	t.Helper()
	conf := testConfig(n.id)
	logs, snaps := raft.NewInmemStore(), raft.NewInmemSnapshotStore()
	if configuration != nil {
		if err := raft.BootstrapCluster(conf, logs, logs, snaps, n.trans, *configuration); err != nil {
			t.Fatalf("bootstrap %s: %v", n.id, err)
		}
	}
	r, err := raft.NewRaft(conf, n.fsm, logs, logs, snaps, n.trans)
	if err != nil {
		t.Fatalf("start %s: %v", n.id, err)
	}
	n.raft = r
	t.Cleanup(func() { _ = r.Shutdown().Error() })
}

// startCluster starts nodes bootstrapped with one configuration of all.
func startCluster(t *testing.T, nodes []*node) {
	t.Helper()
	var configuration raft.Configuration
	for _, n := range nodes {
		configuration.Servers = append(configuration.Servers, raft.Server{ID: n.id, Address: n.addr})
	}
	for _, n := range nodes {
		n.start(t, &configuration)
	}
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitLeader polls until exactly one of nodes leads, and returns it.
func waitLeader(t *testing.T, nodes []*node) *node {
	t.Helper()
	var leader *node
	waitFor(t, 5*time.Second, "a leader", func() bool {
		leader = nil
		for _, n := range nodes {
			if n.raft.State() == raft.Leader {
				if leader != nil {
					return false
				}
				leader = n
			}
		}
		return leader != nil
	})
	return leader
}

// raftApply applies a command through raft on n and fails on any error.
func raftApply(t *testing.T, n *node, typ store.CommandType, payload any) uint64 {
	t.Helper()
	f := n.raft.Apply(encode(t, typ, payload), 2*time.Second)
	if err := f.Error(); err != nil {
		t.Fatalf("raft apply %s on %s: %v", typ, n.id, err)
	}
	if err := store.ResponseError(f.Response()); err != nil {
		t.Fatalf("raft apply %s on %s: refused: %v", typ, n.id, err)
	}
	return f.Index()
}

// replicated is the part of the state compared across replicas.
type replicated struct {
	Index uint64
	Vars  []store.Var
	Hosts []store.Host
}

// snapshotOf reads the compared state of a node.
func snapshotOf(n *node) replicated {
	v := n.fsm.View()
	return replicated{Index: v.Index(), Vars: v.Vars(""), Hosts: v.Hosts()}
}

// waitConverged polls until every node's FSM has applied index and all hold
// the same state; it returns that state.
func waitConverged(t *testing.T, nodes []*node, index uint64) replicated {
	t.Helper()
	var first replicated
	waitFor(t, 5*time.Second, fmt.Sprintf("all nodes at index %d with one state", index), func() bool {
		first = snapshotOf(nodes[0])
		if first.Index < index {
			return false
		}
		for _, n := range nodes[1:] {
			if !reflect.DeepEqual(first, snapshotOf(n)) {
				return false
			}
		}
		return true
	})
	return first
}

func TestRaftClusterReplicatesAndFailsOver(t *testing.T) {
	nodes := newNodes(3)
	startCluster(t, nodes)
	leader := waitLeader(t, nodes)

	raftApply(t, leader, store.CmdInitCluster, store.InitCluster{ClusterID: mock.ClusterID})
	for _, h := range mock.Hosts(3) {
		raftApply(t, leader, store.CmdRegisterHost, h)
	}
	var last uint64
	for i := range 20 {
		last = raftApply(t, leader, store.CmdSetVar, store.Var{Key: fmt.Sprintf("k%02d", i), Value: fmt.Sprint(i)})
	}
	got := waitConverged(t, nodes, last)
	if len(got.Vars) != 20 || len(got.Hosts) != 3 {
		t.Fatalf("converged on %d vars and %d hosts, want 20 and 3", len(got.Vars), len(got.Hosts))
	}

	// Refusals are replicated too: every node refuses and stays equal.
	f := leader.raft.Apply(encode(t, store.CmdInitCluster, store.InitCluster{ClusterID: "other"}), time.Second)
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	if err := store.ResponseError(f.Response()); err == nil {
		t.Fatal("second cluster id accepted through raft")
	}
	waitConverged(t, nodes, f.Index())

	// Kill the leader: the other two elect a new one and go on.
	if err := leader.raft.Shutdown().Error(); err != nil {
		t.Fatalf("shut down leader: %v", err)
	}
	var rest []*node
	for _, n := range nodes {
		if n != leader {
			n.trans.Disconnect(leader.addr)
			rest = append(rest, n)
		}
	}
	newLeader := waitLeader(t, rest)
	index := raftApply(t, newLeader, store.CmdSetVar, store.Var{Key: "after", Value: "failover"})
	got = waitConverged(t, rest, index)
	for _, n := range rest {
		if v, ok := n.fsm.View().Var("after"); !ok || v.Value != "failover" || v.ModifyIndex != index {
			t.Fatalf("%s: var after = %+v (found %v), want failover at %d", n.id, v, ok, index)
		}
		if n.fsm.View().ClusterID() != mock.ClusterID {
			t.Fatalf("%s: cluster id %q", n.id, n.fsm.View().ClusterID())
		}
	}
	if len(got.Vars) != 21 {
		t.Fatalf("after failover: %d vars, want 21", len(got.Vars))
	}
}

func TestRaftSnapshotInstallOnNewNode(t *testing.T) {
	nodes := newNodes(4)
	startCluster(t, nodes[:3])
	leader := waitLeader(t, nodes[:3])
	for _, h := range mock.Hosts(5) {
		raftApply(t, leader, store.CmdRegisterHost, h)
	}
	for i := range 30 {
		raftApply(t, leader, store.CmdSetVar, store.Var{Key: fmt.Sprintf("k%02d", i), Value: fmt.Sprint(i)})
	}
	// Snapshot and compact the leader's log, so a new node can only catch
	// up through InstallSnapshot (Persist on the leader, Restore on it).
	if err := leader.raft.Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	last := raftApply(t, leader, store.CmdSetVar, store.Var{Key: "tail", Value: "after snapshot"})

	joiner := nodes[3]
	joiner.start(t, nil)
	if err := leader.raft.AddVoter(joiner.id, joiner.addr, 0, 2*time.Second).Error(); err != nil {
		t.Fatalf("add voter: %v", err)
	}
	got := waitConverged(t, []*node{leader, joiner}, last)
	if len(got.Hosts) != 5 || len(got.Vars) != 31 {
		t.Fatalf("joiner has %d hosts and %d vars, want 5 and 31", len(got.Hosts), len(got.Vars))
	}
	// Restore restarted the joiner's event buffer at the snapshot's index:
	// proof that it caught up through a snapshot, not by replaying the log.
	if _, _, err := joiner.fsm.Events(1); !errors.Is(err, store.ErrEventsTruncated) {
		t.Fatalf("joiner events since 1: %v, want truncated (no snapshot installed?)", err)
	}
}
