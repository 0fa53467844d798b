package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/clusterctl/clusterctl/agentapi"
	"github.com/clusterctl/clusterctl/transport"
)

// VolumeCreate asks for a cluster volume (POST /v1/volumes). Creating a
// volume that exists with the same options succeeds: Docker creates a
// global-scope volume on every host that uses it.
type VolumeCreate struct {
	Name string `json:"name"`
	// Options are the driver options: backend (copy or block), size
	// (block only, e.g. 1GiB).
	Options map[string]string `json:"options,omitempty"`
}

// VolumeAttach asks for a volume's lease for a host (POST
// /v1/volumes/{name}/attach): the host may then mount it.
type VolumeAttach struct {
	Host string `json:"host"`
	// Local attaches it on the host now too (mounts a block volume's
	// image); the volume plugin attaches it itself when Docker mounts it.
	Local bool `json:"local,omitempty"`
}

// Volume is a cluster volume as the API shows it.
type Volume struct {
	Name       string            `json:"name"`
	Backend    string            `json:"backend"`
	Owner      string            `json:"owner"` // the lease holder, "" when attached nowhere
	Generation uint64            `json:"generation"`
	MovingTo   string            `json:"moving_to,omitempty"` // the host a move is handing it to
	SizeBytes  int64             `json:"size_bytes"`
	Options    map[string]string `json:"options,omitempty"`
	Created    time.Time         `json:"created,omitzero"`
	// UsedBy lists the containers that mount it, as host/container.
	UsedBy []string `json:"used_by,omitempty"`
}

// VolumesResponse lists the cluster volumes (GET /v1/volumes).
type VolumesResponse struct {
	Volumes []Volume `json:"volumes"`
}

// CreateVolume creates a cluster volume, or finds it if it exists with the
// same options.
func (c *Client) CreateVolume(ctx context.Context, req VolumeCreate) (*Volume, error) {
	var out Volume
	return &out, c.do(ctx, http.MethodPost, "/v1/volumes", req, &out)
}

// Volumes lists the cluster volumes.
func (c *Client) Volumes(ctx context.Context) (*VolumesResponse, error) {
	var out VolumesResponse
	return &out, c.do(ctx, http.MethodGet, "/v1/volumes", nil, &out)
}

// Volume returns one cluster volume.
func (c *Client) Volume(ctx context.Context, name string) (*Volume, error) {
	var out Volume
	return &out, c.do(ctx, http.MethodGet, "/v1/volumes/"+url.PathEscape(name), nil, &out)
}

// AttachVolume gives host the volume's lease (a no-op if it holds it).
func (c *Client) AttachVolume(ctx context.Context, name, host string) (*Volume, error) {
	var out Volume
	return &out, c.do(ctx, http.MethodPost, "/v1/volumes/"+url.PathEscape(name)+"/attach", VolumeAttach{Host: host}, &out)
}

// RemoveVolume removes a cluster volume and its data.
func (c *Client) RemoveVolume(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/volumes/"+url.PathEscape(name), nil, nil)
}

// VolumeProgress is how far a volume step has got.
type VolumeProgress = agentapi.VolumeProgress

// VolumeTarget names the host a volume operation hands the volume to
// (POST /v1/volumes/{name}/move, /precopy, /sync).
type VolumeTarget struct {
	Host string `json:"host"`
	// Keep keeps the old owner's copy of a copy volume after a move
	// (it is removed once the target confirmed its copy otherwise).
	Keep bool `json:"keep,omitempty"`
}

// VolumeReport sums up a volume operation: where the volume went, what
// travelled, how long each step took.
type VolumeReport struct {
	Volume     string `json:"volume"`
	Op         string `json:"op"` // move, precopy, sync, attach, detach
	Backend    string `json:"backend"`
	From       string `json:"from,omitempty"`
	To         string `json:"to,omitempty"`
	Generation uint64 `json:"generation"`
	// Copy volumes: the rounds run, the volume's size and what was sent.
	Rounds         int   `json:"rounds,omitempty"`
	Bytes          int64 `json:"bytes,omitempty"`
	BytesSent      int64 `json:"bytes_sent,omitempty"`
	FinalSyncBytes int64 `json:"final_sync_bytes,omitempty"`
	Resent         int   `json:"resent,omitempty"`
	// Step times in milliseconds; FinalSyncMS is the last round, the
	// target's check and switch-in and the lease handover (for a block
	// volume: the detach and the handover).
	PreCopyMS   int64 `json:"precopy_ms,omitempty"` // rounds and flush
	FlushMS     int64 `json:"flush_ms,omitempty"`   // of PreCopyMS: making the target's copy durable
	FinalSyncMS int64 `json:"final_sync_ms,omitempty"`
	AttachMS    int64 `json:"attach_ms,omitempty"`
	CleanupMS   int64 `json:"cleanup_ms,omitempty"`
	TotalMS     int64 `json:"total_ms"`
	SourceKept  bool  `json:"source_kept,omitempty"`
}

