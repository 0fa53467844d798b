package api

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/clusterctl/clusterctl/spec"
)

// Deploy asks the managers to run an app (PUT /v1/apps/{name}): create it,
// or update it to this spec (changed services are replaced one container
// at a time, unchanged ones are left alone).
type Deploy struct {
	App spec.App `json:"app"`
	// Compose is the merged Compose file, kept for `clusterctl inspect`.
	Compose string `json:"compose,omitempty"`
	// DryRun plans without changing anything (`clusterctl plan`).
	DryRun bool `json:"dry_run,omitempty"`
}

// Scale sets a service's replica count (POST /v1/apps/{app}/scale).
type Scale struct {
	Service  string `json:"service"`
	Replicas int    `json:"replicas"`
	DryRun   bool   `json:"dry_run,omitempty"`
}

// PlanResult is the managers' answer to a Deploy or Scale: what changes
// where. A plan with Failures is refused (409) unless it was a dry run;
// nothing was changed then.
type PlanResult struct {
	App      string        `json:"app"`
	Index    uint64        `json:"index"` // the raft index of the commit, 0 for a dry run
	Tasks    []PlannedTask `json:"tasks"`
	Failures []string      `json:"failures,omitempty"` // "web.4: no host fits: 3 hosts: port 8080/tcp in use"
	Problems []string      `json:"problems,omitempty"` // what up would hit (image missing on a host...)
}

// PlannedTask is one task in a plan.
type PlannedTask struct {
	Task    string `json:"task"` // "web.1"
	ID      string `json:"id"`
	Service string `json:"service"`
	Slot    int    `json:"slot"`
	Host    string `json:"host,omitempty"`
	// Action is what happens to the task: create, keep, update (replaced
	// by a rolling update), remove.
	Action string `json:"action"`
	// Why explains the choice: "spread: 0 web tasks there", "attached
	// volume db-data", "stays".
	Why string `json:"why,omitempty"`
}

// Plan actions.
const (
	ActionCreate = "create"
	ActionKeep   = "keep"
	ActionUpdate = "update"
	ActionRemove = "remove"
)

// AppsResponse lists apps (GET /v1/apps).
type AppsResponse struct {
	Index uint64       `json:"index"`
	Apps  []AppSummary `json:"apps"`
}

// AppSummary is one app in AppsResponse.
type AppSummary struct {
	Name     string `json:"name"`
	Services int    `json:"services"`
	Tasks    int    `json:"tasks"`
	Running  int    `json:"running"`
	Removing bool   `json:"removing,omitempty"`
}

// TasksResponse lists tasks (GET /v1/tasks?app=NAME).
type TasksResponse struct {
	Index uint64       `json:"index"`
	Tasks []TaskStatus `json:"tasks"`
}

// TaskStatus is one task as `clusterctl ps` shows it.
type TaskStatus struct {
	App       string   `json:"app"`
	Service   string   `json:"service"`
	Task      string   `json:"task"` // "web.1"
	Slot      int      `json:"slot"` // 1 in "web.1"
	ID        string   `json:"id"`
	Host      string   `json:"host"` // where it runs, or is to run
	State     string   `json:"state"`
	Desired   string   `json:"desired"`
	Health    string   `json:"health,omitempty"`
	IP        string   `json:"ip"`
	Ports     []string `json:"ports"` // "8080:8080/tcp"
	Container string   `json:"container,omitempty"`
	Restarts  int      `json:"restarts,omitempty"`
	Message   string   `json:"message,omitempty"`
	UpToDate  bool     `json:"up_to_date"` // runs the service's current spec
}

// Down removes an app (DELETE /v1/apps/{name}?volumes=true): its
// containers, its networks and, with volumes, its volumes. The app is gone
// from GET /v1/apps/{name} (404) when it is all done.
func (c *Client) Down(ctx context.Context, app string, volumes bool) error {
	return c.do(ctx, http.MethodDelete, "/v1/apps/"+url.PathEscape(app)+"?volumes="+strconv.FormatBool(volumes), nil, nil)
}

// Deploy submits an app, or plans it with d.DryRun.
func (c *Client) Deploy(ctx context.Context, d Deploy) (*PlanResult, error) {
	var out PlanResult
	err := c.do(ctx, http.MethodPut, "/v1/apps/"+url.PathEscape(d.App.Name), d, &out)
	return &out, err
}

// Scale sets the replica count of one service of an app.
func (c *Client) Scale(ctx context.Context, app string, s Scale) (*PlanResult, error) {
	var out PlanResult
	err := c.do(ctx, http.MethodPost, "/v1/apps/"+url.PathEscape(app)+"/scale", s, &out)
	return &out, err
}

// Apps lists the apps.
func (c *Client) Apps(ctx context.Context) (*AppsResponse, error) {
	var out AppsResponse
	return &out, c.do(ctx, http.MethodGet, "/v1/apps", nil, &out)
}

// App returns one app's summary; IsNotFound(err) once it is gone.
func (c *Client) App(ctx context.Context, name string) (*AppSummary, error) {
	var out AppSummary
	return &out, c.do(ctx, http.MethodGet, "/v1/apps/"+url.PathEscape(name), nil, &out)
}

// Tasks lists the tasks of an app ("" for all apps).
func (c *Client) Tasks(ctx context.Context, app string) (*TasksResponse, error) {
	var out TasksResponse
	return &out, c.do(ctx, http.MethodGet, "/v1/tasks?app="+url.QueryEscape(app), nil, &out)
}

// Logs copies a task's container output (stdout and stderr, demultiplexed)
// to w, following it until ctx ends if follow is set; tail is the number
// of lines from the end to start with, or -1 for all.
func (c *Client) Logs(ctx context.Context, taskID string, follow bool, tail int, w io.Writer) error {
	server := c.pick()
	path := fmt.Sprintf("/v1/tasks/%s/logs?follow=%t&tail=%d", url.PathEscape(taskID), follow, tail)
	resp, err := c.send(ctx, c.stream, http.MethodGet, server, path, nil)
	if err != nil {
		c.next(server)
		return fmt.Errorf("logs of %s: %w", taskID, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return &StatusError{Code: resp.StatusCode, Message: readError(resp)}
	}
	if _, err := io.Copy(w, resp.Body); err != nil && ctx.Err() == nil {
		return fmt.Errorf("logs of %s: %w", taskID, err)
	}
	return nil
}
