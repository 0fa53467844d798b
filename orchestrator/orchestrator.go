// Package orchestrator is the leader's work on apps: it turns a deployed
// spec into tasks placed by the scheduler (committed with optimistic
// concurrency), and reconciles what should run with what runs, creating,
// starting, restarting and removing containers through each host's Docker
// API. Only the leader runs it; everything it knows survives in the store,
// so the next leader carries on where it stopped.
package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/clusterctl/clusterctl/engine"
	"github.com/clusterctl/clusterctl/networks"
	"github.com/clusterctl/clusterctl/scheduler"
	"github.com/clusterctl/clusterctl/store"
	"github.com/docker/docker/client"
)

// Applier commits one encoded command through Raft on the leader and
// returns its index; a command the store refused comes back as an error
// wrapping store.ErrConflict, ErrInvalid or ErrNotFound.
type Applier func(cmd []byte) (uint64, error)

// Options configure an Orchestrator.
type Options struct {
	Store *store.Store
	Apply Applier
	Log   *slog.Logger
	// Every is how often the reconciler looks even when nothing changed
	// (restart delays, hosts going quiet); store changes wake it at once.
	Every time.Duration
	// Workers bounds the Docker calls in flight across all hosts.
	Workers int
	// Engines returns a Docker client for a host; nil connects with
	// engine.ConnectTLS, with the host's certificate under DockerCerts.
	// Tests substitute fakes.
	Engines func(h store.Host) (*client.Client, error)
	// DockerCerts holds the client certificates of hosts whose Docker
	// requires TLS (DockerCerts/HOST, Docker's DOCKER_CERT_PATH layout).
	DockerCerts string
	// Networks leases tasks their addresses on cluster networks; nil
	// refuses apps that use them.
	Networks *networks.Manager
	// Evacuate starts a move of a task off its host (package migrate):
	// a stateful task whose host is down comes back elsewhere this way
	// when its volumes can get there. Nil leaves such tasks waiting.
	Evacuate func(taskID, reason string) error
}

// Orchestrator plans and reconciles apps. One exists per manager; Run
// works only while the manager leads, the planning methods answer API
// requests on the leader.
type Orchestrator struct {
	opts Options
	log  *slog.Logger

	planMu sync.Mutex // one plan at a time: the Stack is not concurrent
	stack  *scheduler.Stack

	engines  *engines
	work     *inflight
	netLocks keyLocks // one network creation per host and name at a time
	memory   *memory  // per-task facts not worth a Raft write (restart timers)
}

// New returns an orchestrator over a store.
func New(opts Options) *Orchestrator {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Every == 0 {
		opts.Every = 500 * time.Millisecond
	}
	if opts.Workers == 0 {
		opts.Workers = 16
	}
	if opts.Engines == nil {
		opts.Engines = func(h store.Host) (*client.Client, error) {
			return engine.ConnectTLS(h.Docker, engine.CertDirOf(opts.DockerCerts, h.Name))
		}
	}
	return &Orchestrator{
		opts:    opts,
		log:     opts.Log,
		stack:   scheduler.NewStack(scheduler.StackOptions{Rand: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))}),
		engines: newEngines(opts.Engines),
		work:    newInflight(opts.Workers),
		memory:  newMemory(),
	}
}

// Run reconciles until ctx ends (the manager lost leadership or stops).
// It waits for its Docker calls to finish before returning, so that the
// next leadership term starts from a quiet state.
func (o *Orchestrator) Run(ctx context.Context) {
	defer o.work.wait()
	o.memory.reset()
	tick := time.NewTicker(o.opts.Every)
	defer tick.Stop()
	for {
		index, err := o.reconcile(ctx)
		if err != nil && ctx.Err() == nil {
			o.log.Warn("reconcile", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-o.changed(ctx, index):
		}
	}
}

// changed returns a channel closed once the store moves past index, the
// one the last pass decided from, so a change is acted on without waiting
// for the tick, also one that landed while the pass ran.
func (o *Orchestrator) changed(ctx context.Context, index uint64) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		wctx, cancel := context.WithTimeout(ctx, o.opts.Every)
		defer cancel()
		_ = o.opts.Store.WaitIndex(wctx, index+1)
	}()
	return ch
}