// VolumeEvent is one line of a streamed volume operation: progress, then
// the report or the error that ended it.
type VolumeEvent struct {
	Progress *VolumeProgress `json:"progress,omitempty"`
	Report   *VolumeReport   `json:"report,omitempty"`
	Error    string          `json:"error,omitempty"`
}

// AttachVolumeOn gives host the volume's lease (if nobody holds it) and
// attaches it there now.
func (c *Client) AttachVolumeOn(ctx context.Context, name, host string) (*Volume, error) {
	var out Volume
	return &out, c.do(ctx, http.MethodPost, "/v1/volumes/"+url.PathEscape(name)+"/attach", VolumeAttach{Host: host, Local: true}, &out)
}

// DetachVolume unmounts a block volume on its owner and releases its
// lease.
func (c *Client) DetachVolume(ctx context.Context, name string) (*Volume, error) {
	var out Volume
	return &out, c.do(ctx, http.MethodPost, "/v1/volumes/"+url.PathEscape(name)+"/detach", struct{}{}, &out)
}

// VolumeOp runs a long volume operation (op: move, precopy or sync) on
// the leader, calling progress with its reports, and returns its report.
// It is sent once: only a request that certainly did not arrive is tried
// on another manager.
func (c *Client) VolumeOp(ctx context.Context, op, name string, req VolumeTarget, progress func(VolumeProgress)) (*VolumeReport, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	path := "/v1/volumes/" + url.PathEscape(name) + "/" + op
	var resp *http.Response
	servers := c.leaderFirst(ctx)
	for _, server := range servers {
		resp, err = c.send(ctx, c.stream, http.MethodPost, server, path, body)
		if err == nil && resp.StatusCode == http.StatusServiceUnavailable {
			err = fmt.Errorf("%s: %s", server, readError(resp))
			resp.Body.Close()
		}
		if err == nil {
			break
		}
		if !transport.NeverSent(err) && resp == nil {
			return nil, fmt.Errorf("volume %s %s: outcome unknown: %w", op, name, err)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("volume %s %s: %w", op, name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, &StatusError{Code: resp.StatusCode, Message: readError(resp)}
	}
	return readVolumeEvents(resp.Body, progress)
}

// leaderFirst lists the managers with the leader first, as far as one of
// them can tell: an operation that streams for as long as a volume takes
// to copy goes straight to the leader rather than through a follower's
// forwarding proxy, one more connection that can break under it.
func (c *Client) leaderFirst(ctx context.Context) []string {
	out := slices.Clone(c.servers)
	st, err := c.Status(ctx)
	if err != nil {
		return out
	}
	for _, s := range st.Servers {
		if s.Name == st.Leader && s.API != "" {
			out = slices.DeleteFunc(out, func(a string) bool { return a == s.API })
			return append([]string{s.API}, out...)
		}
	}
	return out
}

// readVolumeEvents reads a volume operation's stream up to its end.
func readVolumeEvents(r io.Reader, progress func(VolumeProgress)) (*VolumeReport, error) {
	dec := json.NewDecoder(r)
	for {
		var ev VolumeEvent
		if err := dec.Decode(&ev); err != nil {
			return nil, fmt.Errorf("the manager's answer broke off (%v): see clusterctl volume inspect for where the volume is", err)
		}
		switch {
		case ev.Error != "":
			return nil, errors.New(ev.Error)
		case ev.Report != nil:
			return ev.Report, nil
		case ev.Progress != nil && progress != nil:
			progress(*ev.Progress)
		}
	}
}
