package api

import (
	"context"
	"net/url"
	"time"

	"github.com/clusterctl/clusterctl/store"
)

// MoveRequest asks for a task to move to another host (POST /v1/moves).
type MoveRequest struct {
	App     string `json:"app"`
	Service string `json:"service"`
	Slot    int    `json:"slot"` // 0 means 1
	To      string `json:"to"`
	// DryRun checks the move and records nothing.
	DryRun bool `json:"dry_run,omitempty"`
	// TimeoutMS bounds the move until its target is verified; 0 is the
	// default (5 minutes).
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
	// Live asks for a checkpoint/restore move, memory included.
	Live bool `json:"live,omitempty"`
}

// Move is a move as the API shows it: the store's record with its
// figures worked out.
type Move struct {
	store.Move
	// DowntimeMS runs from the source stopping to the target verified.
	DowntimeMS int64 `json:"downtime_ms"`
	// TotalMS runs from the start to the end (or now).
	TotalMS int64 `json:"total_ms"`
}

// MoveOf works out a move's figures.
func MoveOf(m store.Move) Move {
	out := Move{Move: m}
	if !m.Stopped.IsZero() && !m.Verified.IsZero() {
		out.DowntimeMS = m.Verified.Sub(m.Stopped).Milliseconds()
	}
	end := m.Finished
	if end.IsZero() {
		end = time.Now()
	}
	out.TotalMS = end.Sub(m.Started).Milliseconds()
	return out
}

// MovesResponse lists moves, newest first.
type MovesResponse struct {
	Moves []Move `json:"moves"`
}

// MovePlan is a dry run's answer.
type MovePlan struct {
	Task    string   `json:"task"`
	From    string   `json:"from"`
	To      string   `json:"to"`
	Volumes []string `json:"volumes,omitempty"`
}

// DrainResponse is what a drain started: a move per task, and the tasks
// that cannot leave, each with why.
type DrainResponse struct {
	Host    string   `json:"host"`
	Moves   []Move   `json:"moves"`
	Refused []string `json:"refused,omitempty"`
}

// StartMove starts a move (or checks it, DryRun: then the Move is nil).
func (c *Client) StartMove(ctx context.Context, req MoveRequest) (*Move, *MovePlan, error) {
	if req.DryRun {
		var plan MovePlan
		err := c.do(ctx, "POST", "/v1/moves", req, &plan)
		return nil, &plan, err
	}
	var m Move
	err := c.do(ctx, "POST", "/v1/moves", req, &m)
	return &m, nil, err
}

// Moves lists past and running moves.
func (c *Client) Moves(ctx context.Context) (*MovesResponse, error) {
	var out MovesResponse
	err := c.do(ctx, "GET", "/v1/moves", nil, &out)
	return &out, err
}

// Move reads one move.
func (c *Client) Move(ctx context.Context, id string) (*Move, error) {
	var out Move
	err := c.do(ctx, "GET", "/v1/moves/"+url.PathEscape(id), nil, &out)
	return &out, err
}

// Drain marks a host draining and moves its tasks off it.
func (c *Client) Drain(ctx context.Context, host string) (*DrainResponse, error) {
	var out DrainResponse
	err := c.do(ctx, "POST", "/v1/hosts/"+url.PathEscape(host)+"/drain", struct{}{}, &out)
	return &out, err
}

// Activate lets a drained host take tasks again.
func (c *Client) Activate(ctx context.Context, host string) error {
	return c.do(ctx, "POST", "/v1/hosts/"+url.PathEscape(host)+"/activate", struct{}{}, nil)
}
