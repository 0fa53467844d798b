package tui

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/store"
)

// Snapshot is the cluster as the dashboard shows it, read in one go.
type Snapshot struct {
	Leader   string
	Index    uint64
	Hosts    []store.Host
	Tasks    []api.TaskStatus
	Volumes  []api.Volume
	Networks []api.Network
	Moves    []api.Move
}

// Fit is whether one host can take a task, and why not.
type Fit struct {
	Host   string
	Reason string // "" when it fits
}

// Source is where the dashboard reads the cluster and sends its actions:
// the managers' API (APISource), or a fake in tests.
type Source interface {
	Snapshot(ctx context.Context) (Snapshot, error)
	// Watch calls fn with every change after index until ctx ends or the
	// stream breaks (a manager went away).
	Watch(ctx context.Context, index uint64, fn func(store.Event) error) error
	// Fits asks, for every other host, whether the task could move there.
	Fits(ctx context.Context, t api.TaskStatus) ([]Fit, error)
	Move(ctx context.Context, t api.TaskStatus, to string) error
	Drain(ctx context.Context, host string) error
}

// APISource reads and acts through the managers' API.
type APISource struct{ Client *api.Client }

// Snapshot reads status, hosts, tasks, volumes, networks and moves.
func (s APISource) Snapshot(ctx context.Context) (Snapshot, error) {
	var snap Snapshot
	st, err := s.Client.Status(ctx)
	if err != nil {
		return snap, fmt.Errorf("status: %w", err)
	}
	snap.Leader, snap.Index = st.Leader, st.Index
	hosts, err := s.Client.Hosts(ctx, false)
	if err != nil {
		return snap, fmt.Errorf("hosts: %w", err)
	}
	snap.Hosts = hosts.Hosts
	tasks, err := s.Client.Tasks(ctx, "")
	if err != nil {
		return snap, fmt.Errorf("tasks: %w", err)
	}
	snap.Tasks = tasks.Tasks
	vols, err := s.Client.Volumes(ctx)
	if err != nil {
		return snap, fmt.Errorf("volumes: %w", err)
	}
	snap.Volumes = vols.Volumes
	nets, err := s.Client.Networks(ctx)
	if err != nil {
		return snap, fmt.Errorf("networks: %w", err)
	}
	snap.Networks = nets.Networks
	moves, err := s.Client.Moves(ctx)
	if err != nil {
		return snap, fmt.Errorf("moves: %w", err)
	}
	snap.Moves = moves.Moves
	return snap, nil
}

// Watch follows the store's events.
func (s APISource) Watch(ctx context.Context, index uint64, fn func(store.Event) error) error {
	return s.Client.Events(ctx, index, fn)
}

// Fits dry-runs a move of the task to every other host.
func (s APISource) Fits(ctx context.Context, t api.TaskStatus) ([]Fit, error) {
	hosts, err := s.Client.Hosts(ctx, false)
	if err != nil {
		return nil, err
	}
	var out []Fit
	for _, h := range hosts.Hosts {
		if h.Name == t.Host {
			continue
		}
		_, _, err := s.Client.StartMove(ctx, moveRequest(t, h.Name, true))
		f := Fit{Host: h.Name}
		if err != nil {
			f.Reason = reason(err)
		}
		out = append(out, f)
	}
	return out, nil
}

// Move starts a move; the dashboard follows it through the store.
func (s APISource) Move(ctx context.Context, t api.TaskStatus, to string) error {
	_, _, err := s.Client.StartMove(ctx, moveRequest(t, to, false))
	return err
}

// Drain marks a host draining and moves its tasks off it.
func (s APISource) Drain(ctx context.Context, host string) error {
	res, err := s.Client.Drain(ctx, host)
	if err != nil {
		return err
	}
	if len(res.Refused) > 0 {
		return errors.New(strings.Join(res.Refused, "; "))
	}
	return nil
}

// moveRequest is the API's request for moving t.
func moveRequest(t api.TaskStatus, to string, dryRun bool) api.MoveRequest {
	return api.MoveRequest{App: t.App, Service: t.Service, Slot: t.Slot, To: to, DryRun: dryRun}
}

// reason is an API refusal's message (the managers' one line).
func reason(err error) string {
	var se *api.StatusError
	if errors.As(err, &se) {
		return se.Message
	}
	return err.Error()
}

// apps lists the apps that have tasks, sorted.
func (s Snapshot) apps() []string {
	var out []string
	for _, t := range s.Tasks {
		if !slices.Contains(out, t.App) {
			out = append(out, t.App)
		}
	}
	slices.Sort(out)
	return out
}