// Engine returns the Docker client of a host, shared with the reconciler.
func (o *Orchestrator) Engine(h store.Host) (*client.Client, error) { return o.engines.get(h) }

// commit applies a batch of encoded commands as one log entry.
func (o *Orchestrator) commit(cmds [][]byte) (uint64, error) {
	if len(cmds) == 0 {
		return 0, nil
	}
	b, err := store.EncodeBatch(cmds...)
	if err != nil {
		return 0, err
	}
	return o.opts.Apply(b)
}

// isConflict says whether a commit was refused because the state changed
// since it was planned: plan again from a fresh view.
func isConflict(err error) bool { return errors.Is(err, store.ErrConflict) }

// engines caches one Docker client per endpoint.
type engines struct {
	connect func(store.Host) (*client.Client, error)
	mu      sync.Mutex
	byAddr  map[string]*client.Client
}

func newEngines(connect func(store.Host) (*client.Client, error)) *engines {
	return &engines{connect: connect, byAddr: map[string]*client.Client{}}
}

// get returns the client of a host's engine.
func (e *engines) get(h store.Host) (*client.Client, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c, ok := e.byAddr[h.Docker]; ok {
		return c, nil
	}
	c, err := e.connect(h)
	if err != nil {
		return nil, fmt.Errorf("docker on %s: %w", h.Name, err)
	}
	e.byAddr[h.Docker] = c
	return c, nil
}

// inflight runs Docker work in the background, at most one job per key
// (a task, a host's network) and a bounded number at once.
type inflight struct {
	sem  chan struct{}
	mu   sync.Mutex
	keys map[string]bool
	wg   sync.WaitGroup
}

func newInflight(n int) *inflight {
	return &inflight{sem: make(chan struct{}, n), keys: map[string]bool{}}
}

// busy says whether a job for key is running.
func (w *inflight) busy(key string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.keys[key]
}

// start runs fn for key unless a job for key already runs; it reports
// whether it started one.
func (w *inflight) start(key string, fn func()) bool {
	w.mu.Lock()
	if w.keys[key] {
		w.mu.Unlock()
		return false
	}
	w.keys[key] = true
	w.mu.Unlock()
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		w.sem <- struct{}{}
		defer func() { <-w.sem }()
		defer func() {
			w.mu.Lock()
			delete(w.keys, key)
			w.mu.Unlock()
		}()
		fn()
	}()
	return true
}

// wait blocks until every job has finished.
func (w *inflight) wait() { w.wg.Wait() }

// keyLocks is a mutex per key, made on first use.
type keyLocks struct {
	mu    sync.Mutex
	byKey map[string]*sync.Mutex
}

// lock locks key and returns its unlock.
func (k *keyLocks) lock(key string) func() {
	k.mu.Lock()
	if k.byKey == nil {
		k.byKey = map[string]*sync.Mutex{}
	}
	m, ok := k.byKey[key]
	if !ok {
		m = &sync.Mutex{}
		k.byKey[key] = m
	}
	k.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// memory holds what the leader remembers between passes but need not
// replicate: when a task may be restarted next, and when a Docker action
// last failed (to back off). A new leader starts empty, which at worst
// restarts a container a little early.
type memory struct {
	mu        sync.Mutex
	notBefore map[string]time.Time
}

func newMemory() *memory { return &memory{notBefore: map[string]time.Time{}} }

func (m *memory) reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	clear(m.notBefore)
}

// wait says whether key must wait at now; set with holdUntil.
func (m *memory) wait(key string, now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return now.Before(m.notBefore[key])
}

// holdUntil makes key wait until t.
func (m *memory) holdUntil(key string, t time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.notBefore[key] = t
}
